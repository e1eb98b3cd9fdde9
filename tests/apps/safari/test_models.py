"""The safari app's tables: its models are exactly what its migration branch creates.

Autogenerate compares the app's metadata with a database migrated with the framework's
branch and the ``safari`` branch, on each backend: any difference (a column, a type, an
index, a constraint, a table) is a model or a migration someone forgot.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from apps.safari import app
from apps.safari.models import SafariBase
from storage import Database

SAFARI_TABLES = {
    "bookings",
    "customers",
    "departures",
    "notifications",
    "payments",
    "provider_events",
    "receipts",
    "tours",
    "travelers",
}


def test_the_app_declares_its_tables_and_branch() -> None:
    assert set(SafariBase.metadata.tables) == SAFARI_TABLES
    assert app.metadata == (SafariBase.metadata,)
    assert [p.name for p in app.migration_locations] == ["migrations"]


async def test_the_safari_migrations_match_the_models(db: Database) -> None:
    def diff(connection: Connection) -> tuple[list[Any], set[str]]:
        def ours(obj: Any, name: str | None, type_: str, reflected: bool, _other: Any) -> bool:
            # Only the app's tables: the framework's are the framework test's business.
            return type_ != "table" or name in SAFARI_TABLES

        context = MigrationContext.configure(
            connection,
            opts={"include_object": ours, "compare_type": True, "compare_server_default": True},
        )
        return list(compare_metadata(context, SafariBase.metadata)), set(
            inspect(connection).get_table_names()
        )

    async with db.engine.connect() as conn:
        changes, tables = await conn.run_sync(diff)
    assert tables >= SAFARI_TABLES
    assert changes == []
