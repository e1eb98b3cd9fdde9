"""Request plumbing shared by every console page: keys, rendering, roles, CSRF, flashes.

Security model: every route except the login page and static files needs a valid session
cookie (``HttpOnly``, ``SameSite=Lax``, ``Secure`` behind HTTPS); every POST also needs
the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``) and, when
the browser sends one, a same-origin ``Origin``; roles are checked on the server by the
:func:`requires` decorator. Pages send a strict Content-Security-Policy.
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
import secrets
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from bot.console.page import ConsolePage, NavSection
from bot.console.sessions import Current
from bot.keys import DATABASE, FLOW_APP, SETTINGS
from bot.settings import Settings
from bot.web import runtime_of
from flows import App
from storage import Database
from storage.operators import OperatorRole

log = logging.getLogger("nyala.console")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIX = "/console"
COOKIE = "nyala_console"
FLASH_COOKIE = "nyala_flash"
LOGIN_CSRF_COOKIE = "nyala_login_csrf"

TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
PAGES = web.AppKey[tuple[ConsolePage, ...]]("console_pages")
NAV = web.AppKey[tuple[NavSection, ...]]("console_nav")
CURRENT = web.RequestKey("console_current", Current)
NOTICES = web.RequestKey("console_notices", list)  # of str


class ShownFlashes:
    """The ids of the flash messages already shown (the most recent few thousand).

    The cookie is deleted by the page that shows it, but a browser may still send it
    once more: a second tab, a request already in flight, a client that keeps expired
    cookies. Each flash carries a random id, and an id is shown once.
    """

    def __init__(self, keep: int = 4096) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._keep = keep

    def first_time(self, flash_id: str) -> bool:
        """Whether ``flash_id`` is new (and remember it as shown)."""
        if flash_id in self._ids:
            return False
        self._ids[flash_id] = None
        if len(self._ids) > self._keep:
            self._ids.popitem(last=False)
        return True


SHOWN_FLASHES = web.AppKey("console_shown_flashes", ShownFlashes)

# A database id as it may appear in a URL or a form: ASCII digits only. Python's ``int()``
# and ``str.isdigit()`` (and ``\d`` in a route) also take Arabic-Indic, full-width and
# other Unicode digits, so "١٢" would reach row 12 by another name, and "²" would pass
# ``isdigit()`` and then crash ``int()``.
ID_PATTERN = "[0-9]{1,18}"
_ID = re.compile(ID_PATTERN)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


__all__ = [
    "CURRENT",
    "NAV",
    "PAGES",
    "PREFIX",
    "SHOWN_FLASHES",
    "TEMPLATES",
    "ShownFlashes",
    "db_of",
    "flash",
    "flow_app_of",
    "id_in_path",
    "me",
    "notice",
    "pages_of",
    "parse_id",
    "redirect",
    "render",
    "requires",
    "runtime_of",
    "settings_of",
    "url",
]


def db_of(request: web.Request) -> Database:
    """The server's database."""
    return request.config_dict[DATABASE]


def flow_app_of(request: web.Request) -> App:
    """The bot the server runs."""
    return request.config_dict[FLOW_APP]


def settings_of(request: web.Request) -> Settings:
    """The server's settings."""
    return request.config_dict[SETTINGS]


def pages_of(request: web.Request) -> tuple[ConsolePage, ...]:
    """Every console page: the framework's, then the app's."""
    return request.config_dict[PAGES]


def me(request: web.Request) -> Current:
    """The logged-in operator (the auth middleware guarantees one on every page)."""
    return request[CURRENT]


def parse_id(value: object) -> int | None:
    """``value`` as a database id if it is 1 to 18 ASCII digits, else ``None``.

    Every id the console reads from a URL or a form goes through here, never through a
    bare ``int()`` (which accepts Unicode digits, signs, spaces and underscores).
    """
    if not isinstance(value, str) or not _ID.fullmatch(value):
        return None
    return int(value)


def id_in_path(request: web.Request, name: str) -> int:
    """The id in the URL's ``{name}`` part; a malformed one is a 404, never a 500."""
    parsed = parse_id(request.match_info.get(name))
    if parsed is None:
        raise web.HTTPNotFound
    return parsed


def is_https(request: web.Request) -> bool:
    """Whether the browser talks HTTPS to us (directly, or to a proxy in front)."""
    if request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https":
        return True
    public = settings_of(request).public_url
    return bool(public and public.startswith("https://"))


def client_ip(request: web.Request) -> str:
    """The client's address as the server sees it."""
    return request.remote or "unknown"


