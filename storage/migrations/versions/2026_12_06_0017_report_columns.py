"""Reports from one index range: each step event carries its session's flow, version and
start; each session knows whether its contact had used the flow before.

A report of the sessions started in a period visited each session's events (an index
probe per session, 80 ms of CPU for the 24,000 sessions of a week at 10 million events)
and looked for an earlier session of each (55 ms). Now:

- ``flow_step_events.flow_name``, ``flow_version`` and ``session_started_at`` are copied
  from the session when an event is written (they never change), and one index in the
  order (flow, session start, session, step, action) covers every column the step totals
  read: a period's events are one range of it. It replaces the funnel's index on
  ``(session_id, step_name, action, timestamp, time_spent)``, which only that query read.
- ``flow_sessions.repeat_contact`` is kept by the database: a trigger sets it when a
  session is inserted (an earlier session of the same contact and flow exists), and sets
  it on that contact's later sessions of the flow when an earlier one arrives after them,
  so the flag stays what the old per-report query computed, whatever order sessions are
  written in.

Existing rows are filled in from their sessions (one ``UPDATE`` of every step event: on a
large table this migration takes a while, as a new column's copy does).

Revision ID: 0017_report_columns
Revises: 0016_goal_events_at
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_report_columns"
down_revision: str | None = "0016_goal_events_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = "flow_step_events"
SESSIONS = "flow_sessions"
OLD_INDEX = "ix_flow_step_events_session_id_step_name_action_timestamp_time_spent"
OLD_COLUMNS = ["session_id", "step_name", "action", "timestamp", "time_spent"]
NEW_INDEX = "ix_flow_step_events_by_session_start"
NEW_COLUMNS = [
    "flow_name",
    "session_started_at",
    "session_id",
    "step_name",
    "action",
    "timestamp",
    "time_spent",
    "flow_version",
]
TRIGGER = "flow_sessions_repeat_contact"

# An earlier session of the same contact and flow, and the later ones an insert makes
# repeats (the backfill and SQLite's trigger: through the (flow_name, contact_id,
# started_at) index, which SQLite's planner always takes for these equalities).
_EARLIER = (
    "EXISTS (SELECT 1 FROM flow_sessions AS earlier WHERE earlier.flow_name = {row}.flow_name"
    " AND earlier.contact_id = {row}.contact_id AND earlier.started_at < {row}.started_at)"
)
_LATER = (
    "UPDATE flow_sessions SET repeat_contact = TRUE WHERE flow_name = NEW.flow_name"
    " AND contact_id = NEW.contact_id AND started_at > NEW.started_at AND NOT repeat_contact"
)

# On PostgreSQL by the contact's sessions ((contact_id, started_at): a contact has few),
# with the flow compared as ``flow_name || ''``: that keeps the planner off the (flow_name,
# started_at) index, which covers contact_id and which it took for the plan PL/pgSQL
# caches while the table was small, then read every session of the flow per insert
# (measured: 1.7 ms a session at 100,000 sessions, 15 µs this way).
_PG_FUNCTION = f"""
CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.repeat_contact := EXISTS (SELECT 1 FROM flow_sessions AS earlier
        WHERE earlier.contact_id = NEW.contact_id AND earlier.started_at < NEW.started_at
        AND earlier.flow_name || '' = NEW.flow_name);
    IF EXISTS (SELECT 1 FROM flow_sessions AS later
        WHERE later.contact_id = NEW.contact_id AND later.started_at > NEW.started_at
        AND later.flow_name || '' = NEW.flow_name AND NOT later.repeat_contact) THEN
        UPDATE flow_sessions SET repeat_contact = TRUE
            WHERE contact_id = NEW.contact_id AND started_at > NEW.started_at
            AND flow_name || '' = NEW.flow_name AND NOT repeat_contact;
    END IF;
    RETURN NEW;
END
$$
"""

_SQLITE_TRIGGER = f"""
CREATE TRIGGER {TRIGGER} AFTER INSERT ON flow_sessions
BEGIN
    UPDATE flow_sessions SET repeat_contact = {_EARLIER.format(row="NEW")}
        WHERE id = NEW.id;
    {_LATER};
END
"""


def _event_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("flow_name", sa.String(length=100), nullable=True),
        sa.Column("flow_version", sa.String(length=64), nullable=True),
        sa.Column("session_started_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    # Plain ADD COLUMN (see 0013: a batch copy on SQLite would recreate flow_sessions).
    op.add_column(
        SESSIONS,
        sa.Column("repeat_contact", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.execute(
        f"UPDATE {SESSIONS} SET repeat_contact = TRUE "
        f"WHERE {_EARLIER.format(row=SESSIONS)}"  # noqa: S608 (constants)
    )
    for column in _event_columns():
        op.add_column(EVENTS, column)
    if postgresql:
        op.execute(
            f"UPDATE {EVENTS} AS e SET flow_name = s.flow_name, flow_version = s.flow_version, "
            f"session_started_at = s.started_at FROM {SESSIONS} AS s WHERE s.id = e.session_id"
        )
        for name in ("flow_name", "flow_version", "session_started_at"):
            op.alter_column(EVENTS, name, nullable=False)
        op.drop_index(op.f(OLD_INDEX), table_name=EVENTS)
        op.create_index(NEW_INDEX, EVENTS, NEW_COLUMNS, postgresql_include=["id"])
        op.execute(_PG_FUNCTION)
        op.execute(
            f"CREATE TRIGGER {TRIGGER} BEFORE INSERT ON {SESSIONS} "
            f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
        )
    else:
        op.execute(
            f"UPDATE {EVENTS} SET "  # noqa: S608 (constants)
            f"flow_name = (SELECT s.flow_name FROM {SESSIONS} AS s WHERE s.id = session_id), "
            f"flow_version = (SELECT s.flow_version FROM {SESSIONS} AS s "
            "WHERE s.id = session_id), "
            f"session_started_at = (SELECT s.started_at FROM {SESSIONS} AS s "
            "WHERE s.id = session_id)"
        )
        # NOT NULL needs the table copied on SQLite (nothing references the events).
        with op.batch_alter_table(EVENTS) as batch:
            for name in ("flow_name", "flow_version", "session_started_at"):
                batch.alter_column(name, nullable=False)
            batch.drop_index(batch.f(OLD_INDEX))
            batch.create_index(NEW_INDEX, NEW_COLUMNS)
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TRIGGER} ON {SESSIONS}")
        op.execute(f"DROP FUNCTION {TRIGGER}()")
        op.drop_index(NEW_INDEX, table_name=EVENTS)
        op.create_index(op.f(OLD_INDEX), EVENTS, OLD_COLUMNS, postgresql_include=["id"])
        for name in ("session_started_at", "flow_version", "flow_name"):
            op.drop_column(EVENTS, name)
    else:
        op.execute(f"DROP TRIGGER {TRIGGER}")
        with op.batch_alter_table(EVENTS) as batch:
            batch.drop_index(NEW_INDEX)
            batch.create_index(batch.f(OLD_INDEX), OLD_COLUMNS)
            for name in ("session_started_at", "flow_version", "flow_name"):
                batch.drop_column(name)
    op.drop_column(SESSIONS, "repeat_contact")
