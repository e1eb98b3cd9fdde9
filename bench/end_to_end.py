"""End-to-end processing: inbound → state transition → step events → reply row.

Three measurements, all in this process on the benchmark's PostgreSQL database:

- :func:`engine_rate`: Nyala's :class:`flows.Engine` on the test café. Each contact runs
  the order-flow script; each message is stored with ``Engine.receive`` and processed
  either on its own (``Engine.process_pending``) or, as the server does, in batches of
  contacts (``Engine.process_batch``: one transaction for N contacts' turns). Timed from
  the first store until the last message is processed.
- :func:`asyncpg_rate`: the ceiling. The same number of messages, same contacts in
  flight, each one bare asyncpg transaction of four statements on the same tables: insert
  the inbound row, update the conversation's state, insert a step event, insert a reply.
- :func:`machine_us`: the state machine alone: python-statemachine rebuilds the order
  flow's machine at a stored state (or takes it from the engine's pool) and sends it one
  ``answer`` event, per message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import asyncpg

from analytics.tracking import StepTracker
from flows import App, ContactRef, Engine, FlowContext, UserMessage
from flows.context import EntryRecorder, FlowModel
from flows.machines import MachinePool
from flows.spec import ANSWER_EVENT, FlowSpec
from storage import utcnow

SCRIPT_FIRST = ("order", "Ada Lovelace", "Large", "2", "Confirm")
"""A whole order: trigger, name, size (typed button title), count, confirm."""
SCRIPT_AGAIN = ("order", "Large", "2", "Confirm")
"""The next order: the name is known, so its step is skipped."""

_runs = itertools.count(1)


def script(conversations: int) -> tuple[str, ...]:
    """The texts one contact sends: ``conversations`` orders in a row."""
    return SCRIPT_FIRST + SCRIPT_AGAIN * (conversations - 1)


def script_text(conversations: int) -> str:
    """The script in words, for the docs."""
    first = f"the order flow's {len(SCRIPT_FIRST)} messages (trigger, name, size, count, confirm)"
    if conversations == 1:
        return first
    again = "once more" if conversations == 2 else f"{conversations - 1} more times"
    return (
        f"{len(script(conversations))} messages: {first}, then the next order "
        f"{again} ({len(SCRIPT_AGAIN)} messages: the name is known, its step is skipped)"
    )


def _wa_id(run: int, index: int, offset: int) -> str:
    # Digits like WhatsApp's wa_id; unique per run of this process.
    return f"{offset}{run:04d}{index:06d}"


@dataclass(frozen=True, slots=True)
class Processed:
    """What one run stored, as checked in the database afterwards."""

    messages: int
    seconds: float
    done: int
    failed: int
    replies: int
    step_events: int

    @property
    def rate(self) -> float:
        """Messages processed per second."""
        return self.messages / self.seconds


async def _bounded(concurrency: int, jobs: list[Callable[[], Awaitable[None]]]) -> float:
    """Run ``jobs`` with at most ``concurrency`` at once; the wall time in seconds."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with semaphore:
            await job()

    started = time.perf_counter()
    await asyncio.gather(*(one(job) for job in jobs))
    return time.perf_counter() - started


async def _mark(conn: asyncpg.Connection) -> tuple[int, int]:
    inbound = await conn.fetchval("SELECT coalesce(max(id), 0) FROM inbound_messages")
    events = await conn.fetchval("SELECT coalesce(max(id), 0) FROM flow_step_events")
    return int(inbound), int(events)


