"""The engine: one inbound message → one transaction → new state, step events, replies.

For every message, under the contact's lock and in ONE database transaction, the engine
loads the conversation, routes the message (a global intent, the active flow, or the
idle menu), rebuilds the flow's machine at the saved state (no entry actions re-run),
sends the event, lets the tracker record step events, queues the replies as outbound
rows, saves the new state and marks the inbound row done. No flow object outlives its
transaction, so a restart or a second process continues any conversation.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import inspect
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.tracking import StepTracker, event_rows, write_events
from flows.app import App, AppSnapshot, Intent
from flows.context import FlowContext
from flows.edits import AMENDING_KINDS, amend_before_turn, last_reply_was, pending_amendments
from flows.errors import ActionError, FlowError
from flows.ledger import Ledger
from flows.machines import MachinePool
from flows.messages import (
    Buttons,
    Option,
    Reply,
    Text,
    UserMessage,
    choice_message,
    reply_from_payload,
)
from flows.prompts import (
    SHOWN_KEY,
    render,
    retry_prompt,
    shown_options,
    step_prompt,
    template_values,
)
from flows.runtime import Services
from flows.spec import ANSWER_EVENT, FlowSpec, Step
from flows.validators import (
    BUILTIN_VALIDATORS,
    Outcome,
    Rejected,
    ValidationContext,
    Validator,
)
from storage import (
    Contact,
    Conversation,
    Database,
    FlowSession,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    SessionOutcome,
    SessionStatus,
    get_or_create_contact,
    lock_contact,
    lock_contacts,
    try_lock_contacts,
    utcnow,
)
from storage.messages import insert_inbound, known_contacts

log = logging.getLogger("nyala.flows")

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True, slots=True)
class ContactRef:
    """Who a message is from, as the channel knows them."""

    wa_id: str | None
    user_id: str | None = None
    profile_name: str | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """The result of storing an inbound message."""

    contact_id: int
    inbound_id: int | None  # None: a duplicate, already stored

    @property
    def duplicate(self) -> bool:
        """Whether the message had been received before."""
        return self.inbound_id is None


# The oldest two pending messages of each of some contacts: the user's own order
# (WhatsApp's timestamp), then arrival; two, so the engine knows whether another one waits.
_RANKED = (
    select(
        InboundMessage.id,
        func.row_number()
        .over(
            partition_by=InboundMessage.contact_id,
            order_by=(
                func.coalesce(InboundMessage.sent_at, InboundMessage.received_at),
                InboundMessage.id,
            ),
        )
        .label("rank"),
    )
    .where(
        InboundMessage.contact_id.in_(bindparam("contact_ids", expanding=True)),
        InboundMessage.status == InboundStatus.PENDING,
    )
    .subquery()
)
_PENDING = (
    select(InboundMessage)
    .join(_RANKED, _RANKED.c.id == InboundMessage.id)
    .where(_RANKED.c.rank <= 2)
    .order_by(InboundMessage.contact_id, _RANKED.c.rank)
)
# Contacts with their conversation and flow session, in one round trip.
_LOAD_TURNS = (
    select(Contact, Conversation, FlowSession)
    .select_from(Contact)
    .outerjoin(Conversation, Conversation.contact_id == Contact.id)
    .outerjoin(FlowSession, FlowSession.id == Conversation.flow_session_id)
    .where(Contact.id.in_(bindparam("contact_ids", expanding=True)))
)
_FRESH = {"populate_existing": True}

_Rows = tuple[Contact, Conversation | None, FlowSession | None]


async def _load_rows(session: AsyncSession, contact_ids: list[int]) -> dict[int, _Rows]:
    """Each contact's row, conversation and flow session (one query for them all)."""
    found = await session.execute(
        _LOAD_TURNS, {"contact_ids": contact_ids}, execution_options=_FRESH
    )
    return {row[0].id: (row[0], row[1], row[2]) for row in found}


@dataclass(slots=True)
class Batch:
    """What :meth:`Engine.process_batch` did.

    Attributes:
        replies: the replies produced, per contact processed.
        more: contacts with further messages pending (process them again).
        busy: contacts another worker holds right now (try again shortly).
    """

    replies: dict[int, list[Reply]] = dataclasses.field(default_factory=dict)
    more: set[int] = dataclasses.field(default_factory=set)
    busy: set[int] = dataclasses.field(default_factory=set)

    def merge(self, other: Batch) -> None:
        """Add ``other``'s outcome to this one."""
        self.replies.update(other.replies)
        self.more |= other.more
        self.busy |= other.busy


class _RunAloneError(Exception):
    """A business rule said no in a turn run without a savepoint of its own: roll the
    batch back and run that contact alone, where the refusal is undone by a savepoint."""

    def __init__(self, contact_id: int) -> None:
        super().__init__(f"contact {contact_id} runs alone")
        self.contact_id = contact_id


