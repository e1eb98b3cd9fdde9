"""The console's aiohttp sub-application: middlewares, login and logout, static files."""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Sequence
from pathlib import Path

import jinja2
from aiohttp import web

from bot.console import formatting, sessions
from bot.console.page import ConsolePage, navigation
from bot.console.pages import framework_pages
from bot.console.uploads import body_limit
from bot.console.web import (
    COOKIE,
    CURRENT,
    LOGIN_CSRF_COOKIE,
    NAV,
    PAGES,
    PREFIX,
    SECURITY_HEADERS,
    SHOWN_FLASHES,
    TEMPLATES,
    Handler,
    ShownFlashes,
    client_ip,
    csrf_ok,
    db_of,
    is_https,
    local_path,
    me,
    redirect,
    render,
    see_other,
)
from flows import App

log = logging.getLogger("nyala.console")

HERE = Path(__file__).parent
PUBLIC = (PREFIX + "/login", PREFIX + "/static/")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _is_public(path: str) -> bool:
    return path == PUBLIC[0] or path.startswith(PUBLIC[1])


def _to_login(request: web.Request) -> web.StreamResponse:
    """Send a request without a valid session to the login page, keeping where it was
    going (for a POST, the page it came from: the browser keeps the typed draft)."""
    if request.method in SAFE_METHODS:
        target = PREFIX + "/" if request.path == PREFIX else request.path_qs
        expired = bool(request.cookies.get(COOKIE))
    else:
        referer = request.headers.get("Referer", "")
        target = local_path(referer.split(request.host, 1)[-1] if referer else "")
        expired = True
    if request.headers.get("Accept", "").startswith("application/json"):
        return web.json_response({"error": "log in first"}, status=401)
    query = {"next": local_path(target)}
    if expired:
        query["expired"] = "1"
    location = request.app.router["login"].url_for().with_query(query)
    response = see_other(str(location))
    if expired:
        response.del_cookie(COOKIE, path=PREFIX)
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Friendly error pages; never a traceback in the browser."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return render(
            request,
            "error.html",
            {"title": "Not found", "message": "There is nothing at this address."},
            status=404,
        )
    except web.HTTPException:
        raise
    except Exception:
        log.exception("console page %s failed", request.path)
        return render(
            request,
            "error.html",
            {
                "title": "Something went wrong",
                "message": "The page could not be shown; the error was logged. "
                "Try again, or go back.",
            },
            status=500,
        )


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Login required everywhere but the login page and static files; CSRF on POSTs."""
    if not _is_public(request.path):
        token = request.cookies.get(COOKIE, "")
        current = await sessions.current(db_of(request), token) if token else None
        if current is None:
            return _to_login(request)
        request[CURRENT] = current
        if request.path == PREFIX:  # the sub-application's root is "/console/"
            raise web.HTTPFound(PREFIX + "/")
        if request.method not in SAFE_METHODS:
            form = await request.post()
            if not csrf_ok(request, form, current.csrf_token):
                return render(
                    request,
                    "error.html",
                    {
                        "title": "Form expired",
                        "message": "This form's security token is missing or out of date "
                        "(CSRF protection). Go back, reload the page and try again.",
                    },
                    status=403,
                )
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        if name == "Cache-Control" and request.path.startswith(PUBLIC[1]):
            continue
        response.headers.setdefault(name, value)
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    """The login form (an operator already logged in goes on to the console)."""
    target = local_path(request.query.get("next"))
    token = request.cookies.get(COOKIE, "")
    if token and await sessions.current(db_of(request), token) is not None:
        raise web.HTTPSeeOther(target)
    return _login_form(request, target=target, expired=request.query.get("expired") == "1")


def _login_form(
    request: web.Request,
    *,
    target: str,
    expired: bool = False,
    error: str | None = None,
    username: str = "",
    status: int = 200,
) -> web.Response:
    login_csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {
            "next": target,
            "expired": expired,
            "error": error,
            "username": username,
            "login_csrf": login_csrf,
        },
        status=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        login_csrf,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )
    return response


async def login(request: web.Request) -> web.StreamResponse:
    """Check the credentials; set the session cookie and go on, or show why not."""
    form = await request.post()
    target = local_path(str(form.get("next") or ""))
    username = str(form.get("username") or "")[:64]
    password = str(form.get("password") or "")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not csrf_ok(request, form, expected):
        return _login_form(
            request,
            target=target,
            username=username,
            error="The login form expired. Please try again.",
            status=403,
        )
    if not username or not password:
        return _login_form(
            request,
            target=target,
            username=username,
            error="Enter your username and password.",
            status=400,
        )
    result = await sessions.log_in(
        db_of(request),
        username,
        password,
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent"),
    )
    if result.limited:
        minutes = max(1, math.ceil(result.retry_after / 60))
        response = _login_form(
            request,
            target=target,
            username=username,
            error=f"Too many failed attempts. Wait {minutes} minute{'s' * (minutes > 1)} "
            "and try again, or ask an admin to reset your password.",
            status=429,
        )
        response.headers["Retry-After"] = str(max(1, math.ceil(result.retry_after)))
        return response
    if result.token is None:
        return _login_form(
            request,
            target=target,
            username=username,
            error="Wrong username or password.",
            status=401,
        )
    response = see_other(target)
    response.set_cookie(
        COOKIE,
        result.token,
        path=PREFIX,
        max_age=int(sessions.MAX_AGE.total_seconds()),
        httponly=True,
        samesite="Lax",
        secure=is_https(request),
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session."""
    await sessions.log_out(db_of(request), me(request))
    response = redirect(PREFIX + "/login", "You are logged out.")
    response.del_cookie(COOKIE, path=PREFIX)
    return response


def _environment(pages: Sequence[ConsolePage]) -> jinja2.Environment:
    """Templates: the console's own first (``base.html``, ``macros.html``), then each
    page's folder in registration order."""
    folders = [HERE / "templates"]
    for page in pages:
        if page.templates is not None and page.templates not in folders:
            folders.append(page.templates)
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder) for folder in folders]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(formatting.FILTERS)
    return env


def app_pages(flow_app: App) -> list[ConsolePage]:
    """The app's console pages; anything else in ``App.console`` is said at once."""
    pages: list[ConsolePage] = []
    for page in flow_app.console_pages:
        if not isinstance(page, ConsolePage):
            raise TypeError(
                f"{flow_app!r}: App.console holds {page!r}, not a bot.console.ConsolePage"
            )
        pages.append(page)
    return pages


def build_console(flow_app: App) -> web.Application:
    """The console of ``flow_app`` (the framework's pages, then the app's) as an
    application to mount under :data:`PREFIX`."""
    pages = (*framework_pages(), *app_pages(flow_app))
    console = web.Application(middlewares=[body_limit, errors, guard])
    console[PAGES] = pages
    console[SHOWN_FLASHES] = ShownFlashes()
    console[NAV] = navigation(pages, PREFIX)
    console[TEMPLATES] = _environment(pages)
    console[TEMPLATES].filters.update(formatting.zoned(flow_app.timezone))
    console.router.add_get("/login", login_page, name="login")
    console.router.add_post("/login", login)
    console.router.add_post("/logout", logout, name="logout")
    console.router.add_static("/static", HERE / "static", name="static")
    for page in pages:
        console.add_routes(page.routes)
    return console


def setup(app: web.Application, flow_app: App) -> None:
    """Mount the console of ``flow_app`` under ``/console`` of the server ``app``."""
    app.add_subapp(PREFIX, build_console(flow_app))
