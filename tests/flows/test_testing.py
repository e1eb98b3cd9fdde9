"""The shipped harness works for a flow author's own project (the pytest plugin)."""

from __future__ import annotations

import pytest

from flows import App, ContactRef, Engine
from storage import Database

pytest_plugins = ["pytester"]

AUTHOR_TEST = '''
from pathlib import Path

from flows import App

FLOW = """
flow: hello_flow
triggers: [hello]
steps:
  ask_name:
    ask: Name?
    expect: person_name
    save: name
  done:
    final: true
    say: Hi {name}
"""


async def test_my_flow(nyala_chat, tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text(FLOW)
    chat = await nyala_chat(App("Mine", flows_dir=tmp_path))
    await chat.send("hello")
    await chat.send("Ada")
    assert chat.last_text == "Hi Ada"
    assert await chat.steps() == [
        ("ask_name", "entered"), ("ask_name", "completed"), ("done", "entered"),
    ]
'''


def test_the_plugin_gives_authors_a_database_and_a_chat(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_author=AUTHOR_TEST)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


APP_WITH_TABLES_TEST = '''
from collections.abc import AsyncIterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flows import App, FlowContext
from flows.runtime import Runtime
from storage import GoalEvent, new_metadata

EVENTS: list[str] = []

FLOW = """
flow: tip_flow
triggers: [tip]
steps:
  ask_amount:
    ask: How much?
    expect: {integer: {min: 1, max: 50}}
    save: amount
    do: keep_tip
  thanked:
    final: true
    say: Thanks for {amount}!
"""

MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "tipjar_0001"
down_revision = None
branch_labels = ("tipjar",)
depends_on = "0010_apps"


def upgrade():
    op.create_table(
        "tips",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(40), nullable=False),
    )


def downgrade():
    op.drop_table("tips")
"""


class Base(DeclarativeBase):
    metadata = new_metadata()


class Tip(Base):
    __tablename__ = "tips"
    id: Mapped[int] = mapped_column(primary_key=True)
    amount: Mapped[int]
    note: Mapped[str] = mapped_column(sa.String(40))


class Thanks:
    def note(self, amount: int) -> str:
        return f"thanks for {amount}"


def make_app(folder: Path) -> App:
    (folder / "flows").mkdir()
    (folder / "flows" / "tip_flow.yaml").write_text(FLOW)
    (folder / "migrations").mkdir()
    (folder / "migrations" / "tipjar_0001.py").write_text(MIGRATION)
    app = App(
        "Tip jar",
        flows_dir=folder / "flows",
        tables=Base.metadata,
        migrations=folder / "migrations",
        goals=["tip"],
    )

    @app.lifespan
    async def thanks(runtime: Runtime) -> AsyncIterator[None]:
        runtime.services.provide(Thanks, Thanks())
        EVENTS.append("started")
        yield
        EVENTS.append("stopped")

    @app.action
    async def keep_tip(ctx: FlowContext) -> None:
        amount = ctx.data["amount"]
        ctx.session.add(Tip(amount=amount, note=ctx.services.get(Thanks).note(amount)))
        await ctx.reach_goal("tip")

    return app


async def test_an_app_with_its_own_table_and_services(nyala_chat, nyala_db, tmp_path) -> None:
    chat = await nyala_chat(make_app(tmp_path))
    assert EVENTS == ["started"]
    await chat.send("tip")
    await chat.send("7")
    assert chat.last_text == "Thanks for 7!"
    async with nyala_db.read() as session:
        tip = await session.scalar(select(Tip))
        goal = await session.scalar(select(GoalEvent))
    assert (tip.amount, tip.note) == (7, "thanks for 7")
    assert goal.goal == "tip"


def test_the_app_stopped_when_its_test_ended() -> None:
    assert EVENTS == ["started", "stopped"]
'''


def test_the_plugin_migrates_and_starts_an_app_with_its_own_tables(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_tip_jar=APP_WITH_TABLES_TEST)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


async def test_a_flow_can_be_started_without_an_inbound_message(cafe: App, db: Database) -> None:
    engine = Engine(db, cafe)
    replies = await engine.start_flow(ContactRef(wa_id="263770001234"), "rating_flow")
    assert [getattr(r, "body", None) for r in replies] == ["Rate us from 1 to 5"]
