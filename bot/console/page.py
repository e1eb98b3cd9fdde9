"""A console page an app (or the framework) registers, with its link in the navigation.

The navigation is built from what is registered: the framework's own pages (dashboard,
funnels, sessions, conversations, outbox, simulator, admin) and the selected app's. An
app's page is an ordinary aiohttp route table rendered with the console's templates::

    routes = web.RouteTableDef()

    @routes.get("/reservations")
    @requires(OperatorRole.VIEWER)
    async def reservations(request: web.Request) -> web.StreamResponse:
        rows = ...
        return render(request, "reservations.html", {"title": "Reservations", "rows": rows})

    app.add_console_page(
        ConsolePage("Reservations", "/reservations", routes, templates=HERE / "templates")
    )

Paths are relative to the console (``/console``); templates in ``templates`` may extend
``base.html`` and use ``macros.html`` like the framework's pages.

A page may also put a card on the dashboard ("3 payments awaiting approval") with
``attention=``, and facts beside a contact's conversation ("Customer: Ada — orders")
with ``contact_facts=``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from storage.operators import OperatorRole

__all__ = [
    "Attention",
    "ConsolePage",
    "ContactFact",
    "NavLink",
    "NavSection",
    "navigation",
]


@dataclass(frozen=True, slots=True)
class Attention:
    """A dashboard card: how many things wait for an operator, and where they are.

    Attributes:
        label: what waits ("Payments awaiting approval").
        count: how many (0 shows the card as fine).
        hint: what to do about it ("review proofs and approve").
        href: where the card links (a console URL, ``/console/payments``).
    """

    label: str
    count: int
    hint: str
    href: str


@dataclass(frozen=True, slots=True)
class ContactFact:
    """A line beside a contact's conversation (``Customer: Ada — orders``)."""

    label: str
    text: str
    href: str | None = None


AttentionSource = Callable[[web.Request], Awaitable[Attention | None]]
"""``async def f(request) -> Attention | None`` (``None``: no card)."""

ContactFacts = Callable[[AsyncSession, int], Awaitable[Sequence[ContactFact]]]
"""``async def f(session, contact_id) -> [ContactFact, ...]``."""


@dataclass(frozen=True, slots=True)
class ConsolePage:
    """One page of the console and its routes.

    Attributes:
        title: the link's text in the navigation ("Reservations").
        path: where the link goes, relative to ``/console`` (``/reservations``); also
            what marks the link active (every path under it).
        routes: the page's handlers (a ``web.RouteTableDef`` or route definitions),
            with paths relative to ``/console``; they check roles with ``@requires``.
        section: the navigation heading the link goes under.
        templates: a folder of the page's Jinja templates (searched after the
            console's own, so ``base.html`` and ``macros.html`` are there to extend).
        role: the least role that sees the link (the handlers still check).
        order: position within the section (smaller first).
        nav: whether the page has a link in the navigation.
        attention: a dashboard card of what waits on this page (optional).
        contact_facts: facts shown beside a contact's conversation (optional).
    """

    title: str
    path: str
    routes: Iterable[web.AbstractRouteDef]
    section: str = "Operations"
    templates: Path | None = None
    role: OperatorRole = OperatorRole.VIEWER
    order: int = 100
    nav: bool = field(default=True)
    attention: AttentionSource | None = None
    contact_facts: ContactFacts | None = None

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"console page {self.title!r}: path must start with /")
        object.__setattr__(self, "routes", tuple(self.routes))


@dataclass(frozen=True, slots=True)
class NavLink:
    """A link in the navigation."""

    href: str
    text: str
    role: OperatorRole


@dataclass(frozen=True, slots=True)
class NavSection:
    """A heading and its links."""

    heading: str
    links: tuple[NavLink, ...]


SECTION_ORDER = ("Analytics", "Operations", "Tools", "Admin")


def navigation(pages: Iterable[ConsolePage], prefix: str = "/console") -> tuple[NavSection, ...]:
    """The navigation: sections in a fixed order (unknown ones after "Operations", in
    the order first seen), links by ``order`` then registration."""
    by_section: dict[str, list[tuple[int, int, NavLink]]] = {}
    for index, page in enumerate(pages):
        if not page.nav:
            continue
        href = prefix + page.path
        by_section.setdefault(page.section, []).append(
            (page.order, index, NavLink(href, page.title, page.role))
        )
    extra = [s for s in by_section if s not in SECTION_ORDER]
    order = [*SECTION_ORDER[:2], *extra, *SECTION_ORDER[2:]]
    ordered = [s for s in order if s in by_section]
    return tuple(
        NavSection(heading, tuple(link for _, _, link in sorted(by_section[heading])))
        for heading in ordered
    )