class _TurnFailedError(Exception):
    """One contact's turn raised: the batch's transaction is rolled back (carries who
    and why, so that the others are run again without it)."""

    def __init__(
        self, contact_id: int, inbound_id: int, message: UserMessage, error: Exception
    ) -> None:
        super().__init__(str(error))
        self.contact_id = contact_id
        self.inbound_id = inbound_id
        self.message = message
        self.error = error


def _public(data: Mapping[str, Any]) -> dict[str, Any]:
    """The flow data without the engine's own ``_``-prefixed keys."""
    return {k: v for k, v in data.items() if not k.startswith("_")}


async def _maybe_await(result: Any) -> Any:
    if inspect.isawaitable(result):
        return await result
    return result


class Engine:
    """Runs an :class:`App`'s flows over a :class:`storage.Database`.

    Args:
        db: the database.
        app: the application.
        sandbox: store replies as ``sandbox`` rows (never sent) instead of ``queued``.
        clock: the time source (tests move time with it).
        services: what the running app provides to its actions (``Runtime.services``).
    """

    def __init__(
        self,
        db: Database,
        app: App,
        *,
        sandbox: bool = True,
        clock: Clock = utcnow,
        services: Services | None = None,
    ) -> None:
        self.db = db
        self.app = app
        self.sandbox = sandbox
        self.clock = clock
        self.services = services if services is not None else Services()
        self.machines = MachinePool()  # flow machines reused turn after turn

    async def receive(self, contact: ContactRef, message: UserMessage) -> Received:
        """Store a message durably (deduplicated by its id); does not process it."""
        for attempt in range(3):
            try:
                async with self.db.transaction() as session:
                    known = (
                        (await known_contacts(session, [contact.wa_id])).get(contact.wa_id)
                        if contact.wa_id
                        else None
                    )
                    if known is not None and known.unchanged(
                        contact.user_id, contact.profile_name
                    ):
                        contact_id = known.id
                    else:  # new, or changed: the ORM path creates or updates it
                        row = await get_or_create_contact(
                            session,
                            wa_id=contact.wa_id,
                            user_id=contact.user_id,
                            profile_name=contact.profile_name,
                        )
                        contact_id = row.id
                    inbound_id = await insert_inbound(
                        session,
                        wa_message_id=message.id,
                        contact_id=contact_id,
                        kind=message.kind,
                        payload=message.to_payload(),
                        received_at=self.clock(),
                        sent_at=message.timestamp,
                    )
                    return Received(contact_id, inbound_id)
            except IntegrityError:
                # Another process stored the same contact or message at the same moment.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def process_pending(self, contact_id: int) -> list[Reply]:
        """Process the contact's pending messages, oldest first; returns the replies.

        Each message is its own transaction (a batch of one contact, waiting for the
        contact's lock if another worker holds it); the last one already knows nothing
        else was pending, so no empty transaction is spent to find out. (A message
        stored after that look is processed by whoever stored it: the inbox kicks its
        contact, and recovery finds anything left.)
        """
        replies: list[Reply] = []
        while True:
            batch = await self.process_batch([contact_id], wait=True)
            replies.extend(batch.replies.get(contact_id, []))
            if contact_id not in batch.more:
                return replies

    async def handle(self, contact: ContactRef, message: UserMessage) -> list[Reply]:
        """Store and process one message (the terminal chat and tests use this)."""
        received = await self.receive(contact, message)
        return await self.process_pending(received.contact_id)

    async def start_flow(
        self, contact: ContactRef, flow: str, data: Mapping[str, Any] | None = None
    ) -> list[Reply]:
        """Start ``flow`` for a contact without an inbound message (e.g. a quick action)."""
        async with self.db.transaction() as session:
            row = await get_or_create_contact(
                session, wa_id=contact.wa_id, user_id=contact.user_id
            )
            await lock_contact(session, row.id)
            ledger = Ledger()
            rows = (await _load_rows(session, [row.id]))[row.id]
            turn = _Turn.start(
                self,
                session,
                rows,
                message=None,
                inbound_id=None,
                ledger=ledger,
                snapshot=self.app.snapshot(),
            )
            await turn.begin_flow(flow, dict(data or {}))
            replies = turn.finish()
            await ledger.write(session)
            return replies

    async def process_batch(self, contact_ids: Collection[int], *, wait: bool = False) -> Batch:
        """Process the oldest pending message of each contact, all in ONE transaction.

        The contacts are locked together (``wait=False``: contacts another worker holds
        are left out and reported in ``busy``), their messages, conversations and flow
        sessions loaded with one query each, every turn run in memory, and all writes
        go out together at the end (:class:`flows.ledger.Ledger`): one commit for the
        batch. A turn that raises rolls the batch back; its contact's failure is then
        recorded on its own (:meth:`_fail`) and the others run again without it, so no
        one's message is lost or answered twice. A database error that cannot be
        pinned on one turn runs the contacts one at a time.
        """
        ids = sorted(set(contact_ids))
        outcome = Batch()
        while ids:
            try:
                outcome.merge(await self._run_batch(ids, wait=wait))
                return outcome
            except _TurnFailedError as failed:
                replies = await self._fail(
                    failed.contact_id, failed.inbound_id, failed.message, failed.error
                )
                outcome.replies[failed.contact_id] = replies
                outcome.more.add(failed.contact_id)  # what came after it may still wait
                ids.remove(failed.contact_id)
            except _RunAloneError as alone:
                ids.remove(alone.contact_id)
                outcome.merge(await self.process_batch([alone.contact_id], wait=wait))
            except DBAPIError as exc:
                if exc.connection_invalidated or len(ids) == 1:
                    raise  # the database went away: the messages stay pending for a retry
                log.warning("batch of %d contacts failed (%s); one at a time", len(ids), exc)
                for contact_id in ids:
                    outcome.merge(await self.process_batch([contact_id], wait=wait))
                return outcome
        return outcome

    async def _run_batch(self, ids: list[int], *, wait: bool) -> Batch:
        outcome = Batch()
        async with self.db.transaction() as session:
            if wait:
                await lock_contacts(session, ids)  # ids are sorted: one statement
                locked = ids
            else:
                locked = await try_lock_contacts(session, ids)
                outcome.busy.update(set(ids) - set(locked))
            if not locked:
                return outcome
            # Only after holding the contacts' locks pick their oldest pending messages:
            # claiming first would let another worker overtake them. Two rows a contact:
            # the second tells whether to look again.
            pending: dict[int, list[InboundMessage]] = {}
            for row in await session.scalars(_PENDING, {"contact_ids": locked}):
                pending.setdefault(row.contact_id, []).append(row)
            # A message whose file is still downloading holds its contact: nothing may
            # overtake it (the downloader kicks the contact when it is released).
            ready = [cid for cid in locked if cid in pending and not pending[cid][0].held]
            if not ready:
                return outcome
            loaded = await _load_rows(session, ready)
            # Edits and deletions of a message still waiting: looked for once a batch,
            # for the contacts with more than one message pending.
            amending = await pending_amendments(
                session, [cid for cid in ready if len(pending[cid]) > 1]
            )
            ledger = Ledger(turns=len(ready))
            snapshot = self.app.snapshot()  # the flow files, looked at once a batch
            for contact_id in ready:
                inbound, more = pending[contact_id][0], len(pending[contact_id]) > 1
                replies = await self._turn(
                    session,
                    loaded,
                    inbound,
                    amendments=amending.get(contact_id, ()),
                    more=more,
                    ledger=ledger,
                    snapshot=snapshot,
                    many=len(ready) > 1,
                )
                inbound.status = InboundStatus.DONE
                inbound.processed_at = self.clock()
                outcome.replies[contact_id] = replies
                if more:
                    outcome.more.add(contact_id)
            try:
                await ledger.write(session)
            except DBAPIError as exc:
                if exc.connection_invalidated or len(ready) > 1:
                    raise  # one at a time finds whose writes broke it
                inbound = pending[ready[0]][0]
                message = UserMessage.from_payload(inbound.payload)
                log.exception("message %s for contact %s failed", inbound.id, ready[0])
                raise _TurnFailedError(ready[0], inbound.id, message, exc) from exc
        return outcome

    async def _turn(
        self,
        session: AsyncSession,
        loaded: Mapping[int, _Rows],
        inbound: InboundMessage,
        *,
        amendments: Sequence[InboundMessage],
        more: bool,
        ledger: Ledger,
        snapshot: AppSnapshot,
        many: bool,
    ) -> list[Reply]:
        """Run one contact's turn in the batch's transaction; its writes go to ``ledger``."""
        contact_id = inbound.contact_id
        message = UserMessage.from_payload(inbound.payload)
        try:
            if message.kind in AMENDING_KINDS or more:
                # A deletion, or an edit or deletion of this message still waiting.
                amended = amend_before_turn(
                    inbound, message, amendments=amendments, more_pending=more, now=self.clock()
                )
                if amended is None:  # nothing to answer
                    return []
                message = amended
            rows = loaded.get(contact_id)
            if rows is None:
                raise FlowError(f"contact {contact_id} does not exist")
            turn = _Turn.start(
                self,
                session,
                rows,
                message=message,
                inbound_id=inbound.id,
                ledger=ledger,
                snapshot=snapshot,
            )
            # Alone, a refused action is undone by a savepoint; in a batch that would
            # cost three round trips a turn, so the rare refusal reruns the turn alone.
            turn.isolated = not many
            await turn.run()
            return turn.finish()
        except _RunAloneError:
            raise
        except DBAPIError as exc:
            if exc.connection_invalidated or many:
                raise  # gone, or maybe another turn's writes: the batch decides
            log.exception("message %s for contact %s failed", inbound.id, contact_id)
            raise _TurnFailedError(contact_id, inbound.id, message, exc) from exc
        except Exception as exc:
            log.exception("message %s for contact %s failed", inbound.id, contact_id)
            raise _TurnFailedError(contact_id, inbound.id, message, exc) from exc

    async def _fail(
        self, contact_id: int, inbound_id: int, message: UserMessage, exc: Exception
    ) -> list[Reply]:
        """Record that a message failed: its work is gone; the user gets an apology, the
        flow session an error event. Skipped if the message is no longer pending (another
        worker took it after the rollback released the lock)."""
        async with self.db.transaction() as session:
            await lock_contact(session, contact_id)
            inbound = await session.get(InboundMessage, inbound_id, populate_existing=True)
            if inbound is None or inbound.status is not InboundStatus.PENDING:
                return []
            replies = await self._record_failure(session, contact_id, inbound, message, exc)
            inbound.status = InboundStatus.FAILED
            inbound.error = f"{type(exc).__name__}: {exc}"[:2000]
            inbound.processed_at = self.clock()
            return replies

    async def _record_failure(
        self,
        session: AsyncSession,
        contact_id: int,
        inbound: InboundMessage,
        message: UserMessage,
        exc: Exception,
    ) -> list[Reply]:
        now = self.clock()
        conversation = await session.get(Conversation, contact_id, populate_existing=True)
        if conversation is not None and conversation.flow_session_id is not None:
            flow_session = await session.get(
                FlowSession, conversation.flow_session_id, populate_existing=True
            )
            if flow_session is not None:
                reason = f"{type(exc).__name__}: {exc}"
                tracker = StepTracker(clock=self.clock)
                tracker.error(
                    conversation.state or flow_session.current_step or "?",
                    message=reason,
                    input_value=message.display,
                    code=type(exc).__name__,
                )
                write_events(session, flow_session, tracker.events)
                flow_session.mark_ended(SessionStatus.ERROR, reason=reason, at=now)
            conversation.clear_flow()
            conversation.last_activity_at = now
        replies: list[Reply] = [Text(self.app.copy.text("apology"))]
        sandbox_contact = await session.scalar(
            select(Contact.sandbox).where(Contact.id == contact_id)
        )
        await self._queue(session, contact_id, inbound.id, replies, sandbox=bool(sandbox_contact))
        return replies

    async def _queue(
        self,
        session: AsyncSession,
        contact_id: int,
        inbound_id: int | None,
        replies: list[Reply],
        *,
        sandbox: bool = False,
    ) -> None:
        """Insert the replies as outbound rows now, in order (as ``sandbox`` rows, never
        sent, if the engine or the caller says so)."""
        ledger = Ledger()
        ledger.replies(
            contact_id, inbound_id, replies, now=self.clock(), sandbox=sandbox or self.sandbox
        )
        await ledger.write(session)


