"""Step events partitioned by month on PostgreSQL (SQLite keeps one table); report indexes;
goal counts in the snapshots.

A report reads the events of the sessions started in its period, and events never
precede their session's start: with ``flow_step_events`` partitioned by month on
``timestamp`` the planner skips every month before the period, and retention is
``DROP TABLE`` of a month's partition instead of a ``DELETE`` of millions of rows.

The table is converted in place: the partitioned table is created like the old one
(columns, defaults, the action check), one partition per month from the oldest event to
three months ahead plus a default partition for anything outside them, the rows are
moved (ids kept; the id sequence moves to the new table), the old table is dropped and
the same indexes are created on the new one (the funnel's covering index now
includes the id, which the funnel reads too). The primary key becomes ``(id,
timestamp)``, as PostgreSQL requires the partition key in it; ids still come from the
one sequence. Partitions live in the schema ``flow_step_event_months`` so that the
framework's tables stay what they were in ``public``.

Both databases also get the indexes reports need at scale (sandbox contacts, "used the
flow before?") and ``flow_metric_snapshots.goal_sessions``, the completed sessions per goal
reached, so that conversion per goal reads settled days from the snapshots.

Revision ID: 0014_step_event_partitions
Revises: 0013_session_outcomes
Create Date: 2026-12-06
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014_step_event_partitions"
down_revision: str | None = "0013_session_outcomes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "flow_step_events"
SCHEMA = "flow_step_event_months"
MONTHS_AHEAD = 3
PRIMARY_KEY = "pk_flow_step_events"
FOREIGN_KEY = "fk_flow_step_events_session_id_flow_sessions"
COVERING_COLUMNS = '(session_id, step_name, action, "timestamp", time_spent)'
REPEAT_INDEX = "ix_flow_sessions_flow_name_contact_id_started_at"
SANDBOX_INDEX = "ix_contacts_sandbox"
WINDOW_INDEX = "ix_flow_sessions_flow_name_started_at"
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(month: dt.date) -> dt.date:
    return (month + dt.timedelta(days=32)).replace(day=1)


def _indexes(bind: sa.Connection, table: str) -> list[tuple[str, str]]:
    """The secondary indexes of ``table``: (name, CREATE INDEX statement)."""
    rows = bind.execute(
        sa.text(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = CAST(:table AS regclass) AND NOT x.indisprimary "
            "ORDER BY i.relname"
        ),
        {"table": table},
    ).all()
    # A partitioned table's index reads "ON ONLY table": created that way it would cover
    # no partition.
    return [(str(name), str(sql).replace(" ON ONLY ", " ON ")) for name, sql in rows]


def _covering(definition: str, *, include_id: bool) -> str:
    """The funnel's covering index with the id included (PostgreSQL), or without."""
    if COVERING_COLUMNS not in definition:
        return definition
    plain = definition.replace(" INCLUDE (id)", "")
    return plain + " INCLUDE (id)" if include_id else plain


def _swap(bind: sa.Connection, *, partitioned: bool) -> None:
    """Replace ``flow_step_events`` by a copy that is (or is not) partitioned by month."""
    indexes = _indexes(bind, TABLE)
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_old")
    # Free the names the new table takes (index names are per schema).
    for name, _ in indexes:
        op.execute(f'DROP INDEX "{name}"')
    op.execute(f"ALTER TABLE {TABLE}_old DROP CONSTRAINT {PRIMARY_KEY}")
    op.execute(f"ALTER TABLE {TABLE}_old DROP CONSTRAINT {FOREIGN_KEY}")
    like = f"(LIKE {TABLE}_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    if partitioned:
        op.execute(f'CREATE TABLE {TABLE} {like} PARTITION BY RANGE ("timestamp")')
        op.execute(
            f'ALTER TABLE {TABLE} ADD CONSTRAINT {PRIMARY_KEY} PRIMARY KEY (id, "timestamp")'
        )
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        oldest = bind.scalar(sa.text(f'SELECT min("timestamp") FROM {TABLE}_old'))  # noqa: S608
        today = dt.datetime.now(dt.UTC).date()
        month = _month(oldest.astimezone(dt.UTC).date() if oldest is not None else today)
        last = _month(today)
        for _ in range(MONTHS_AHEAD):
            last = _next_month(last)
        while month <= last:
            following = _next_month(month)
            op.execute(
                f"CREATE TABLE {SCHEMA}.{TABLE}_{month:%Y_%m} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
                f"TO ('{following.isoformat()} 00:00:00+00')"
            )
            month = following
        op.execute(f"CREATE TABLE {SCHEMA}.{TABLE}_default PARTITION OF {TABLE} DEFAULT")
    else:
        op.execute(f"CREATE TABLE {TABLE} {like}")
        op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {PRIMARY_KEY} PRIMARY KEY (id)")
    op.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_old")  # noqa: S608 (constants)
    op.execute(f"ALTER SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
    op.execute(f"DROP TABLE {TABLE}_old CASCADE")
    if not partitioned:
        op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    op.execute(
        f"ALTER TABLE {TABLE} ADD CONSTRAINT {FOREIGN_KEY} FOREIGN KEY (session_id) "
        "REFERENCES flow_sessions (id) ON DELETE CASCADE"
    )
    for _, definition in indexes:
        op.execute(_covering(definition, include_id=partitioned))
    op.execute(f"ANALYZE {TABLE}")


def upgrade() -> None:
    # Both databases: "used the flow before?" from an index alone, and the few sandbox
    # contacts found without reading every contact.
    op.create_index(REPEAT_INDEX, "flow_sessions", ["flow_name", "contact_id", "started_at"])
    # The model's own expression, so that each database gets the text its queries use
    # (SQLite: "sandbox IS 1"; it uses a partial index only for the very same term).
    sandbox = sa.column("sandbox", sa.Boolean()).is_(True)
    op.create_index(
        SANDBOX_INDEX, "contacts", ["id"], postgresql_where=sandbox, sqlite_where=sandbox
    )
    # Plain ADD COLUMN (see 0013: a batch copy on SQLite would recreate the table).
    op.add_column("flow_metric_snapshots", sa.Column("goal_sessions", _JSON, nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # A flow's sessions of a period, with their ids and contacts, from the index alone.
        op.drop_index(WINDOW_INDEX, table_name="flow_sessions")
        op.create_index(
            WINDOW_INDEX,
            "flow_sessions",
            ["flow_name", "started_at"],
            postgresql_include=["id", "contact_id"],
        )
        _swap(bind, partitioned=True)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _swap(bind, partitioned=False)
        op.drop_index(WINDOW_INDEX, table_name="flow_sessions")
        op.create_index(WINDOW_INDEX, "flow_sessions", ["flow_name", "started_at"])
    op.drop_column("flow_metric_snapshots", "goal_sessions")
    op.drop_index(SANDBOX_INDEX, table_name="contacts")
    op.drop_index(REPEAT_INDEX, table_name="flow_sessions")
