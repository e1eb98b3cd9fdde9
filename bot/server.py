"""The aiohttp application of ``nyala serve``: webhook, health, metrics, workers, and
what the selected app adds (its web routes, its console pages, its lifespans).

Resources that live as long as the server (database, HTTP client, the app's runtime,
background loops) are set up in ``cleanup_ctx``; application state is reached through the
typed keys of :mod:`bot.keys`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from sqlalchemy import text

from analytics import abandon_idle_sessions
from bot import console
from bot.console.web import PREFIX, SECURITY_HEADERS, Handler
from bot.files import FileLimits
from bot.keys import DATABASE, ENGINE, FLOW_APP, METRICS, RUNTIME, SETTINGS
from bot.metrics import Metrics
from bot.settings import Settings
from bot.web import Route
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.media import MediaDownloader
from bot.whatsapp.outbox import Outbox
from bot.whatsapp.pressure import AckPressure
from bot.whatsapp.processing import Announcer, Kicker, Processor
from bot.whatsapp.webhook import Webhook
from flows import App, Engine
from flows.runtime import Runtime
from storage import Database, migrate

__all__ = [
    "GUARD",
    "INBOX",
    "MEDIA",
    "OUTBOX",
    "WEBHOOK",
    "ConnectionGuard",
    "GuardedRunner",
    "create_app",
    "run",
    "startup_warnings",
]

log = logging.getLogger("nyala.bot")

INBOX = web.AppKey("inbox", Kicker)
PRESSURE = web.AppKey("ack_pressure", AckPressure)
OUTBOX = web.AppKey("outbox", Outbox)
WEBHOOK = web.AppKey("webhook", Webhook)
MEDIA = web.AppKey("media_downloader", MediaDownloader)


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
    settings = app[SETTINGS]
    db = Database(settings.database_url, log_parameters=settings.log_sql_parameters)
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
    # "elsewhere": `nyala serve --processors N` or `nyala work` process the messages; this
    # process acknowledges, announces what it stored, serves the console and downloads.
    here = settings.processing == "here"
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        client = GraphClient.from_settings(session, settings) if is_live else None
        outbox: Outbox | None = None
        if client is not None and here:
            outbox = Outbox.from_settings(db, client, metrics, settings)
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
        app[ENGINE] = engine
        tasks: list[asyncio.Task[None]] = []
        inbox: Kicker
        if here:
            processor = Processor(
                engine,
                metrics,
                batch_size=settings.batch_size,
                workers=settings.processing_workers,
                on_replies=wake,
            )
            tasks.append(asyncio.create_task(processor.run_recovery(), name="inbox-recovery"))
            inbox = processor
        else:
            inbox = Announcer(db, pressure=app.get(PRESSURE))
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
        if outbox is not None:
            tasks.append(asyncio.create_task(outbox.run(), name="outbox"))
        if client is not None:
            downloader = MediaDownloader(
                db,
                client,
                limits=FileLimits.from_settings(settings),
                on_released=inbox.kick,
                max_attempts=settings.media_download_attempts,
            )
            app[MEDIA] = downloader
            tasks.append(asyncio.create_task(downloader.run(), name="media-downloads"))
        tasks.append(asyncio.create_task(_sweep(app), name="sweeper"))
        try:
            yield
        finally:
            await stop_tasks(tasks, patience=db.cancel_patience)
            await inbox.drain(grace=settings.shutdown_grace_seconds)


async def stop_tasks(tasks: list[asyncio.Task[None]], patience: float = 5.0) -> None:
    """Cancel the background loops and wait until they end.

    A loop whose cancellation was swallowed somewhere below it (a library that turns
    ``CancelledError`` into an error it then survives) is cancelled again after
    ``patience`` seconds, and said in the log, instead of keeping shutdown waiting forever.
    The servers pass their database's :attr:`~storage.Database.cancel_patience`: a
    cancellation repeated while a connection is being closed would hang instead.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=patience)
        for task in pending:
            log.warning("%s did not stop when cancelled; cancelling it again", task.get_name())
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s ended with an error", task.get_name(), exc_info=task.exception())


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
    """Up or not, and nothing else (no mode, version or error text: it is public)."""
    try:
        async with request.app[DATABASE].read() as session:
            await session.execute(text("SELECT 1"))
    except Exception:
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})