class _Turn:
    """Everything one message causes, inside its transaction."""

    def __init__(
        self,
        engine: Engine,
        *,
        session: AsyncSession,
        contact: Contact,
        conversation: Conversation,
        message: UserMessage | None,
        inbound_id: int | None,
        ledger: Ledger,
        snapshot: AppSnapshot,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.app = engine.app
        self.copy = engine.app.copy
        self.session = session
        self.contact = contact
        self.conversation = conversation
        self.message = message
        self.inbound_id = inbound_id
        self.now = engine.clock()
        # Read once per batch: files may change during the message.
        self.snap = snapshot
        self.flows = snapshot.flows
        self.timed_out = False
        # Whether the turn runs alone in its transaction (a savepoint undoes a refused
        # action) or in a batch (a refused action reruns the turn alone).
        self.isolated = True
        self.replies: list[Reply] = []
        self.flow_session: FlowSession | None = None
        self.tracker: StepTracker | None = None
        self.ctx = FlowContext(
            session=session,
            contact=contact,
            conversation=conversation,
            app=self.app,
            now=self.now,
            data=dict(conversation.data or {}),
            message=message,
            services=engine.services,
            # A sandbox contact (the console's simulator) is sandboxed on a live server too.
            sandbox=engine.sandbox or contact.sandbox,
        )

    @classmethod
    def start(
        cls,
        engine: Engine,
        session: AsyncSession,
        rows: _Rows,
        *,
        message: UserMessage | None,
        inbound_id: int | None,
        ledger: Ledger,
        snapshot: AppSnapshot,
    ) -> _Turn:
        """A turn for a contact whose rows were loaded under its lock."""
        contact, conversation, flow_session = rows
        if conversation is None:
            conversation = Conversation(contact_id=contact.id, data={}, retry_count=0)
            session.add(conversation)
        turn = cls(
            engine=engine,
            session=session,
            contact=contact,
            conversation=conversation,
            message=message,
            inbound_id=inbound_id,
            ledger=ledger,
            snapshot=snapshot,
        )
        if message is not None:
            contact.last_inbound_at = turn.now
        if conversation.flow_session_id is not None:
            turn.flow_session = flow_session
            turn.ctx.flow_session_id = conversation.flow_session_id
            turn.tracker = StepTracker(
                entered_at=conversation.step_entered_at,
                retry_count=conversation.retry_count,
                clock=engine.clock,
            )
        return turn

    # routing --------------------------------------------------------------------------
    async def run(self) -> None:
        """Route the message: a tapped intent or flow, a typed intent, the flow, or idle."""
        message = self.message
        assert message is not None
        if message.referral is not None:
            self._keep_referral(message)
        if self.conversation.handed_off_at is not None:
            return  # a person has this conversation; the bot stays quiet
        if message.kind == "edit":
            if not message.text or message.media is not None:
                await self._ask_to_resend_edit()
                return
            # An edit of a message already answered is what the user now means: their
            # next answer, as if typed (one still waiting was replaced before the turn).
            message = dataclasses.replace(message, kind="text", refers_to=None)
            self.message = self.ctx.message = message
        if message.referral is not None:
            await self._greet_lead()
            return
        if await self._check_active_flow():
            return
        if message.kind == "reaction":
            if message.emoji:
                self.replies.append(Text(self.copy.text("reaction.thanks", emoji=message.emoji)))
            await self._prompt_current()
            return
        if message.kind == "reply" and message.reply_id:
            prefix, _, name = message.reply_id.partition(":")
            if prefix == "intent" and name:
                await self._run_intent(name)
                return
            if prefix == "flow" and name:
                await self.begin_flow(name, {})
                return
        # Typed words may be intents; a tapped option is always an answer, even one
        # titled "Cancel" or "Help".
        if message.kind == "text" and message.text:
            intent = self.snap.match_intent(message.text, idle=self.spec is None)
            if intent is not None:
                await self._run_intent(intent.name)
                return
        if self.spec is not None:
            await self._answer()
            return
        await self._idle()

    def _keep_referral(self, message: UserMessage) -> None:
        """Remember the ad that brought the contact (the latest one wins)."""
        assert message.referral is not None
        self.contact.referral = message.referral.to_payload()
        self.contact.referred_at = message.timestamp or self.now

    async def _greet_lead(self) -> None:
        """Greet someone who came from an ad: a fresh start, whatever was going on.

        The app's ``on_referral`` handler answers if it says anything (a reply, a flow, a
        hand-off); otherwise the main menu, headed by the copy ``lead.greeting``.
        """
        message = self.message
        assert message is not None
        assert message.referral is not None
        if self.conversation.flow_name is not None:
            self._end_session(SessionStatus.ABANDONED, "came back through an ad")
        handler = self.app.on_referral
        if handler is not None:
            await _maybe_await(handler(self.ctx))
            self._take_context_effects()
            if self.ctx.handoff_reason is not None:
                reason, self.ctx.handoff_reason = self.ctx.handoff_reason, None
                self._hand_off(reason)
                return
            if self.ctx.next_flow is not None:
                name, data = self.ctx.next_flow
                self.ctx.next_flow = None
                await self.begin_flow(name, data)
                return
            if self.replies:
                return
        headline = message.referral.headline
        heading = (
            self.copy.text("lead.greeting_ad", business=self.app.name, headline=headline)
            if headline
            else self.copy.text("lead.greeting", business=self.app.name)
        )
        await self._show_menu(heading)

    async def _ask_to_resend_edit(self) -> None:
        """An edit the bot cannot use: ask once for the message again, never twice in a
        row (a user fixing a typo three times hears it once)."""
        notice = self.copy.text("edit.resend")
        if not await last_reply_was(self.session, self.contact.id, notice):
            self.replies.append(Text(notice))

    @property
    def spec(self) -> FlowSpec | None:
        name = self.conversation.flow_name
        if name is None or self.flow_session is None:
            return None
        return self.flows.get(name)

    async def _check_active_flow(self) -> bool:
        """End the active session if it timed out or its flow no longer fits it.

        Returns whether the message was used up (the flow restarted with a new question;
        the message answered an old one and must not be applied to the new).
        """
        conversation = self.conversation
        if conversation.flow_name is None:
            return False
        spec = self.flows.get(conversation.flow_name)
        if self.flow_session is None or self.flow_session.status is not SessionStatus.ACTIVE:
            self._drop_flow()
            return False
        if spec is None:
            self._end_session(SessionStatus.ABANDONED, "the flow no longer exists")
            self.replies.append(Text(self.copy.text("flow.gone")))
            return False
        idle_since = conversation.last_activity_at or self.flow_session.last_activity_at
        if idle_since is not None and self.now - idle_since > spec.timeout:
            self._end_session(SessionStatus.ABANDONED, "timed out without a reply")
            self.timed_out = True
            return False
        if conversation.state not in spec.machine.states_map:
            # The flow file changed under a live conversation: restart it politely.
            old = conversation.state
            self._end_session(
                SessionStatus.ABANDONED,
                f"flow changed (version {spec.version}); step {old!r} no longer exists",
            )
            self.replies.append(Text(self.copy.text("flow.changed")))
            await self.begin_flow(spec.name, {})
            return True
        return False

    async def _run_intent(self, name: str) -> None:
        intent = self.snap.intents.get(name)
        if intent is None or name == "retry":
            if name == "retry" and self.spec is not None:
                await self._prompt_current()
            else:
                await self._show_menu(None)
            return
        if intent.handler is not None:
            await _maybe_await(intent.handler(self.ctx))
            self._take_context_effects()
            if self.ctx.handoff_reason is not None:
                reason, self.ctx.handoff_reason = self.ctx.handoff_reason, None
                self._hand_off(reason)
                return
            if self.ctx.next_flow is not None and intent.flow is None:
                name, data = self.ctx.next_flow
                self.ctx.next_flow = None
                await self.begin_flow(name, data)
                return
        if intent.flow is not None:
            data = self.ctx.next_flow[1] if self.ctx.next_flow else {}
            self.ctx.next_flow = None
            await self.begin_flow(intent.flow, dict(data))
            return
        if intent.handler is not None:
            # An intent that only answered (e.g. opening hours) leaves the flow where it
            # was; ask its question again so the user knows how to go on.
            await self._prompt_current()
            return
        await self._core_intent(intent)

    async def _core_intent(self, intent: Intent) -> None:
        if intent.name in ("menu", "greeting"):
            if self.spec is not None:
                self._end_session(SessionStatus.ABANDONED, "left for the main menu")
            await self._show_menu(self.app.greeting)
        elif intent.name == "help":
            self.replies.append(Text(self._help_text()))
            if self.spec is not None:
                await self._prompt_current()
        elif intent.name == "cancel":
            if self.spec is not None:
                self._end_session(SessionStatus.ABANDONED, "cancelled by the user")
                self.replies.append(Text(self.copy.text("cancel.done")))
            else:
                self.replies.append(Text(self.copy.text("cancel.nothing")))
                await self._show_menu(None)
        elif intent.name == "human":
            self._hand_off("the user asked for a person")

    def _help_text(self) -> str:
        lines = [self.app.help_text, "", self.copy.text("help.commands")]
        for intent in self.snap.intents.values():
            if intent.description and intent.label:
                line = self.copy.text(
                    "help.line", word=intent.label, description=intent.description
                )
                lines.append(line)
        return "\n".join(lines)

    async def _show_menu(self, heading: str | None) -> None:
        self.replies.append(self._menu(heading))

    def _menu(self, heading: str | None) -> Reply:
        options = self.snap.menu_options()
        body = heading or self.copy.text("menu.heading")
        if not options:
            return Text(f"{body}\n\n{self._help_text()}")
        # Buttons for up to three plain options, else (or when their titles cannot be
        # told apart in a button's 20 characters) a list.
        return choice_message(body, options, button=self.app.menu_button)

    async def _idle(self) -> None:
        message = self.message
        assert message is not None
        if self.timed_out:
            await self._show_menu(self.copy.text("menu.timed_out"))
            return
        if message.kind in ("text", "reply") and message.text:
            word = message.text.strip().casefold()
            for index, item in enumerate(self.snap.menu_items, 1):
                if word in (str(index), item.title.casefold()):
                    if item.flow:
                        await self.begin_flow(item.flow, {})
                    elif item.intent:
                        await self._run_intent(item.intent)
                    return
            await self._show_menu(self.copy.text("menu.not_understood"))
            return
        await self._show_menu(self.copy.text("menu.unsupported"))

    # flows -------------------------------------------------------------------------------
    async def begin_flow(self, name: str, data: dict[str, Any]) -> None:
        """End any active flow and start ``name`` at its initial step."""
        spec = self.flows.get(name)
        if spec is None:
            log.error("unknown flow %r asked for", name)
            self.replies.append(Text(self.copy.text("flow.unavailable")))
            await self._show_menu(None)
            return
        if self.spec is not None:
            self._end_session(SessionStatus.ABANDONED, f"switched to {name}")
        session_id = await self.ledger.flow_session_id(self.session)
        flow_session = FlowSession(
            id=session_id,
            contact_id=self.contact.id,
            flow_name=spec.name,
            flow_version=spec.version,
            started_at=self.now,
            last_activity_at=self.now,
            status=SessionStatus.ACTIVE,
            context_data=_public(data),
        )
        self.session.add(flow_session)  # inserted with the batch's other rows
        if session_id is None:  # SQLite: the database gives the id as it inserts
            await self.session.flush()
        conversation = self.conversation
        conversation.flow_name = spec.name
        conversation.flow_version = spec.version
        conversation.flow_session_id = flow_session.id
        self.ctx.flow_session_id = flow_session.id
        conversation.state = None
        conversation.retry_count = 0
        self.flow_session = flow_session
        self.tracker = StepTracker(clock=self.engine.clock)
        self.ctx.data = dict(data)
        with self.engine.machines.machine(
            spec, None, data=self.ctx.data, ctx=self.ctx, tracker=self.tracker
        ) as (machine, model):
            await _maybe_await(machine.activate_initial_state())
            entered = model.state
        await self._settle(spec, entered)

    async def _answer(self) -> None:
        spec = self.spec
        message = self.message
        assert spec is not None
        assert message is not None
        assert self.tracker is not None
        state = self.conversation.state
        assert state is not None
        step = spec.step(state)
        outcome = await self._validate(step, message)
        if isinstance(outcome, Rejected):
            await self._retry(step, outcome.reason, code=outcome.code)
            return
        data_before = copy.deepcopy(self.ctx.data)
        events_before = len(self.tracker.events)
        if step.save:
            self.ctx.data[step.save] = outcome.value
        self.ctx.value = outcome.value
        answer = {
            "value": outcome.value,
            "input_value": message.display,
            "output_value": outcome.display,
        }
        try:
            with self.engine.machines.machine(
                spec, state, data=self.ctx.data, ctx=self.ctx, tracker=self.tracker
            ) as (machine, model):
                if self.isolated:
                    async with self.session.begin_nested():
                        await _maybe_await(machine.send(ANSWER_EVENT, **answer))
                else:
                    await _maybe_await(machine.send(ANSWER_EVENT, **answer))
                rested = model.state
        except ActionError as exc:
            if not self.isolated:
                raise _RunAloneError(self.contact.id) from exc
            # A business rule said no (e.g. the last one just sold): nothing of the attempt
            # stays; the user hears why and may answer again.
            await self._reload_after_savepoint()
            self._rollback_attempt(data_before, events_before)
            await self._retry(step, str(exc), code=exc.code)
            return
        if self.tracker.unmatched or (rested == state and self.tracker.transitions == 0):
            self._rollback_attempt(data_before, events_before)
            await self._retry(step, self.copy.text("answer.not_here"), code="answer.not_here")
            return
        if step.has_options:
            self.ctx.data.pop(SHOWN_KEY, None)
        await self._settle(spec, rested)

    async def _reload_after_savepoint(self) -> None:
        # Rolling back a savepoint expires what it touched; load it back asynchronously
        # (a lazy load on attribute access would need I/O outside the event loop).
        for row in (self.contact, self.conversation, self.flow_session):
            if row is not None:
                await self.session.refresh(row)

    def _rollback_attempt(self, data_before: dict[str, Any], events_before: int) -> None:
        assert self.tracker is not None
        self.ctx.data = data_before
        self.ctx.replies.clear()
        self.ctx.next_flow = None
        self.ctx.handoff_reason = None
        del self.tracker.events[events_before:]
        self.tracker.unmatched = False

    async def _validate(self, step: Step, message: UserMessage) -> Outcome:
        expect = step.validator
        factory = BUILTIN_VALIDATORS.get(expect.kind) or self.app.registry.validators[expect.kind]
        params = dict(expect.params)
        templated = [str(v) for v in params.values() if isinstance(v, str) and "{" in v]
        if templated:
            values = await template_values(self.ctx, *templated)
            for key, value in params.items():
                if isinstance(value, str) and "{" in value:
                    rendered = render(value, values)
                    params[key] = int(rendered) if rendered.lstrip("-").isdigit() else rendered
        validator: Validator = factory(**params)
        context = ValidationContext(
            options=shown_options(self.ctx.data, step),
            today=self.ctx.today,
            data=self.ctx.data,
            default_region=self.app.default_region,
            copy=self.copy,
        )
        return validator(message, context)

    async def _retry(self, step: Step, reason: str, *, code: str) -> None:
        assert self.tracker is not None
        assert self.message is not None
        self.tracker.retry(step.name, input_value=self.message.display, reason=reason, code=code)
        self.conversation.retry_count = self.tracker.retry_count
        self.replies.append(Text(reason))
        if self.tracker.retry_count % self.app.max_retries == 0:
            self.replies.append(
                Buttons(
                    self.copy.text("retry.offer"),
                    (
                        Option("intent:human", self.copy.text("retry.person")),
                        Option("intent:retry", self.copy.text("retry.again")),
                        Option("intent:menu", self.copy.text("retry.menu")),
                    ),
                )
            )
            return
        self.replies.extend(await retry_prompt(self.ctx, step, code=code) or [])

    async def _prompt_current(self, step: Step | None = None) -> None:
        spec = self.spec
        if spec is None or self.conversation.state is None:
            return
        step = step or spec.step(self.conversation.state)
        prompt = await step_prompt(self.ctx, step)
        self.replies.extend(prompt or [])

    async def _settle(self, spec: FlowSpec, state: str | None) -> None:
        """Act on the state the machine rests in after the event."""
        assert self.tracker is not None
        conversation = self.conversation
        self._take_context_effects()
        conversation.state = state
        conversation.step_entered_at = self.tracker.entered_at
        conversation.retry_count = self.tracker.retry_count
        if self.ctx.handoff_reason is not None:
            self._hand_off(self.ctx.handoff_reason)
            return
        assert state is not None
        step = spec.step(state)
        next_flow = self.ctx.next_flow
        self.ctx.next_flow = None
        if step.final:
            prompt = await step_prompt(self.ctx, step)
            self.replies.extend(prompt or [])
            assert self.flow_session is not None
            self.flow_session.mark_completed(self.now, outcome=step.outcome)
            self._close_session()
            if next_flow is not None:
                await self.begin_flow(*next_flow)
            elif not prompt:
                self.replies.append(Text(self.copy.text("flow.done")))
            return
        if next_flow is not None:
            self._end_session(SessionStatus.ABANDONED, f"continued in {next_flow[0]}")
            await self.begin_flow(*next_flow)
            return
        prompt = await step_prompt(self.ctx, step)
        if prompt is None:
            empty = step.empty or self.copy.text("choices.empty")
            self.replies.append(Text(render(empty, await template_values(self.ctx, empty))))
            # Not abandoned: the customer did nothing wrong, there was nothing to do.
            if self.flow_session is not None:
                self.flow_session.mark_completed(self.now, outcome=SessionOutcome.NOTHING_TO_DO)
                self.flow_session.ended_reason = f"nothing to choose from at {step.name}"
            self._close_session()
            return
        self.replies.extend(prompt)

    def _take_context_effects(self) -> None:
        self.replies.extend(self.ctx.replies)
        self.ctx.replies.clear()

    # ending ------------------------------------------------------------------------------
    def _end_session(self, status: SessionStatus, reason: str) -> None:
        if self.flow_session is not None and self.flow_session.status is SessionStatus.ACTIVE:
            self.flow_session.mark_ended(status, reason=reason, at=self.now)
        self._close_session()

    def _close_session(self) -> None:
        """Write the session's events and detach it from the conversation."""
        flow_session = self.flow_session
        if flow_session is not None:
            self._write_tracking(flow_session)
            flow_session.context_data = _public(self.ctx.data)
        self._drop_flow()

    def _drop_flow(self) -> None:
        self.conversation.clear_flow()
        self.ctx.data = {}
        self.ctx.flow_session_id = None
        self.flow_session = None
        self.tracker = None

    def _write_tracking(self, flow_session: FlowSession) -> None:
        if self.tracker is not None:
            # Buffered, then inserted with the batch's other rows.
            self.ledger.events.extend(event_rows(flow_session, self.tracker.events))
            self.tracker.events.clear()
            if self.tracker.current_step is not None:
                flow_session.current_step = self.tracker.current_step
        if self.conversation.state is not None and flow_session.status is SessionStatus.ACTIVE:
            flow_session.current_step = self.conversation.state
        flow_session.last_activity_at = self.now

    def _hand_off(self, reason: str) -> None:
        if self.flow_session is not None:
            self.flow_session.context_data = {
                **_public(self.ctx.data),
                "handoff": {"step": self.conversation.state, "reason": reason},
            }
            spec = self.spec
            state = self.conversation.state
            if spec is not None and state is not None and spec.step(state).final:
                # A flow whose purpose is the hand-off (support) completed it.
                self.flow_session.mark_completed(self.now)
                self.flow_session.ended_reason = f"handed to a person: {reason}"
                self._close_session()
            else:
                self._end_session(SessionStatus.ABANDONED, f"handed to a person: {reason}")
        self.conversation.handed_off_at = self.now
        self.conversation.handoff_reason = reason
        self.replies.append(Text(self.copy.text("handoff.started")))

    def finish(self) -> list[Reply]:
        """Settle the conversation and buffer the tracking and the replies in the ledger
        (the batch writes them; the ORM rows are flushed with it)."""
        conversation = self.conversation
        conversation.last_activity_at = self.now
        if self.flow_session is not None:
            self._write_tracking(self.flow_session)
            self.flow_session.context_data = _public(self.ctx.data)
        conversation.data = dict(self.ctx.data) if conversation.flow_name else {}
        self._take_context_effects()
        if (
            not self.replies
            and self.message is not None
            and self.message.kind not in ("reaction", "edit")
            and conversation.handed_off_at is None
        ):
            self.replies.append(self._menu(None))
        self.ledger.replies(
            self.contact.id,
            self.inbound_id,
            self.replies,
            now=self.now,
            sandbox=self.ctx.sandbox,
            fallbacks=self.ctx.fallbacks,
        )
        return list(self.replies)


async def release_in(session: AsyncSession, contact_id: int) -> bool:
    """In the caller's transaction, give a handed-off conversation back to the bot;
    returns whether it was handed off."""
    await lock_contact(session, contact_id)
    conversation = await session.get(Conversation, contact_id)
    if conversation is None or conversation.handed_off_at is None:
        return False
    conversation.handed_off_at = None
    conversation.handoff_reason = None
    return True


async def release_handoff(db: Database, contact_id: int) -> bool:
    """Give a handed-off conversation back to the bot; returns whether it was handed off."""
    async with db.transaction() as session:
        return await release_in(session, contact_id)


async def conversation_replies(db: Database, contact_id: int, after_id: int = 0) -> list[Reply]:
    """The replies stored for a contact after outbound id ``after_id`` (for transcripts)."""
    async with db.read() as session:
        rows = await session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.contact_id == contact_id, OutboundMessage.id > after_id)
            .order_by(OutboundMessage.id)
        )
        return [reply_from_payload(r.kind, r.payload) for r in rows]
