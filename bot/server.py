"""The aiohttp application of ``nyala serve``: webhook, health, metrics, workers.

Resources that live as long as the app (database, HTTP client, background loops) are set
up in ``cleanup_ctx``; application state is reached through typed ``web.AppKey``s.
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
from bot.graph import GraphClient
from bot.inbox import Inbox
from bot.metrics import Metrics
from bot.outbox import Outbox
from bot.settings import Settings
from bot.webhook import Webhook
from flows import App, Engine
from storage import Database, migrate

log = logging.getLogger("nyala.bot")

SETTINGS = web.AppKey("settings", Settings)
FLOW_APP = web.AppKey("flow_app", App)
DATABASE = web.AppKey("database", Database)
METRICS = web.AppKey("metrics", Metrics)
ENGINE = web.AppKey("engine", Engine)
INBOX = web.AppKey("inbox", Inbox)
OUTBOX = web.AppKey("outbox", Outbox)
WEBHOOK = web.AppKey("webhook", Webhook)


def startup_warnings(settings: Settings) -> list[str]:
    """What an operator must know at start-up (never containing a secret)."""
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
    db = Database(app[SETTINGS].database_url)
    await db.check()
    await migrate(db)
    app[DATABASE] = db
    yield
    await db.dispose()


async def _workers(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = app[DATABASE]
    metrics = app[METRICS]
    live = not settings.sandbox and bool(settings.whatsapp_phone_number_id)
    engine = Engine(db, app[FLOW_APP], sandbox=not live)
    session = aiohttp.ClientSession()
    outbox: Outbox | None = None
    if live:
        assert settings.whatsapp_access_token is not None
        client = GraphClient(
            session,
            base_url=settings.whatsapp_api_base,
            access_token=settings.whatsapp_access_token.get_secret_value(),
            phone_number_id=str(settings.whatsapp_phone_number_id),
            timeout=settings.graph_timeout,
        )
        outbox = Outbox(
            db,
            client,
            metrics,
            rate=settings.send_rate,
            lease=dt.timedelta(seconds=settings.send_lease_seconds),
        )
        app[OUTBOX] = outbox
    inbox = Inbox(engine, metrics, on_replies=outbox.wake if outbox else None)
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
        mark_read=live,
    )
    tasks = [asyncio.create_task(inbox.run_recovery(), name="inbox-recovery")]
    if outbox is not None:
        tasks.append(asyncio.create_task(outbox.run(), name="outbox"))
    tasks.append(asyncio.create_task(_sweep(app), name="sweeper"))
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await inbox.drain()
    await session.close()


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
    return app
