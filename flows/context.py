"""What actions, queries and conditions get: the context of the message being handled."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from flows.messages import Reply, Template, Text, UserMessage
from flows.runtime import Services
from storage import Contact, Conversation, GoalEvent, StoredFile

if TYPE_CHECKING:
    from flows.app import App


@dataclass(eq=False)
class FlowContext:
    """The context of one inbound message (or one proactive start).

    Actions read and write ``data`` (the flow's saved answers), use ``session`` (the
    message's single database transaction: everything they write commits or rolls back
    with the state change), and answer with :meth:`reply`.

    Attributes:
        session: the database session of this message's transaction.
        contact: who is talking.
        conversation: the stored conversation row.
        app: the application.
        now: the time the message is handled (UTC).
        data: the flow's data: saved answers and whatever actions put there.
        message: the message being handled, if any.
        value: the accepted value of the current answer, if any.
        services: what the running app provides (``ctx.services.get(Kind)``).
        flow_session_id: the active flow session, if any (goals are counted in it).
        sandbox: replies are stored, never sent; actions must not call anything real.
    """

    session: AsyncSession
    contact: Contact
    conversation: Conversation
    app: App
    now: dt.datetime
    data: dict[str, Any] = field(default_factory=dict)
    message: UserMessage | None = None
    value: Any = None
    replies: list[Reply] = field(default_factory=list)
    # Templates to send instead of a reply when the 24-hour window is closed (by id()).
    fallbacks: dict[int, Template] = field(default_factory=dict)
    next_flow: tuple[str, dict[str, Any]] | None = None
    handoff_reason: str | None = None
    services: Services = field(default_factory=Services)
    flow_session_id: int | None = None
    sandbox: bool = True

    @property
    def today(self) -> dt.date:
        """Today in the business's timezone."""
        return self.app.today(self.now)

    def reply(self, reply: Reply | str, *, fallback: Template | None = None) -> None:
        """Queue a message for the contact (sent after the transaction commits).

        Args:
            reply: the message (a string is a text message).
            fallback: an approved template sent instead if the contact's 24-hour window
                is closed when the message goes out (WhatsApp allows only templates then).
        """
        message = Text(reply) if isinstance(reply, str) else reply
        self.replies.append(message)
        if fallback is not None:
            self.fallbacks[id(message)] = fallback

    def text(self, key: str, /, **values: Any) -> str:
        """The app's text under ``key`` (:mod:`flows.copy`), its fields filled."""
        return self.app.copy.text(key, **values)

    async def reach_goal(self, goal: str, *, reference: str | None = None) -> None:
        """Record that the contact reached one of the app's goals (e.g. ``"order"``), in
        this message's transaction and the active flow session: analytics count the
        session as converted.

        Args:
            goal: a goal the app declared.
            reference: what it was reached with (an order number), for drill-downs.
        """
        if goal not in self.app.goals:
            declared = ", ".join(sorted(self.app.goals)) or "none"
            raise ValueError(f"goal {goal!r} is not declared by the app (goals: {declared})")
        self.session.add(
            GoalEvent(
                goal=goal,
                contact_id=self.contact.id,
                session_id=self.flow_session_id,
                reference=reference,
                at=self.now,
            )
        )
        await self.session.flush()  # inside the answer's savepoint: rolled back with it

    def start_flow(self, flow: str, /, **data: Any) -> None:
        """Start ``flow`` once the current step is done (ending the current flow)."""
        self.next_flow = (flow, data)

    def hand_off(self, reason: str) -> None:
        """Hand the conversation to a person; the bot stays quiet until released."""
        self.handoff_reason = reason

    async def store_file(self, filename: str, mime_type: str, content: bytes) -> StoredFile:
        """Store a file in this transaction; send it with ``reply(Document(file.id, ...))``."""
        row = StoredFile.from_bytes(filename, mime_type, content)
        self.session.add(row)
        await self.session.flush()
        return row


class FlowModel:
    """The model a flow machine runs on: a plain object, never an ORM row.

    python-statemachine writes the state to ``state``; callbacks reach the context
    through ``model.ctx`` (or ``self.ctx`` in a :class:`flows.Flow`).
    """

    def __init__(self, state: str | None, data: dict[str, Any], ctx: FlowContext) -> None:
        self.state = state
        self.data = data
        self.ctx = ctx
        # States entered while handling this message: a step's skip guard may only fire
        # on arrival, never when the machine is rebuilt at it to take its answer.
        self.entered: set[str] = set()


class EntryRecorder:
    """Listener that notes which states a machine enters into ``model.entered``."""

    def __init__(self, model: FlowModel) -> None:
        self.model = model

    def on_enter_state(self, state: Any, **_: Any) -> None:
        self.model.entered.add(str(state.id))
