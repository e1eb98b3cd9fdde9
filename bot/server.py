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
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.inbox import Inbox
from bot.metrics import Metrics
from bot.omari import OmariCallback
from bot.omari_client import OmariClient
from bot.whatsapp.outbox import Outbox
from bot.settings import Settings
from bot.whatsapp.webhook import Webhook
from flows import App, Engine
from flows.safari.omari import CALLBACK_PATH, SandboxOmari
from flows.safari.payments import PaymentProvider, set_provider
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
OMARI_CALLBACK = web.AppKey("omari_callback", OmariCallback)


def _live(settings: Settings) -> bool:
    """Replies go to WhatsApp (else they are stored as sandbox rows)."""
    return not settings.sandbox and bool(settings.whatsapp_phone_number_id)


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
    notes.extend(_omari_warnings(settings))
    return notes


def _omari_warnings(settings: Settings) -> list[str]:
    if not settings.omari_configured:
        if bool(settings.omari_api_base) != (settings.omari_merchant_key is not None):
            return ["OMARI_API_BASE and OMARI_MERCHANT_KEY must be set together: Omari is off"]
        if _live(settings):
            return [
                "OMARI_API_BASE and OMARI_MERCHANT_KEY are not set: mobile money is off "
                "(the self-confirming sandbox Omari is never used with live WhatsApp)"
            ]
        return [
            "OMARI_API_BASE and OMARI_MERCHANT_KEY are not set: Omari payments run in "
            "sandbox (they confirm themselves; no money moves)"
        ]
    notes: list[str] = []
    if settings.public_url is None:
        notes.append(
            "NYALA_PUBLIC_URL is not set: Omari could not call back, so mobile money is off"
        )
    if settings.omari_callback_secret is None:
        notes.append(
            f"OMARI_CALLBACK_SECRET is not set: POST {CALLBACK_PATH} answers 503 and "
            "mobile money is off"
        )
    return notes


def payment_provider(
    settings: Settings,
    db: Database,
    http: aiohttp.ClientSession,
) -> PaymentProvider | None:
    """The Omari provider the settings call for (``None``: mobile money is off).

    :class:`OmariClient` when ``OMARI_API_BASE``, ``OMARI_MERCHANT_KEY``,
    ``OMARI_CALLBACK_SECRET`` and ``NYALA_PUBLIC_URL`` are set; else :class:`SandboxOmari`,
    but only while replies are sandboxed too: with live WhatsApp a self-confirming
    provider would give bookings away.
    """
    if settings.omari_configured:
        # Without a way back (URL) or a way to trust it (secret), customers would pay and
        # their bookings never be confirmed.
        if (
            settings.public_url is None
            or settings.omari_callback_secret is None
            or settings.omari_merchant_key is None
        ):
            return None
        return OmariClient(
            http,
            base_url=str(settings.omari_api_base),
            merchant_key=settings.omari_merchant_key.get_secret_value(),
            callback_url=settings.public_url + CALLBACK_PATH,
            timeout=settings.omari_timeout,
        )
    if _live(settings) or bool(settings.omari_api_base) or settings.omari_merchant_key:
        return None  # live WhatsApp, or Omari half-configured: mobile money is off
    return SandboxOmari(db, sandbox=True)


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[SETTINGS].database_url)
    await db.wait_ready()  # PostgreSQL still starting (or restarting): wait, don't exit
    await migrate(db)
    app[DATABASE] = db
    yield
    await db.dispose()


async def _workers(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = app[DATABASE]
    metrics = app[METRICS]
    live = _live(settings)
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
    callback_secret = settings.omari_callback_secret
    app[OMARI_CALLBACK] = OmariCallback(
        db,
        secret=callback_secret.get_secret_value() if callback_secret else None,
        sandbox=not live,
        on_replies=outbox.wake if outbox else None,
    )
    provider = payment_provider(settings, db, session)
    if provider is not None:
        set_provider(provider)
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
    if isinstance(provider, SandboxOmari):
        await provider.close()
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


async def _omari_callback(request: web.Request) -> web.Response:
    return await request.app[OMARI_CALLBACK].receive(request)


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
    app.router.add_post(CALLBACK_PATH, _omari_callback)
    from bot import console  # the console uses this module's keys: imported once they exist

    console.setup(app)
    return app
