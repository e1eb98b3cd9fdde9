"""The console under attack, as real HTTP against a running server (both backends): the
login limiter under concurrent guessing, ``next=`` injection, and the security headers of
every response."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import ClientSession, CookieJar, TCPConnector
from sqlalchemy import func, select

from bot.console import sessions
from bot.console.accounts import create_operator
from storage import AuditEntry
from storage.operators import LoginAttempt, OperatorRole
from tests.console.conftest import PASSWORD, Browser, Console

_LOGIN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _browser_from(console: Console, address: str) -> Browser:
    """A browser whose connections come from ``address`` (a loopback alias)."""
    http = ClientSession(
        cookie_jar=CookieJar(unsafe=True), connector=TCPConnector(local_addr=(address, 0))
    )
    console.browsers.append(http)
    return Browser(console.base, http)


async def _guess(console: Console, username: str, password: str) -> tuple[int, str | None]:
    """One login from a browser of its own (its own form token), as a script would."""
    browser = await console.browser()
    page = await browser.login(username, password)
    return page.status, page.headers.get("Retry-After")


@pytest.mark.parametrize("parallel", [40])
async def test_parallel_wrong_passwords_check_exactly_the_limit(
    console: Console, parallel: int
) -> None:
    await console.browser(OperatorRole.ADMIN, name="ada")
    results = await asyncio.gather(
        *(_guess(console, "ada", f"wrong password {n}") for n in range(parallel))
    )
    statuses = [status for status, _ in results]
    assert statuses.count(401) == sessions.MAX_FAILURES_PER_PAIR, statuses
    assert statuses.count(429) == parallel - sessions.MAX_FAILURES_PER_PAIR, statuses
    for status, retry_after in results:
        if status == 429:
            assert retry_after is not None and 1 <= int(retry_after) <= 15 * 60
    async with console.db.read() as session:
        checked = await session.scalar(
            select(func.count()).where(AuditEntry.action == "login_failed")
        )
    assert checked == sessions.MAX_FAILURES_PER_PAIR  # passwords actually checked
    async with console.db.read() as session:
        times = (await session.scalars(select(LoginAttempt.at).order_by(LoginAttempt.id))).all()
    assert times == sorted(times)  # timed when counted, under the lock: never out of order
    # Even the right password waits, from this address.
    status, retry_after = await _guess(console, "ada", PASSWORD)
    assert status == 429 and retry_after is not None


async def test_one_address_cannot_lock_the_operator_out_from_another(console: Console) -> None:
    await console.browser(OperatorRole.ADMIN, name="ada")
    attacker = await _browser_from(console, "127.0.0.2")
    for _ in range(sessions.MAX_FAILURES_PER_PAIR):
        assert (await attacker.login("ada", "wrong password!")).status == 401
    assert (await attacker.login("ada")).status == 429
    operator = await _browser_from(console, "127.0.0.3")
    page = await operator.login("ada")
    assert page.status == 303, page.text


async def test_the_global_username_limit_holds_across_addresses(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions, "MAX_FAILURES_PER_USERNAME", 4)
    await console.browser(OperatorRole.ADMIN, name="ada")
    for n in range(2):
        browser = await _browser_from(console, f"127.0.0.{10 + n}")
        for _ in range(2):
            assert (await browser.login("ada", "wrong password!")).status == 401
    late = await _browser_from(console, "127.0.0.20")
    page = await late.login("ada")
    assert page.status == 429
    assert page.headers.get("Retry-After")


NEXT_ATTACKS = [
    "/console/x\r\nSet-Cookie: injected=1",
    "/console/%0d%0aSet-Cookie:%20injected=1",
    "/console/\nLocation: https://evil.example",
    "https://evil.example/console/",
    "//evil.example/console/",
    "\\\\evil.example/console/",
    "/\\evil.example/console/",
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    "/console\t/x",
    "/consolex",
    "/console/\u2028x",
]


@pytest.mark.parametrize("target", NEXT_ATTACKS)
async def test_a_hostile_next_goes_to_the_console_home(console: Console, target: str) -> None:
    await create_and_login_with_next(console, target)


async def create_and_login_with_next(console: Console, target: str) -> None:
    await create_operator(console.db, "nia", PASSWORD, OperatorRole.VIEWER, actor="test")
    browser = await console.browser()
    # The login page with the hostile next: a page, never a 500 or a dropped connection.
    async with browser.http.get(
        browser.base + "/console/login", params={"next": target}, allow_redirects=False
    ) as response:
        assert response.status == 200
        text = await response.text()
        assert "injected" not in response.headers.get("Set-Cookie", "")
    token = _LOGIN_CSRF.search(text)
    assert token is not None
    async with browser.http.post(
        browser.base + "/console/login",
        data={
            "username": "nia",
            "password": PASSWORD,
            "csrf_token": token.group(1),
            "next": target,
        },
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        location = response.headers["Location"]
        assert all("injected" not in v for k, v in response.headers.items() if k != "Location")
        if location != "/console/":
            assert location.startswith("/console/") and "%0" in location.lower(), location
    # Logged in, the login page with the same next goes home too.
    async with browser.http.get(
        browser.base + "/console/login", params={"next": target}, allow_redirects=False
    ) as response:
        assert response.status == 303
        assert response.headers["Location"].startswith("/console/")
        assert "evil" not in response.headers["Location"]


async def test_a_raw_crlf_in_next_is_never_a_header(console: Console) -> None:
    """Sent unencoded on the wire (a client that does not escape), the request is
    refused or sent home: never a 500, never an injected header."""
    host, port = console.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /console/login?next=/console/%0D%0ASet-Cookie:%20injected=1 HTTP/1.1\r\n"
        b"Host: " + host.encode() + b"\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    assert head.startswith("HTTP/1.1 200"), head
    assert "injected" not in head


SECURITY = ("X-Content-Type-Options", "Content-Security-Policy", "Referrer-Policy")


async def test_every_console_response_carries_the_security_headers(console: Console) -> None:
    admin = await console.browser(OperatorRole.ADMIN)
    viewer = await console.browser(OperatorRole.VIEWER)
    stranger = await console.browser()
    pages = [
        await stranger.get("/console/login"),
        await stranger.get("/console/", follow=False),
        await stranger.get("/console/static/console.css"),
        await stranger.get("/console/static/nothing-here.css"),
        await admin.get("/console/no-such-page"),
        await admin.get("/console/"),
        await admin.post("/console/operators", csrf=False),  # CSRF page
        await viewer.post("/console/operators"),  # not allowed
        await stranger.post("/console/login", {"username": "x"}, csrf=False),
    ]
    for page in pages:
        for name in SECURITY:
            assert name in page.headers, (page.url, page.status, name)
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers.get("Server") == "nyala", page.headers.get("Server")
    statuses = {page.status for page in pages}
    assert {200, 303, 403, 404} <= statuses, statuses
