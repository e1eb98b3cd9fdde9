"""Alembic environment: runs migrations on the connection Nyala hands over, or on
``DATABASE_URL`` when called from the ``alembic`` command line.

From the command line (``alembic.ini`` lists every branch's folder), ``-x app=module:attr``
names the app whose tables autogenerate compares, e.g. ``alembic -x app=my_app.app:app
revision --autogenerate --head my_app@head -m "..."``.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from typing import Any

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from storage.database import DEFAULT_DATABASE_URL, Database
from storage.models import Base

config = context.config


def _app_metadata() -> list[MetaData]:
    """The tables of the app named by ``-x app=module:attr``, if any."""
    target = context.get_x_argument(as_dictionary=True).get("app")
    if not target:
        return []
    module_name, _, attribute = target.partition(":")
    app: Any = getattr(importlib.import_module(module_name), attribute or "app")
    return list(app.metadata)


metadata: list[MetaData] = list(config.attributes.get("metadata") or []) or _app_metadata()
target_metadata = [Base.metadata, *metadata]


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url() -> None:
    db = Database(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    try:
        async with db.engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await db.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_from_url())
