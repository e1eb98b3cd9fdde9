"""A running app: its database, its services and the lifespans the app registered.

Whatever an app needs while it runs (a payment provider, an HTTP client, a PDF
renderer) is made by the app's own lifespan functions when the app starts and put in
:class:`Services`, typed by class; actions reach it as ``ctx.services.get(Kind)``. No
module holds such state, so two apps, or two runs of one app, live side by side in one
process. ``nyala serve``, ``nyala chat``, the CLI and the test harness all start an app
the same way::

    async with Runtime.start(app, db, sandbox=True) as runtime:
        engine = Engine(db, app, services=runtime.services)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from analytics.config import using
from storage import Database

if TYPE_CHECKING:
    from flows.app import App

__all__ = ["Lifespan", "Runtime", "ServiceNotFoundError", "Services"]

T = TypeVar("T")


class ServiceNotFoundError(LookupError):
    """No service of the asked-for kind was provided while the app started."""


class Services:
    """Objects a running app provides, one per kind (class)."""

    def __init__(self) -> None:
        self._items: dict[type[Any], Any] = {}

    def provide(self, kind: type[T], value: T) -> T:
        """Make ``value`` the service of ``kind`` (replacing any earlier one)."""
        if not isinstance(value, kind):
            raise TypeError(f"{value!r} is not a {kind.__name__}")
        self._items[kind] = value
        return value

    def get(self, kind: type[T]) -> T:
        """The service of ``kind``; raises :class:`ServiceNotFoundError` if none."""
        try:
            return cast(T, self._items[kind])
        except KeyError:
            raise ServiceNotFoundError(
                f"no {kind.__name__} service: the app's lifespan provides it when the app "
                "starts (Runtime.start)"
            ) from None

    def find(self, kind: type[T]) -> T | None:
        """The service of ``kind``, or ``None``."""
        return cast("T | None", self._items.get(kind))

    def __contains__(self, kind: object) -> bool:
        return kind in self._items

    def values(self) -> list[Any]:
        """Every provided service (e.g. to find those with background work to wait for)."""
        return list(self._items.values())


@dataclass(eq=False)
class Runtime:
    """One run of an app.

    Attributes:
        app: the app.
        db: its database.
        sandbox: replies are stored, never sent, and nothing external is charged or called.
        services: what the app's lifespans provided.
        settings: the host's settings object (``bot.settings.Settings`` under ``nyala``).
        wake_outbox: called after rows were queued outside a message's turn (e.g. by a
            web route), so the sender picks them up at once; ``None`` when nothing sends.
    """

    app: App
    db: Database
    sandbox: bool = True
    services: Services = field(default_factory=Services)
    settings: Any = None
    wake_outbox: Callable[[], None] | None = None

    def outbox_woken(self) -> None:
        """Tell the sender that rows are waiting (no-op without one)."""
        if self.wake_outbox is not None:
            self.wake_outbox()

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        app: App,
        db: Database,
        *,
        sandbox: bool = True,
        settings: Any = None,
        wake_outbox: Callable[[], None] | None = None,
        services: Services | None = None,
    ) -> AsyncIterator[Runtime]:
        """Run the app's lifespans (start-up before ``yield``, shutdown after, reversed).

        Inside, reports called without ``db=``/``tz=`` read this app's database in its
        timezone (:func:`analytics.using`).
        """
        runtime = cls(app, db, sandbox=sandbox, settings=settings, wake_outbox=wake_outbox)
        if services is not None:  # what the host provides already (e.g. a shared renderer)
            runtime.services = services
        async with contextlib.AsyncExitStack() as stack:
            flow_steps = {name: tuple(spec.steps) for name, spec in app.flows.items()}
            stack.enter_context(using(db, tz=app.timezone, flow_steps=flow_steps))
            for lifespan in app.lifespans:
                await stack.enter_async_context(contextlib.asynccontextmanager(lifespan)(runtime))
            yield runtime


Lifespan = Callable[[Runtime], AsyncIterator[None]]
"""An app's start-up and shutdown: ``async def f(runtime): ...; yield; ...``."""
