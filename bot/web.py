"""Web routes an app adds to ``nyala serve`` (a payment provider's callback, a status page).

An app lists them in ``App(routes=[...])`` or calls ``app.add_route(...)``; the server
mounts each one beside the webhook. A handler reaches the running app (its database,
services and settings) with :func:`runtime_of`::

    async def payment_callback(request: web.Request) -> web.Response:
        runtime = runtime_of(request)
        provider = runtime.services.get(PaymentProvider)
        return await provider.receive(request)

    app.add_route(Route("POST", "/payments/callback", payment_callback))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot.keys import RUNTIME
from flows.runtime import Runtime

__all__ = ["Handler", "Route", "runtime_of"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_RESERVED = ("/webhook", "/healthz", "/metrics", "/console")


@dataclass(frozen=True, slots=True)
class Route:
    """One web route of an app.

    Attributes:
        method: ``GET``, ``POST``, ``PUT``, ``PATCH`` or ``DELETE``.
        path: an absolute path (aiohttp syntax: ``/orders/{id}``); it may not be one of
            the framework's own (``/webhook``, ``/healthz``, ``/metrics``, ``/console``).
        handler: ``async def handler(request) -> web.StreamResponse``.
        name: an optional route name (``request.app.router[name]``).
    """

    method: str
    path: str
    handler: Handler
    name: str | None = None

    def __post_init__(self) -> None:
        if self.method.upper() not in _METHODS:
            raise ValueError(f"route {self.path!r}: method {self.method!r} is not supported")
        object.__setattr__(self, "method", self.method.upper())
        if not self.path.startswith("/"):
            raise ValueError(f"route path {self.path!r} must start with /")
        for reserved in _RESERVED:
            if self.path == reserved or self.path.startswith(reserved + "/"):
                raise ValueError(f"route path {self.path!r} is the framework's own")


def runtime_of(request: web.Request) -> Runtime:
    """The running app that serves ``request`` (database, services, settings)."""
    return request.config_dict[RUNTIME]