async def _processed(
    conn: asyncpg.Connection, mark: tuple[int, int], messages: int, seconds: float
) -> Processed:
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM inbound_messages WHERE id > $1 AND status = 'done'),
               (SELECT count(*) FROM inbound_messages WHERE id > $1 AND status = 'failed'),
               (SELECT count(*) FROM outbound_messages WHERE inbound_id > $1),
               (SELECT count(*) FROM flow_step_events WHERE id > $2)
        """,
        *mark,
    )
    assert row is not None
    done, failed, replies, events = (int(v) for v in row)
    return Processed(messages, seconds, done, failed, replies, events)


async def engine_rate(
    engine: Engine,
    conn: asyncpg.Connection,
    *,
    contacts: int,
    conversations: int,
    concurrency: int,
    batch: int = 0,
    workers: int = 2,
    on_phase: Callable[[str], None] | None = None,
) -> Processed:
    """Nyala's Engine over the script, ``contacts`` conversations at once.

    ``batch`` 0: each message is stored (``receive``) and processed (``process_pending``)
    on its own, ``concurrency`` contacts in flight. ``batch`` N: the way the server
    processes (:class:`bot.whatsapp.processing.Processor`): every contact's next message
    is stored (``concurrency`` stores at once), then all are processed with
    ``Engine.process_batch``, N contacts a transaction, ``workers`` batches at once (the
    server's defaults: 32 and 2); message after message of the script. Timed from the first
    store to the last turn. ``on_phase`` hears "store" and "process" as each wave's stores
    and turns begin (batches only)."""
    run = next(_runs)
    texts = script(conversations)
    base = utcnow().replace(microsecond=0)
    refs = [
        ContactRef(wa_id=_wa_id(run, index, 1), profile_name=f"Bench {index}")
        for index in range(contacts)
    ]

    def message(index: int, step: int) -> UserMessage:
        return UserMessage(
            id=f"wamid.E2E.{run}.{index}.{step}",
            kind="text",
            text=texts[step],
            timestamp=base + dt.timedelta(seconds=step),
        )

    def job(index: int) -> Callable[[], Awaitable[None]]:
        async def converse() -> None:
            for step in range(len(texts)):
                received = await engine.receive(refs[index], message(index, step))
                await engine.process_pending(received.contact_id)

        return converse

    async def waves() -> None:
        ids: list[int] = [0] * contacts
        for step in range(len(texts)):

            def store(index: int, step: int = step) -> Callable[[], Awaitable[None]]:
                async def one() -> None:
                    received = await engine.receive(refs[index], message(index, step))
                    ids[index] = received.contact_id

                return one

            if on_phase is not None:
                on_phase("store")
            await _bounded(concurrency, [store(i) for i in range(contacts)])
            if on_phase is not None:
                on_phase("process")
            chunks = [ids[start : start + batch] for start in range(0, contacts, batch)]

            def turns(chunk: list[int]) -> Callable[[], Awaitable[None]]:
                async def one() -> None:
                    await engine.process_batch(chunk, wait=True)

                return one

            await _bounded(workers, [turns(chunk) for chunk in chunks])

    mark = await _mark(conn)
    if batch:
        started = time.perf_counter()
        await waves()
        seconds = time.perf_counter() - started
    else:
        seconds = await _bounded(concurrency, [job(i) for i in range(contacts)])
    return await _processed(conn, mark, contacts * len(texts), seconds)


_INSERT_CONTACT = """
INSERT INTO contacts (wa_id, profile_name, attributes, created_at, updated_at)
VALUES ($1, $2, '{}', $3, $3) RETURNING id
"""
_INSERT_SESSION = """
INSERT INTO flow_sessions (contact_id, flow_name, flow_version, started_at, status,
                           context_data, last_activity_at)
VALUES ($1, 'order_flow', 'bench', $2, 'active', '{}', $2) RETURNING id
"""
_INSERT_CONVERSATION = """
INSERT INTO conversations (contact_id, flow_name, flow_version, state, data,
                           flow_session_id, retry_count, created_at, updated_at)
VALUES ($1, 'order_flow', 'bench', 'ask_name', '{}', $2, 0, $3, $3)
"""
# The four statements of one message.
_INSERT_INBOUND = """
INSERT INTO inbound_messages (wa_message_id, contact_id, kind, payload, received_at,
                              sent_at, status, processed_at)
VALUES ($1, $2, 'text', $3, $4, $5, 'done', $4) RETURNING id
"""
_UPDATE_STATE = """
UPDATE conversations SET state = $2, data = $3, step_entered_at = $4,
                         last_activity_at = $4, updated_at = $4
WHERE contact_id = $1
"""
_INSERT_EVENT = """
INSERT INTO flow_step_events (session_id, step_name, action, timestamp, time_spent,
                              input_value, retry_count, flow_name, flow_version,
                              session_started_at)
VALUES ($1, $2, 'completed', $3, 1.0, $4, 0, 'order_flow', 'bench', $5)
"""
_INSERT_REPLY = """
INSERT INTO outbound_messages (contact_id, inbound_id, kind, payload, status, created_at,
                               attempts)
VALUES ($1, $2, 'text', $3, 'sandbox', $4, 0)
"""
_STATES = ("ask_name", "ask_size", "ask_count", "confirm", "done")


async def asyncpg_rate(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    *,
    contacts: int,
    conversations: int,
    concurrency: int,
) -> Processed:
    """The ceiling: one bare transaction of four statements per message."""
    run = next(_runs)
    texts = script(conversations)
    now = utcnow()
    ids: list[tuple[int, int]] = []
    async with conn.transaction():  # set-up, not timed
        for index in range(contacts):
            contact_id = await conn.fetchval(
                _INSERT_CONTACT, _wa_id(run, index, 2), f"Bench {index}", now
            )
            session_id = await conn.fetchval(_INSERT_SESSION, contact_id, now)
            await conn.execute(_INSERT_CONVERSATION, contact_id, session_id, now)
            ids.append((int(contact_id), int(session_id)))
    started = now  # every session's start (the step events carry it)

    def job(index: int) -> Callable[[], Awaitable[None]]:
        contact_id, session_id = ids[index]

        async def converse() -> None:
            data: dict[str, Any] = {}
            for step, text in enumerate(texts):
                at = utcnow()
                state = _STATES[(step + 1) % len(_STATES)]
                data[state] = text
                payload = {"id": f"wamid.PG.{run}.{index}.{step}", "kind": "text", "text": text}
                async with pool.acquire() as db, db.transaction():
                    inbound_id = await db.fetchval(
                        _INSERT_INBOUND, payload["id"], contact_id, json.dumps(payload), at, at
                    )
                    await db.execute(_UPDATE_STATE, contact_id, state, json.dumps(data), at)
                    await db.execute(_INSERT_EVENT, session_id, state, at, text, started)
                    reply = {"text": f"Next: {state}"}
                    await db.execute(_INSERT_REPLY, contact_id, inbound_id, json.dumps(reply), at)

        return converse

    mark = await _mark(conn)
    seconds = await _bounded(concurrency, [job(i) for i in range(contacts)])
    return await _processed(conn, mark, contacts * len(texts), seconds)


async def machine_us(
    spec: FlowSpec, iterations: int, *, listeners: bool, pooled: bool = False
) -> float:
    """Microseconds per message: a machine at a stored state, sent ``answer``.

    Alternates the order flow's ``ask_size → ask_count`` and ``ask_count → confirm``
    (no app callbacks on them), with the engine's listeners (step tracker, entry
    recorder) when ``listeners``. The machine is built for each message, or with
    ``pooled`` taken from a :class:`flows.machines.MachinePool` and reset, as the engine
    does (always with its listeners).
    """
    ctx = cast(FlowContext, None)  # these transitions call nothing that needs a context
    cases = (("ask_size", "large", "ask_count"), ("ask_count", 2, "confirm"))
    entered = utcnow()
    pool = MachinePool()
    started = time.perf_counter()
    for i in range(iterations):
        state, value, target = cases[i & 1]
        data = {"name": "Ada", "size": "large"}
        if pooled:
            tracker = StepTracker(entered_at=entered)
            with pool.machine(spec, state, data=data, ctx=ctx, tracker=tracker) as (
                machine,
                model,
            ):
                result = machine.send(ANSWER_EVENT, value=value, input_value=str(value))
                if asyncio.iscoroutine(result):
                    await result
        else:
            model = FlowModel(state, data, ctx)
            attached: list[Any] = (
                [StepTracker(entered_at=entered), EntryRecorder(model)] if listeners else []
            )
            machine = spec.machine(model=model, listeners=attached)
            result = machine.send(ANSWER_EVENT, value=value, input_value=str(value))
            if asyncio.iscoroutine(result):
                await result
        if model.state != target:
            raise AssertionError(f"{state} + answer went to {model.state}, not {target}")
    return (time.perf_counter() - started) / iterations * 1e6


def order_flow(app: App) -> FlowSpec:
    """The test café's order flow."""
    return app.flow("order_flow")
