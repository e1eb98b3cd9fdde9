"""Console security: login contract, sessions and cookies, CSRF, rate limit, roles."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from bot.console import sessions
from bot.console.app import build_console
from flows import App
from storage import AuditEntry, Database, utcnow
from storage.operators import ConsoleSession, LoginAttempt, OperatorRole
from tests.console.conftest import PASSWORD, Console
from tests.console.notes import add_pages

PROTECTED_PAGES = [
    "/console/",
    "/console/funnel",
    "/console/sessions",
    "/console/sessions/1",
    "/console/events",
    "/console/snapshots",
    "/console/conversations",
    "/console/conversations/1",
    "/console/outbox",
    "/console/media",
    "/console/media/1/file",
    "/console/simulator",
    "/console/operators",
    "/console/audit",
    # the test café's own pages (tests/console/notes.py)
    "/console/notes",
    "/console/cafe-settings",
]
POST_ACTIONS = [
    "/console/logout",
    "/console/conversations/1/reply",
    "/console/conversations/1/release",
    "/console/conversations/1/take",
    "/console/outbox/1/retry",
    "/console/simulator/send",
    "/console/simulator/reset",
    "/console/operators",
    "/console/operators/someone/password",
    "/console/operators/someone/active",
]


async def audit_actions(db: Database) -> list[tuple[str, str]]:
    async with db.read() as session:
        rows = await session.execute(select(AuditEntry.actor, AuditEntry.action))
        return [(a, b) for a, b in rows]


def test_every_console_route_is_listed_here(cafe: App) -> None:
    """A new page must be added to the lists above (and so to the login tests)."""
    add_pages(cafe)
    console = build_console(cafe)
    paths = {
        (route.method, route.resource.canonical)
        for route in console.router.routes()
        if route.resource is not None and route.method in ("GET", "POST")
    }
    gets = {p for m, p in paths if m == "GET" and "/static" not in p and p != "/login"}
    posts = {p for m, p in paths if m == "POST" and p != "/login"}
    assert len(gets) == len(PROTECTED_PAGES), sorted(gets)
    assert len(posts) == len(POST_ACTIONS), sorted(posts)


async def test_the_login_page_contract(console: Console) -> None:
    browser = await console.browser()
    page = await browser.get("/console", follow=False)
    assert page.status in (302, 303)
    page = await browser.get("/console")
    assert page.status == 200
    assert "/console/login" in page.url
    assert '<input name="username"' in page.text
    assert '<input type="password" name="password"' in page.text
    assert 'type="submit"' in page.text  # Enter in a field submits the form
    # Logging in from there lands on the dashboard.
    await console.browser(OperatorRole.VIEWER, name="contract")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    next_field = page.text.split('name="next" value="')[1].split('"')[0]
    done = await browser.post(
        "/console/login",
        {"username": "contract", "password": PASSWORD, "csrf_token": token, "next": next_field},
        csrf=False,
        follow=True,
    )
    assert done.status == 200
    assert done.url.endswith("/console/")
    assert "Dashboard" in done.text
    assert (await browser.get("/console")).url.endswith("/console/")


@pytest.mark.parametrize("path", PROTECTED_PAGES)
async def test_no_page_without_login(console: Console, path: str) -> None:
    browser = await console.browser()
    page = await browser.get(path, follow=False)
    assert page.status == 303
    assert page.headers["Location"].startswith("/console/login?next=")


@pytest.mark.parametrize("path", POST_ACTIONS)
async def test_no_action_without_login(console: Console, path: str) -> None:
    browser = await console.browser()
    page = await browser.post(path, {"body": "x"}, csrf=False)
    assert page.status == 303
    assert page.headers["Location"].startswith("/console/login")


async def test_static_files_and_login_need_no_session(console: Console) -> None:
    browser = await console.browser()
    assert (await browser.get("/console/static/console.css")).status == 200
    assert (await browser.get("/console/login")).status == 200


async def test_login_sets_a_safe_session_cookie(console: Console) -> None:
    browser = await console.browser(OperatorRole.VIEWER)
    cookie = next(c for c in browser.http.cookie_jar if c.key == "nyala_console")
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/console"
    assert not cookie["secure"]  # plain HTTP here
    page = await browser.get("/console/")
    assert page.status == 200
    assert "viewer1" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert ("viewer1", "login") in await audit_actions(console.db)


async def test_the_cookie_is_secure_behind_https(console: Console) -> None:
    browser = await console.browser()
    await browser.get("/console/login")
    from bot.console.accounts import create_operator

    await create_operator(console.db, "tls", PASSWORD, OperatorRole.VIEWER, actor="test")
    page = await browser.get("/console/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    async with browser.http.post(
        browser.base + "/console/login",
        data={"username": "tls", "password": PASSWORD, "csrf_token": token},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        header = response.headers.getall("Set-Cookie")
    session_cookie = next(h for h in header if h.startswith("nyala_console="))
    assert "Secure" in session_cookie
    assert "HttpOnly" in session_cookie


async def test_a_wrong_password_is_refused_and_audited(console: Console) -> None:
    await console.browser(OperatorRole.ADMIN, name="ada")
    browser = await console.browser()
    page = await browser.login("ada", "not the password")
    assert page.status == 401
    assert "Wrong username or password" in page.text
    assert 'value="ada"' in page.text  # the username is kept
    page = await browser.login("nobody", "whatever-whatever")
    assert page.status == 401
    actions = await audit_actions(console.db)
    assert ("ada", "login_failed") in actions
    assert ("nobody", "login_failed") in actions


async def test_logins_are_rate_limited(console: Console) -> None:
    await console.browser(OperatorRole.ADMIN, name="ada")
    browser = await console.browser()
    for _ in range(sessions.MAX_FAILURES_PER_PAIR):
        assert (await browser.login("ada", "wrong password!")).status == 401
    page = await browser.login("ada")  # even the right password now waits
    assert page.status == 429
    assert "Too many failed attempts" in page.text
    assert ("ada", "login_limited") in await audit_actions(console.db)
    # The window passes: the attempts age out.
    async with console.db.transaction() as session:
        old = utcnow() - sessions.RATE_WINDOW - dt.timedelta(seconds=1)
        await session.execute(update(LoginAttempt).values(at=old))
    assert (await browser.login("ada")).status == 303


async def test_login_needs_its_form_token(console: Console) -> None:
    await console.browser(OperatorRole.ADMIN, name="ada")
    browser = await console.browser()
    await browser.get("/console/login")
    page = await browser.post(
        "/console/login", {"username": "ada", "password": PASSWORD}, csrf=False
    )
    assert page.status == 403


async def test_posts_need_the_csrf_token(console: Console) -> None:
    admin = await console.browser(OperatorRole.ADMIN)
    path = f"/console/conversations/{await console.guest_id()}/reply"
    assert (await admin.post(path, csrf=False)).status == 403
    assert (await admin.post(path, {"csrf_token": "forged"})).status == 403
    page = await admin.post(path, headers={"Origin": "https://evil.example"})
    assert page.status == 403
    assert "CSRF" in page.text
    assert (await admin.post(path, {"body": "Hello"})).status == 303  # with the token it works


async def test_logout_ends_the_session(console: Console) -> None:
    browser = await console.browser(OperatorRole.VIEWER)
    assert (await browser.post("/console/logout")).status == 303
    page = await browser.get("/console/sessions", follow=False)
    assert page.status == 303
    async with console.db.read() as session:
        assert await session.scalar(select(ConsoleSession.id)) is None
    assert ("viewer1", "logout") in await audit_actions(console.db)


async def test_an_expired_session_goes_back_to_login_and_returns(console: Console) -> None:
    browser = await console.browser(OperatorRole.VIEWER)
    async with console.db.transaction() as session:
        await session.execute(update(ConsoleSession).values(expires_at=ConsoleSession.created_at))
    page = await browser.get("/console/sessions?status=completed", follow=False)
    assert page.status == 303
    location = page.headers["Location"]
    assert "expired=1" in location
    assert "next=/console/sessions?status%3Dcompleted" in location
    page = await browser.get(location)
    assert "Your session ended" in page.text
    # Logging in again lands where the operator was going.
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    page = await browser.post(
        "/console/login",
        {
            "username": "viewer1",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/console/sessions?status=completed",
        },
        csrf=False,
    )
    assert page.headers["Location"] == "/console/sessions?status=completed"


async def test_next_never_leaves_the_console(console: Console) -> None:
    await console.browser(OperatorRole.VIEWER, name="vee")
    browser = await console.browser()
    for target in ("https://evil.example/", "//evil.example", "/elsewhere", "/console\\@evil"):
        page = await browser.get("/console/login")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        page = await browser.post(
            "/console/login",
            {"username": "vee", "password": PASSWORD, "csrf_token": token, "next": target},
            csrf=False,
        )
        assert page.status == 303, (target, page.status, page.text[-300:])
        assert page.headers["Location"] == "/console/", target
        browser.csrf = ""
        await browser.post("/console/logout")


async def test_a_disabled_operator_is_logged_out(console: Console) -> None:
    admin = await console.browser(OperatorRole.ADMIN)
    agent = await console.browser(OperatorRole.AGENT)
    assert (await agent.get("/console/", follow=False)).status == 200
    page = await admin.post("/console/operators/agent1/active", {"active": "0"})
    assert page.status == 303
    assert (await agent.get("/console/", follow=False)).status == 303
    assert (await agent.login("agent1")).status == 401


ROLE_CASES = [
    # (method, path, role that is refused, role that is allowed)
    ("GET", "/console/operators", OperatorRole.AGENT, OperatorRole.ADMIN),
    ("GET", "/console/audit", OperatorRole.VIEWER, OperatorRole.ADMIN),
    ("GET", "/console/cafe-settings", OperatorRole.AGENT, OperatorRole.ADMIN),
    ("POST", "/console/conversations/{contact}/reply", OperatorRole.VIEWER, OperatorRole.AGENT),
    ("POST", "/console/conversations/{contact}/release", OperatorRole.VIEWER, OperatorRole.AGENT),
    ("POST", "/console/outbox/1/retry", OperatorRole.VIEWER, OperatorRole.AGENT),
    ("POST", "/console/simulator/send", OperatorRole.VIEWER, OperatorRole.AGENT),
    ("POST", "/console/operators", OperatorRole.AGENT, OperatorRole.ADMIN),
]


@pytest.mark.parametrize(("method", "path", "refused", "allowed"), ROLE_CASES)
async def test_roles_are_enforced_on_the_server(
    console: Console, method: str, path: str, refused: OperatorRole, allowed: OperatorRole
) -> None:
    url = path.format(contact=await console.guest_id())
    data = {
        "body": "Hello", "text": "hi", "role": "viewer",
        "username": "newbie", "password": "long enough password",
    }  # fmt: skip
    low = await console.browser(refused, name=f"low-{refused.value}")
    high = await console.browser(allowed, name=f"high-{allowed.value}")
    if method == "GET":
        assert (await low.get(url)).status == 403
        assert (await high.get(url)).status == 200
    else:
        denied = await low.post(url, data)
        assert denied.status == 403
        assert f"needs the {allowed.value} role" in denied.text
        assert (await high.post(url, data)).status in (200, 303)