def requires(role: OperatorRole) -> Callable[[Handler], Handler]:
    """Only operators whose role includes ``role`` may call the handler (else 403)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            if not me(request).can(role):
                return render(
                    request,
                    "error.html",
                    {
                        "title": "Not allowed",
                        "message": f"This needs the {role.value} role; you are "
                        f"{me(request).role.value}. Ask an admin if you need it.",
                    },
                    status=403,
                )
            return await handler(request)

        checked.console_role = role  # type: ignore[attr-defined]
        return checked

    return decorate


def local_path(value: str | None, default: str = PREFIX + "/") -> str:
    """``value`` if it is a path inside the console (for ``next=``), else ``default``:
    never an open redirect to another site."""
    if not value or len(value) > 2000:
        return default
    if not all("!" <= ch <= "~" and ch != "\\" for ch in value) or value.startswith("//"):
        return default  # CR/LF (a header injection), spaces, non-ASCII, backslashes, //host
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme or parsed.netloc:
        return default
    if parsed.path != PREFIX and not parsed.path.startswith(PREFIX + "/"):
        return default
    if parsed.path == PREFIX:
        return PREFIX + "/" + (f"?{parsed.query}" if parsed.query else "")
    return value


def url(path: str, **query: Any) -> str:
    """A console URL with a query string (``None`` and empty values left out)."""
    kept = {k: v for k, v in query.items() if v not in (None, "")}
    return PREFIX + path + ("?" + urllib.parse.urlencode(kept) if kept else "")


def flash(response: web.StreamResponse, message: str, *, kind: str = "ok") -> None:
    """Show ``message`` once on the next page (a short-lived cookie with a random id, see
    :class:`ShownFlashes`; escaped on display)."""
    value = urllib.parse.quote(f"{secrets.token_hex(8)}:{kind}:{message[:300]}")
    response.set_cookie(
        FLASH_COOKIE, value, max_age=60, path=PREFIX, httponly=True, samesite="Lax"
    )


def see_other(location: str) -> web.Response:
    """A 303 See Other to ``location`` (returned, so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location})


def redirect(location: str, message: str | None = None, *, kind: str = "ok") -> web.Response:
    """A 303 to ``location`` (after a POST), optionally with a flash message."""
    response = see_other(location)
    if message:
        flash(response, message, kind=kind)
    return response


def notice(request: web.Request, message: str) -> None:
    """A note shown on this page (e.g. a filter value that was ignored)."""
    request.setdefault(NOTICES, []).append(message)


def _take_flash(request: web.Request) -> tuple[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    flash_id, _, rest = urllib.parse.unquote(raw).partition(":")
    kind, _, message = rest.partition(":")
    shown = request.config_dict.get(SHOWN_FLASHES)
    if not message or (shown is not None and not shown.first_time(flash_id)):
        return ("", "")  # shown already (or not ours): only the cookie is cleared
    return (kind if kind in ("ok", "error") else "ok", message)


def _visible(nav: tuple[NavSection, ...], current: Current | None) -> list[NavSection]:
    """The sections and links the operator's role may see (none before logging in)."""
    if current is None:
        return []
    shown = [
        NavSection(
            section.heading, tuple(link for link in section.links if current.can(link.role))
        )
        for section in nav
    ]
    return [section for section in shown if section.links]


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    """Render a page with the layout's context (operator, CSRF token, flash, notices)."""
    env = request.app[TEMPLATES]
    current = request.get(CURRENT)
    flashed = _take_flash(request)
    values = {
        "me": current,
        "csrf": current.csrf_token if current else "",
        "flash": flashed if flashed and flashed[1] else None,
        "notices": request.get(NOTICES, []),
        "path": request.path,
        "query": request.rel_url.query,
        "business": flow_app_of(request).name,
        "nav": _visible(request.config_dict[NAV], current),
        "sandbox": settings_of(request).sandbox,
        "roles": OperatorRole,
        "url": url,
        **(context or {}),
    }
    body = env.get_template(template).render(values)
    response = web.Response(text=body, content_type="text/html", status=status)
    if flashed:
        response.del_cookie(FLASH_COOKIE, path=PREFIX)
    return response


def csrf_ok(request: web.Request, form: Mapping[str, Any], expected: str) -> bool:
    """The request carries the expected CSRF token and, if any, a same-origin Origin."""
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        host = urllib.parse.urlsplit(origin).netloc
        if host != request.host:
            return False
    given = str(form.get("csrf_token") or request.headers.get("X-CSRF-Token") or "")
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def svg(markup: str) -> Markup:
    """Mark server-built SVG (every text in it escaped by its builder) as safe."""
    return Markup(markup)  # noqa: S704 - the chart builders escape every value
