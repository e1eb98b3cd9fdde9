"""A processing process: turns and sends, no web server (``nyala work``, and the children of
``nyala serve --processors N``).

The web process acknowledges webhooks, stores the messages and announces their contacts
(:class:`bot.whatsapp.processing.Announcer`); each processing process listens for those
announcements, processes the contacts in batches and sends the replies (its share of
``NYALA_SEND_RATE``). Processing then never takes the event loop, nor the core, from the
acknowledgements. Any number of processing processes, on this machine or others, can
share one PostgreSQL; recovery finds whatever an announcement missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import aiohttp

from bot.metrics import Metrics
from bot.settings import Settings
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.outbox import Outbox
from bot.whatsapp.processing import Processor, listen_for_kicks
from flows import App, Engine
from flows.runtime import Runtime
from storage import Database, migrate

log = logging.getLogger("nyala.worker")


async def work(settings: Settings, flow_app: App, stop: asyncio.Event) -> None:
    """Process and send until ``stop`` is set (PostgreSQL only)."""
    db = Database(settings.database_url, log_parameters=settings.log_sql_parameters)
    if not db.is_postgresql:
        raise ValueError("a processing process needs PostgreSQL (set DATABASE_URL)")
    # Deferred import: the server module and this one share its shutdown helper.
    from bot.server import stop_tasks

    try:
        await db.wait_ready()
        await migrate(db, flow_app.migration_locations, metadata=flow_app.metadata)
        metrics = Metrics()
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(aiohttp.ClientSession())
            outbox: Outbox | None = None
            if settings.live:
                client = GraphClient.from_settings(http, settings)
                outbox = Outbox.from_settings(db, client, metrics, settings)
            wake = outbox.wake if outbox is not None else None
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
                await stop_tasks(tasks)
                await processor.drain(grace=settings.shutdown_grace_seconds)
    finally:
        await db.dispose()


def run_worker(settings: Settings, flow_app: App) -> None:
    """Run :func:`work` until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await work(settings, flow_app, stop)

    asyncio.run(main())
