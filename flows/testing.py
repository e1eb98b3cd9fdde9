"""A conversation test harness for flow authors (also a pytest plugin).

::

    async def test_ordering(nyala_chat):
        chat = await nyala_chat(app)
        await chat.send("order")
        assert "How many" in chat.last_text
        await chat.send("2")
        assert await chat.steps() == [("ask_count", "entered"), ("ask_count", "completed"), ...]

The plugin provides ``nyala_db`` (a migrated SQLite database in a temporary folder, or the
database named by ``NYALA_TEST_DATABASE_URL``) and ``nyala_chat`` (a factory of
:class:`ChatTester`). ``nyala_chat(app)`` brings the database to the app's schema (the
framework's migrations plus the app's own branch, ``app.migration_locations``) and starts
the app as ``nyala`` does (:meth:`flows.runtime.Runtime.start`, running its lifespans), so
actions find ``ctx.services``; the app stops when the test ends. Installed with Nyala, the
plugin is picked up by pytest automatically.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio
from sqlalchemy import select

from flows.app import App
from flows.engine import ContactRef, Engine
from flows.messages import Location, Media, Option, Reply, UserMessage, reply_options, reply_text
from flows.runtime import Runtime
from storage import (
    Contact,
    Conversation,
    Database,
    FlowSession,
    FlowStepEvent,
    StepAction,
    migrate,
    utcnow,
)


class Clock:
    """A settable clock: ``clock.advance(minutes=5)`` moves time for the engine."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward by ``datetime.timedelta(**delta)``."""
        self.now += dt.timedelta(**delta)


class ChatTester:
    """Talk to an app as one contact and inspect what happened.

    Args:
        engine: the engine under test.
        phone: the contact's number (digits).
        clock: the engine's clock, if it is a :class:`Clock`.
    """

    def __init__(self, engine: Engine, phone: str = "263770000001", clock: Clock | None = None):
        self.engine = engine
        self.phone = phone
        self.clock = clock
        self.replies: list[Reply] = []
        self.transcript: list[tuple[str, str]] = []

    @property
    def contact(self) -> ContactRef:
        """The contact as the channel would describe it."""
        return ContactRef(wa_id=self.phone, profile_name="Test User")

    async def send(
        self,
        text: str | None = None,
        *,
        tap: str | None = None,
        tap_id: str | None = None,
        media: Media | None = None,
        kind: str | None = None,
        location: Location | None = None,
        emoji: str | None = None,
        message_id: str | None = None,
    ) -> list[Reply]:
        """Send a message; ``tap`` taps the option with that id or title in the last reply;
        ``tap_id`` sends a tap on any reply id (e.g. a template's quick-reply button that
        the outbox sent, not the engine)."""
        message_id = message_id or f"wamid.test.{uuid.uuid4().hex}"
        message: UserMessage
        if tap_id is not None:
            message = UserMessage(id=message_id, kind="reply", reply_id=tap_id, text=text)
        elif tap is not None:
            option = self._find_option(tap)
            message = UserMessage(
                id=message_id, kind="reply", reply_id=option.id, text=option.title
            )
        elif media is not None:
            message = UserMessage(id=message_id, kind=kind or "document", media=media)  # type: ignore[arg-type]
        elif location is not None:
            message = UserMessage(id=message_id, kind="location", location=location)
        elif kind is not None:
            message = UserMessage(id=message_id, kind=kind, text=text, emoji=emoji)  # type: ignore[arg-type]
        else:
            message = UserMessage(id=message_id, kind="text", text=text or "")
        self.transcript.append(("user", message.display))
        self.replies = await self.engine.handle(self.contact, message)
        for reply in self.replies:
            self.transcript.append(("bot", reply_text(reply)))
        return self.replies

    def _find_option(self, wanted: str) -> Option:
        for reply in reversed(self.replies):
            for option in reply_options(reply):
                if wanted in (option.id, option.title):
                    return option
        shown = [o.title for r in self.replies for o in reply_options(r)]
        raise AssertionError(f"no option {wanted!r} in the last replies; options: {shown}")

    @property
    def texts(self) -> list[str]:
        """The readable text of each reply to the last message."""
        return [reply_text(r) for r in self.replies]

    @property
    def last_text(self) -> str:
        """The text of the last reply to the last message."""
        assert self.replies, "the bot did not reply"
        return reply_text(self.replies[-1])

    @property
    def options(self) -> list[str]:
        """The titles of the options offered in the last replies."""
        return [o.title for r in self.replies for o in reply_options(r)]

    async def _contact_id(self) -> int:
        async with self.engine.db.read() as session:
            contact_id = await session.scalar(
                select(Contact.id).where(Contact.wa_id == self.phone)
            )
        assert contact_id is not None, "the contact has not sent anything yet"
        return contact_id

    async def sessions(self) -> list[FlowSession]:
        """The contact's flow sessions, oldest first."""
        contact_id = await self._contact_id()
        async with self.engine.db.read() as session:
            rows = await session.scalars(
                select(FlowSession)
                .where(FlowSession.contact_id == contact_id)
                .order_by(FlowSession.id)
            )
            return list(rows)

    async def events(self, flow: str | None = None) -> list[FlowStepEvent]:
        """The contact's step events (of one flow, if given), in order."""
        contact_id = await self._contact_id()
        async with self.engine.db.read() as session:
            query = (
                select(FlowStepEvent)
                .join(FlowSession, FlowSession.id == FlowStepEvent.session_id)
                .where(FlowSession.contact_id == contact_id)
                .order_by(FlowStepEvent.id)
            )
            if flow is not None:
                query = query.where(FlowSession.flow_name == flow)
            return list(await session.scalars(query))

    async def steps(self, flow: str | None = None) -> list[tuple[str, str]]:
        """``(step_name, action)`` of every step event, in order."""
        return [(e.step_name, StepAction(e.action).value) for e in await self.events(flow)]

    async def conversation(self) -> Conversation:
        """The stored conversation row."""
        contact_id = await self._contact_id()
        async with self.engine.db.read() as session:
            row = await session.get(Conversation, contact_id)
            assert row is not None
            return row