def _is_loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def metrics_allowed(request: web.Request) -> bool:
    """With ``NYALA_METRICS_TOKEN`` set, ``/metrics`` needs ``Authorization: Bearer
    <token>``; without it, only a loopback client that no proxy forwarded may read it."""
    token = request.app[SETTINGS].metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)
    proxied = any(h in request.headers for h in ("X-Forwarded-For", "Forwarded", "X-Real-IP"))
    return _is_loopback(request) and not proxied


async def _metrics(request: web.Request) -> web.Response:
    if not metrics_allowed(request):
        if request.app[SETTINGS].metrics_token is None:
            raise web.HTTPNotFound()
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return web.Response(
        body=request.app[METRICS].render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


SERVER_NAME = "nyala"  # the Server header: no name of a library, no version
OTHER_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response the application sends (pages, errors, 404s, the webhook, health,
    metrics, static files) gets the security headers; a handler's own values win."""
    path = request.path
    if path == PREFIX or path.startswith(PREFIX + "/"):
        for name, value in SECURITY_HEADERS.items():
            if name == "Cache-Control" and path.startswith(PREFIX + "/static/"):
                continue
            response.headers.setdefault(name, value)
    else:
        for name, value in OTHER_SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER_NAME


def app_routes(flow_app: App) -> list[Route]:
    """The app's web routes; anything else in ``App.routes`` is a mistake said at once."""
    routes: list[Route] = []
    for route in flow_app.routes:
        if not isinstance(route, Route):
            raise TypeError(f"{flow_app!r}: App.routes holds {route!r}, not a bot.web.Route")
        routes.append(route)
    return routes


def create_app(
    settings: Settings, flow_app: App, *, pressure: AckPressure | None = None
) -> web.Application:
    """Build the server application (resources start when it starts). With ``pressure``
    (``nyala serve --processors N``), a flood of webhooks makes the processing and sending
    processes hold back (:mod:`bot.whatsapp.pressure`)."""
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_request_clock])
    if pressure is not None:
        app[PRESSURE] = pressure
    app.on_response_prepare.append(_security_headers)
    app[GUARD] = ConnectionGuard.from_settings(settings)
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


# --- Slow and flooding clients ------------------------------------------------------------


@dataclass(eq=False)
class _Connection:
    """What the guard knows of one connection."""

    address: str
    transport: asyncio.Transport
    waiting_since: float | None  # a request is arriving (headers) since then
    in_request: bool = False
    data_in_request: bool = False  # bytes of a next (pipelined) request arrived meanwhile


