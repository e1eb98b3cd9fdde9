"""The aiohttp application of ``nyala serve``: webhook, health, metrics, workers, and
what the selected app adds (its web routes, its console pages, its lifespans).

Resources that live as long as the server (database, HTTP client, the app's runtime,
background loops) are set up in ``cleanup_ctx``; application state is reached through the
typed keys of :mod:`bot.keys`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from sqlalchemy import text

from analytics import abandon_idle_sessions
from bot import console
from bot.keys import DATABASE, ENGINE, FLOW_APP, METRICS, RUNTIME, SETTINGS
from bot.metrics import Metrics
from bot.settings import Settings
from bot.web import Route
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.inbox import Inbox
from bot.whatsapp.outbox import Outbox
from bot.whatsapp.webhook import Webhook
from flows import App, Engine
from flows.runtime import Runtime
from storage import Database, migrate

__all__ = ["INBOX", "OUTBOX", "WEBHOOK", "create_app", "startup_warnings"]

log = logging.getLogger("nyala.bot")

INBOX = web.AppKey("inbox", Inbox)
OUTBOX = web.AppKey("outbox", Outbox)
WEBHOOK = web.AppKey("webhook", Webhook)


def startup_warnings(settings: Settings) -> list[str]:
    """What an operator must know at start-up about the framework's settings (never a
    secret). An app's own notes are its lifespans' to log when it starts."""
    notes: list[str] = []
    if settings.whatsapp_app_secret is None:
        notes.append(
            "WHATSAPP_APP_SECRET is not set: POST /webhook answers 503, because signature "
            "checking cannot be switched off"
        )
    if settings.whatsapp_verify_token is None:
        notes.append("WHATSAPP_VERIFY_TOKEN is not set: Meta's verification handshake will fail")
    if settings.sandbox:
        notes.append(
            "WHATSAPP_ACCESS_TOKEN is not set: sandbox mode, replies are stored, not sent"
        )
    elif not settings.whatsapp_phone_number_id:
        notes.append("WHATSAPP_PHONE_NUMBER_ID is not set: replies cannot be sent")
    return notes


async def _database(app: web.Application) -> AsyncIterator[None]:
    flow_app = app[FLOW_APP]
    db = Database(app[SETTINGS].database_url)
    await db.wait_ready()  # PostgreSQL still starting (or restarting): wait, don't exit
    await migrate(db, flow_app.migration_locations, metadata=flow_app.metadata)
    app[DATABASE] = db
    yield
    await db.dispose()


async def _workers(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = app[DATABASE]
    metrics = app[METRICS]
    is_live = settings.live
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        outbox: Outbox | None = None
        if is_live:
            client = GraphClient.from_settings(session, settings)
            outbox = Outbox(
                db,
                client,
                metrics,
                rate=settings.send_rate,
                lease=dt.timedelta(seconds=settings.send_lease_seconds),
            )
            app[OUTBOX] = outbox
        wake = outbox.wake if outbox is not None else None
        # The app's lifespans run for as long as the server: they provide its services
        # (and may log their own start-up notes).
        runtime = await stack.enter_async_context(
            Runtime.start(
                app[FLOW_APP], db, sandbox=not is_live, settings=settings, wake_outbox=wake
            )
        )
        app[RUNTIME] = runtime
        engine = Engine(db, app[FLOW_APP], sandbox=not is_live, services=runtime.services)
        inbox = Inbox(engine, metrics, on_replies=wake)
        app[ENGINE] = engine
        app[INBOX] = inbox
        secret = settings.whatsapp_app_secret
        token = settings.whatsapp_verify_token
        app[WEBHOOK] = Webhook(
            db,
            inbox,
            metrics,
            app_secret=secret.get_secret_value() if secret else None,
            verify_token=token.get_secret_value() if token else None,
            mark_read=is_live,
        )
        tasks = [asyncio.create_task(inbox.run_recovery(), name="inbox-recovery")]
        if outbox is not None:
            tasks.append(asyncio.create_task(outbox.run(), name="outbox"))
        tasks.append(asyncio.create_task(_sweep(app), name="sweeper"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await inbox.drain()


async def _sweep(app: web.Application) -> None:
    """Abandon idle sessions periodically (every process may; each session once)."""
    interval = app[SETTINGS].sweep_interval_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            timeouts = {name: spec.timeout for name, spec in app[FLOW_APP].flows.items()}
            await abandon_idle_sessions(app[DATABASE], timeouts)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweep failed")


async def _verify(request: web.Request) -> web.Response:
    return await request.app[WEBHOOK].verify(request)


async def _receive(request: web.Request) -> web.Response:
    return await request.app[WEBHOOK].receive(request)


async def _healthz(request: web.Request) -> web.Response:
    try:
        async with request.app[DATABASE].read() as session:
            await session.execute(text("SELECT 1"))
    except Exception:
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    settings = request.app[SETTINGS]
    return web.json_response(
        {"status": "ok", "database": "up", "mode": "sandbox" if settings.sandbox else "live"}
    )


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


def app_routes(flow_app: App) -> list[Route]:
    """The app's web routes; anything else in ``App.routes`` is a mistake said at once."""
    routes: list[Route] = []
    for route in flow_app.routes:
        if not isinstance(route, Route):
            raise TypeError(f"{flow_app!r}: App.routes holds {route!r}, not a bot.web.Route")
        routes.append(route)
    return routes


def create_app(settings: Settings, flow_app: App) -> web.Application:
    """Build the server application (resources start when it starts)."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[FLOW_APP] = flow_app
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_workers)
    app.router.add_get("/webhook", _verify)
    app.router.add_post("/webhook", _receive)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    for route in app_routes(flow_app):
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
    console.setup(app, flow_app)
    return app