ChatFactory = Callable[..., Awaitable[ChatTester]]


@pytest_asyncio.fixture
async def nyala_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database for one test: SQLite in ``tmp_path`` unless
    ``NYALA_TEST_DATABASE_URL`` names another (which must be empty)."""
    url = (
        os.environ.get("NYALA_TEST_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    )
    db = Database(url)
    await migrate(db)
    try:
        yield db
    finally:
        await db.dispose()


@pytest_asyncio.fixture
async def nyala_chat(nyala_db: Database) -> AsyncIterator[ChatFactory]:
    """``await nyala_chat(app, phone=..., clock=...)`` → a :class:`ChatTester`.

    The first chat with an app migrates ``nyala_db`` with the app's branch and starts the
    app (its lifespans run; their services reach actions as ``ctx.services``); every
    started app stops when the test ends. Other keywords go to :class:`Engine`.
    """
    runtimes: dict[int, Runtime] = {}
    async with contextlib.AsyncExitStack() as stack:

        async def make(
            app: App, phone: str = "263770000001", clock: Clock | None = None, **kw: Any
        ) -> ChatTester:
            runtime = runtimes.get(id(app))
            if runtime is None:
                await migrate(nyala_db, app.migration_locations, metadata=app.metadata)
                runtime = await stack.enter_async_context(
                    Runtime.start(app, nyala_db, sandbox=bool(kw.get("sandbox", True)))
                )
                runtimes[id(app)] = runtime
            kw.setdefault("services", runtime.services)
            engine = Engine(nyala_db, app, clock=clock or utcnow, **kw)
            return ChatTester(engine, phone, clock)

        yield make
