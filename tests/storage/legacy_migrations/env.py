"""Alembic environment of the legacy revisions (0001-0009 as they were before apps had
their own branches): runs them on the connection the upgrade test hands over."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
