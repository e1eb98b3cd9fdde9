"""Apply Alembic migrations from Python (``nyala migrate`` and every other command).

The framework's migrations are one branch (label ``nyala``, in ``migrations/versions``);
each app brings its own branch in a folder of its own (``App(migrations=...)``). A
database is migrated with the framework's branch plus the branches of the app it serves,
and nothing else: a database holds the tables of one app.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from storage.database import Database
from storage.errors import StorageError

log = logging.getLogger("nyala.storage")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
FRAMEWORK_VERSIONS = MIGRATIONS_DIR / "versions"


class MigrationError(StorageError):
    """The database cannot be brought to this version's schema (said why, in one line)."""


def _config(
    locations: Sequence[Path],
    connection: Connection | None = None,
    metadata: Sequence[MetaData] = (),
) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "newline")
    cfg.set_main_option(
        "version_locations", "\n".join(str(p) for p in (FRAMEWORK_VERSIONS, *locations))
    )
    if connection is not None:
        cfg.attributes["connection"] = connection
    cfg.attributes["metadata"] = list(metadata)
    return cfg


def _locations(locations: Iterable[Path | str]) -> list[Path]:
    found = []
    for location in locations:
        path = Path(location)
        if not path.is_dir():
            raise MigrationError(f"migrations folder {path} not found")
        found.append(path)
    return found


def head_revisions(locations: Iterable[Path | str] = ()) -> set[str]:
    """The newest migration of each branch: the framework's and the given apps'."""
    script = ScriptDirectory.from_config(_config(_locations(locations)))
    return set(script.get_heads())


def _current(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def current_revisions(db: Database) -> set[str]:
    """The revisions the database is at (empty for an empty database)."""
    async with db.engine.connect() as conn:
        return await conn.run_sync(_current)


def _unknown(script: ScriptDirectory, current: set[str]) -> list[str]:
    unknown = []
    for revision in sorted(current):
        try:
            script.get_revision(revision)
        except CommandError:
            unknown.append(revision)
    return unknown


def _reaches(script: ScriptDirectory, current: set[str], heads: set[str]) -> bool:
    """Whether the database at ``current`` already holds every head: a branch that
    depends on another's revision is recorded alone in the version table, so the heads
    are looked for among everything ``current`` stands on (down revisions and
    dependencies), not in the version table itself."""
    seen: set[str] = set()
    pending = list(current)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        revision = script.get_revision(name)
        if revision is not None:
            pending.extend(revision._all_down_revisions)  # includes depends_on
    return heads <= seen


async def migrate(
    db: Database,
    locations: Iterable[Path | str] = (),
    *,
    metadata: Sequence[MetaData] = (),
) -> list[str]:
    """Bring the schema to the newest revision of the framework and of ``locations``.

    Safe to call on every start: with nothing pending it only reads the version table.

    Args:
        db: the database.
        locations: the migration folders of the app's branch(es).
        metadata: the tables the migrations describe (for autogenerate), if known.

    Returns:
        ``[before, after]``: the revisions before and after, each comma-joined.

    Raises:
        MigrationError: the database holds revisions none of these branches knows (it
            belongs to another app, or to a newer Nyala).
    """
    folders = _locations(locations)
    cfg = _config(folders, metadata=metadata)
    script = ScriptDirectory.from_config(cfg)
    heads = set(script.get_heads())
    async with db.engine.connect() as conn:
        before = await conn.run_sync(_current)
    if unknown := _unknown(script, before):
        raise MigrationError(
            f"database {db.display_url} is at revision {', '.join(unknown)}, which this app's "
            "migrations do not know: it belongs to another app or a newer Nyala "
            "(use one database per app)"
        )
    if _reaches(script, before, heads):
        joined = ",".join(sorted(before))
        return [joined, joined]

    def upgrade(sync: Connection) -> None:
        command.upgrade(_config(folders, sync, metadata), "heads")

    async with db.engine.begin() as conn:
        await conn.run_sync(upgrade)
    async with db.engine.connect() as conn:
        after = await conn.run_sync(_current)
    if before != after:
        log.info("database migrated from %s to %s", sorted(before), sorted(after))
    return [",".join(sorted(before)) or "None", ",".join(sorted(after))]