class ConnectionGuard:
    """Cuts off slow clients and caps connections per address, for ``nyala serve``.

    A request must arrive whole within ``timeout`` seconds: its headers from the first
    byte (or from the connection's start), its body from the end of its headers. Past
    that the connection is closed (aiohttp itself never gives up on a trickle). At most
    ``per_address`` connections from one address are open at once (0: no cap); more are
    closed at once. Both are logged at most once per ``log_interval``, with counts, so a
    flood cannot fill the disk with log lines.
    """

    def __init__(self, *, timeout: float, per_address: int, log_interval: float = 60.0):
        self.timeout = timeout
        self.per_address = per_address
        self.log_interval = log_interval
        self._connections: dict[asyncio.BaseTransport, _Connection] = {}
        self._per_address: collections.Counter[str] = collections.Counter()
        self._events: collections.Counter[str] = collections.Counter()
        self._addresses: set[str] = set()
        self._last_log = -math.inf

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionGuard:
        return cls(
            timeout=settings.request_timeout, per_address=settings.max_connections_per_address
        )

    def note(self, event: str, address: str) -> None:
        """Count a refused or cut-off connection; log the counts once per interval."""
        self._events[event] += 1
        self._addresses.add(address)
        now = time.monotonic()
        if now - self._last_log < self.log_interval:
            return
        counts = ", ".join(f"{n} {what}" for what, n in sorted(self._events.items()))
        shown = ", ".join(sorted(self._addresses)[:5])
        log.warning(
            "slow or flooding clients: %s from %d address(es) (%s) since the last report",
            counts,
            len(self._addresses),
            shown,
        )
        self._events.clear()
        self._addresses.clear()
        self._last_log = now

    def opened(self, transport: asyncio.Transport) -> bool:
        """A new connection: whether it may stay (under its address's cap)."""
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if self.per_address and self._per_address[address] >= self.per_address:
            self.note("connections over the per-address cap refused", address)
            return False
        self._per_address[address] += 1
        now = asyncio.get_running_loop().time()
        self._connections[transport] = _Connection(address, transport, now)
        self._check_later(transport)
        return True

    def closed(self, transport: asyncio.BaseTransport) -> None:
        found = self._connections.pop(transport, None)
        if found is not None:
            self._per_address[found.address] -= 1
            if self._per_address[found.address] <= 0:
                del self._per_address[found.address]

    def received(self, transport: asyncio.BaseTransport) -> None:
        """Bytes arrived: the first of a request starts its clock."""
        found = self._connections.get(transport)
        if found is None:
            return
        if found.in_request:
            found.data_in_request = True
        elif found.waiting_since is None:
            found.waiting_since = asyncio.get_running_loop().time()
            self._check_later(transport)

    def _check_later(self, transport: asyncio.BaseTransport) -> None:
        asyncio.get_running_loop().call_later(self.timeout, self._check_headers, transport)

    def _check_headers(self, transport: asyncio.BaseTransport) -> None:
        found = self._connections.get(transport)
        if found is None or found.in_request or found.waiting_since is None:
            return
        late = asyncio.get_running_loop().time() - found.waiting_since
        if late >= self.timeout - 0.01:
            self._cut(found, "requests cut off while their headers were still arriving")
        else:
            asyncio.get_running_loop().call_later(
                self.timeout - late, self._check_headers, transport
            )

    def _cut(self, found: _Connection, event: str) -> None:
        self.note(event, found.address)
        found.transport.abort()

    def started(self, request: web.BaseRequest) -> _Connection | None:
        """The request's headers are in; its body must follow within the timeout."""
        found = self._connections.get(request.transport) if request.transport else None
        if found is None:
            return None
        found.in_request = True
        found.waiting_since = None
        found.data_in_request = False
        if not request.content.is_eof():
            content = request.content

            def check_body() -> None:
                if not content.is_eof() and found.transport in self._connections:
                    self._cut(found, "requests cut off while their body was still arriving")

            asyncio.get_running_loop().call_later(self.timeout, check_body)
        return found

    def finished(self, found: _Connection) -> None:
        found.in_request = False
        if found.data_in_request:  # a pipelined request started meanwhile: time it
            found.waiting_since = asyncio.get_running_loop().time()
            self._check_later(found.transport)


GUARD = web.AppKey("connection_guard", ConnectionGuard)


class _GuardedProtocol(asyncio.Protocol):
    """Passes everything on to aiohttp's protocol, telling the guard what happens."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self._guard.opened(transport):
            transport.abort()
            return
        self._transport = transport
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._guard.closed(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        self._guard.received(self._transport)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _GuardedServer(web.Server):
    """aiohttp's server whose connections go through the guard."""

    def __init__(self, inner: web.Server, guard: ConnectionGuard) -> None:
        self.__dict__.update(inner.__dict__)  # the same server, seen through the guard
        self.guard = guard

    def __call__(self) -> RequestHandler:
        return cast(RequestHandler, _GuardedProtocol(super().__call__(), self.guard))


class GuardedRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose connections the app's guard watches."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _GuardedServer(server, self.app[GUARD])


@web.middleware
async def _request_clock(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the guard (when the server runs under one) a request's headers are in."""
    guard = request.app.get(GUARD)
    found = guard.started(request) if guard is not None else None
    try:
        return await handler(request)
    finally:
        if guard is not None and found is not None:
            guard.finished(found)


def freeze_startup_heap() -> None:
    """Keep what start-up built (modules, the app, its flows, mappers, pools) out of the
    garbage collector's full collections for the process's life (:func:`gc.freeze`).

    A full collection walks every tracked object: about 130,000 once the server's modules
    are imported, 70 ms on this 2-core machine, during which the event loop answers no
    webhook. Frozen, the objects made at start-up are never walked again (they live as
    long as the process anyway); only what the process made since is.
    """
    gc.collect()  # start-up's own garbage, not frozen with the rest
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("start-up heap frozen: %d objects kept out of full collections", frozen)


def run(app: web.Application, *, host: str, port: int, reuse_port: bool = False) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, under its connection guard.

    ``reuse_port`` lets several processes listen on one port (``serve --workers``); without
    it a port in use is an :class:`OSError` (errno ``EADDRINUSE``) before anything serves.
    """

    async def main() -> None:
        runner = GuardedRunner(app, handle_signals=True, access_log=None)
        await runner.setup()
        freeze_startup_heap()
        try:
            await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
            await asyncio.Event().wait()  # until a signal ends the loop
        finally:
            await runner.cleanup()

    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(main())
