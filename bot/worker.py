"""Processes without a web server: processing (``nyala work``, and the children of ``nyala
serve --processors N``) and sending (the one sending child of ``nyala serve --processors
N`` in live mode).

The web process acknowledges webhooks, stores the messages and announces their contacts
(:class:`bot.whatsapp.processing.Announcer`); each processing process listens for those
announcements and processes the contacts in batches. ``nyala work`` also sends the replies
(its share of ``NYALA_SEND_RATE``); under ``nyala serve --processors N`` one sending
process of its own sends them all, woken by a ``NOTIFY`` when a batch queued replies
(:class:`bot.whatsapp.outbox.RemoteWake`). Processing and sending then never take the
event loop from the acknowledgements, nor from each other, and run at a lower priority
(``NYALA_PROCESSING_NICE``) so that they do not take the cores from them either. Any number of
processing processes, on this machine or others, can share one PostgreSQL; recovery finds
whatever an announcement missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from typing import Literal

import aiohttp

from bot.metrics import Metrics
from bot.settings import Settings
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.outbox import Outbox, RemoteWake, listen_for_outbound
from bot.whatsapp.pressure import AckPressure
from bot.whatsapp.processing import Processor, listen_for_kicks
from flows import App, Engine
from flows.runtime import Runtime
from storage import Database, migrate

log = logging.getLogger("nyala.worker")


Role = Literal["work", "process", "send"]
"""What a process without a web server does: process and send (``nyala work``), process
only, or send only (the children of ``nyala serve --processors N``)."""


@contextlib.asynccontextmanager
async def _database(settings: Settings, flow_app: App, what: str) -> AsyncIterator[Database]:
    """The process's database, reachable and migrated, disposed of at the end (a
    ``what`` process needs PostgreSQL)."""
    db = Database(settings.database_url, log_parameters=settings.log_sql_parameters)
    if not db.is_postgresql:
        raise ValueError(f"a {what} process needs PostgreSQL (set DATABASE_URL)")
    try:
        await db.wait_ready()
        await migrate(db, flow_app.migration_locations, metadata=flow_app.metadata)
        yield db
    finally:
        await db.dispose()


async def work(
    settings: Settings,
    flow_app: App,
    stop: asyncio.Event,
    *,
    send: bool = True,
    pressure: AckPressure | None = None,
) -> None:
    """Process, and send unless ``send`` is false, until ``stop`` is set (PostgreSQL
    only). Without ``send``, a sending process elsewhere sends: it is woken with a
    ``NOTIFY`` whenever replies were queued here. With ``pressure`` (a child of ``nyala
    serve``), each batch makes way for a flood of webhooks first."""
    # Deferred import: the server module and this one share its shutdown helper.
    from bot.server import stop_tasks

    async with _database(settings, flow_app, "processing") as db:
        metrics = Metrics()
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(aiohttp.ClientSession())
            outbox: Outbox | None = None
            remote: RemoteWake | None = None
            if settings.live and send:
                client = GraphClient.from_settings(http, settings)
                outbox = Outbox.from_settings(db, client, metrics, settings)
            elif settings.live:
                remote = RemoteWake(db)
            wake = outbox.wake if outbox is not None else remote.wake if remote else None
            runtime = await stack.enter_async_context(
                Runtime.start(
                    flow_app, db, sandbox=not settings.live, settings=settings, wake_outbox=wake
                )
            )
            engine = Engine(db, flow_app, sandbox=not settings.live, services=runtime.services)
            processor = Processor(
                engine,
                metrics,
                batch_size=settings.batch_size,
                workers=settings.processing_workers,
                busy_window=0.0,  # no webhooks arrive here: nothing to make room for
                on_replies=wake,
                pressure=pressure,
            )
            tasks = [
                asyncio.create_task(listen_for_kicks(processor, db), name="listen"),
                asyncio.create_task(processor.run_recovery(), name="inbox-recovery"),
            ]
            if outbox is not None:
                tasks.append(asyncio.create_task(outbox.run(), name="outbox"))
            log.info("processing for %s (database %s)", flow_app.name, db.display_url)
            try:
                await stop.wait()
            finally:
                await stop_tasks(tasks, patience=db.cancel_patience)
                await processor.drain(grace=settings.shutdown_grace_seconds)
                if remote is not None:
                    await remote.drain()


async def send(
    settings: Settings,
    flow_app: App,
    stop: asyncio.Event,
    *,
    pressure: AckPressure | None = None,
) -> None:
    """Send the queued replies until ``stop`` is set: the sending process of ``nyala serve
    --processors N`` in live mode (PostgreSQL only). It is woken by the processing
    processes' ``NOTIFY`` and looks for due rows every ``poll_interval`` anyway; with
    ``pressure``, each round makes way for a flood of webhooks first."""
    from bot.server import stop_tasks

    async with _database(settings, flow_app, "sending") as db, aiohttp.ClientSession() as http:
        client = GraphClient.from_settings(http, settings)
        outbox = Outbox.from_settings(db, client, Metrics(), settings, pressure=pressure)
        tasks = [
            asyncio.create_task(outbox.run(), name="outbox"),
            asyncio.create_task(listen_for_outbound(outbox, db), name="listen-outbound"),
        ]
        log.info("sending for %s (database %s)", flow_app.name, db.display_url)
        try:
            await stop.wait()
        finally:
            await stop_tasks(tasks, patience=db.cancel_patience)


def yield_to_webhooks(nice: int) -> None:
    """Lower this process's priority by ``nice`` (the children of ``nyala serve
    --processors``): when the cores are busy, the webhook's process (priority unchanged)
    runs first, so a burst of webhooks is acknowledged at once and the turns and sends
    catch up after it. Only scheduling changes: nothing waits while a core is idle."""
    if nice and hasattr(os, "nice"):
        os.nice(nice)


def run_worker(
    settings: Settings,
    flow_app: App,
    *,
    role: Role = "work",
    pressure: AckPressure | None = None,
) -> None:
    """Run :func:`work` (``role`` "work": process and send; "process": process only) or
    :func:`send` ("send") until SIGTERM or SIGINT; the children of ``serve`` ("process",
    "send") at ``NYALA_PROCESSING_NICE`` below the webhook's process, making way for a
    flood of webhooks (``pressure``, shared with the webhook's process)."""
    from bot.server import freeze_startup_heap

    if role != "work":
        yield_to_webhooks(settings.processing_nice)
    freeze_startup_heap()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if role == "send":
            await send(settings, flow_app, stop, pressure=pressure)
        else:
            await work(settings, flow_app, stop, send=role == "work", pressure=pressure)

    asyncio.run(main())
