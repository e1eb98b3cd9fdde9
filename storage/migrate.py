"""Apply Alembic migrations from Python (``nyala migrate`` and every other command)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from storage.database import Database

log = logging.getLogger("nyala.storage")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest migration shipped with this version of Nyala."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(db: Database) -> str | None:
    """The migration the database is at (``None`` for an empty database)."""
    async with db.engine.connect() as conn:
        return await conn.run_sync(_current)


async def migrate(db: Database, revision: str = "head") -> list[str]:
    """Bring the schema to ``revision``; returns ``[before, after]`` revision ids.

    Safe to call on every start: with nothing pending it only reads the version table.
    """
    async with db.engine.connect() as conn:
        before = await conn.run_sync(_current)
    if before == head_revision() and revision == "head":
        return [str(before), str(before)]
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), revision))
    async with db.engine.connect() as conn:
        after = await conn.run_sync(_current)
    if before != after:
        log.info("database migrated from %s to %s", before, after)
    return [str(before), str(after)]
