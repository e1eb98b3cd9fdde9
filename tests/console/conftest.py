"""A running ``nyala serve`` app (sandbox) with the safari demo data, and a browser-like
HTTP client that logs in as an operator of a given role. Both backends."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest_asyncio
from aiohttp import ClientResponse, ClientSession, CookieJar
from aiohttp.test_utils import TestServer
from sqlalchemy import select

import flows.safari
from bot.console.accounts import create_operator
from bot.server import create_app
from bot.settings import Settings
from flows.safari.demo import DemoData, load_demo_data
from storage import (
    Booking,
    Database,
    Payment,
    PaymentMethod,
    PaymentStatus,
    StoredFile,
)
from storage.operators import OperatorRole

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Page:
    """A response read in full."""

    status: int
    text: str
    headers: Any
    url: str
    body: bytes = b""


@dataclass
class Browser:
    """An HTTP client with a cookie jar, like a browser without JavaScript."""

    base: str
    http: ClientSession
    csrf: str = ""
    username: str = ""

    async def _page(self, response: ClientResponse) -> Page:
        body = await response.read()
        text = body.decode("utf-8", "replace")
        found = _CSRF.search(text)
        if found and "/console/login" not in str(response.url):
            self.csrf = found.group(1)
        return Page(response.status, text, response.headers, str(response.url), body)

    async def get(self, path: str, *, follow: bool = True, **kwargs: Any) -> Page:
        async with self.http.get(self.base + path, allow_redirects=follow, **kwargs) as r:
            return await self._page(r)

    async def post(
        self,
        path: str,
        data: dict[str, Any] | None = None,
        *,
        csrf: bool = True,
        follow: bool = False,
        **kwargs: Any,
    ) -> Page:
        form = dict(data or {})
        if csrf:
            if not self.csrf:
                await self.get("/console/")
            form.setdefault("csrf_token", self.csrf)
        async with self.http.post(
            self.base + path, data=form, allow_redirects=follow, **kwargs
        ) as r:
            return await self._page(r)

    async def login(self, username: str, password: str = PASSWORD) -> Page:
        page = await self.get("/console/login")
        token = _CSRF.search(page.text)
        assert token is not None
        response = await self.post(
            "/console/login",
            {"username": username, "password": password, "csrf_token": token.group(1)},
            csrf=False,
        )
        self.username = username
        self.csrf = ""  # a new session has a new token
        return response


@dataclass
class Console:
    """The server under test, its database, demo data and a way to open browsers."""

    base: str
    db: Database
    demo: DemoData
    browsers: list[ClientSession] = field(default_factory=list)

    async def browser(self, role: OperatorRole | None = None, name: str | None = None) -> Browser:
        """A new browser, logged in as a new operator of ``role`` (if given)."""
        http = ClientSession(cookie_jar=CookieJar(unsafe=True))
        self.browsers.append(http)
        browser = Browser(self.base, http)
        if role is not None:
            username = name or f"{role.value}1"
            await create_operator(self.db, username, PASSWORD, role, actor="test")
            page = await browser.login(username)
            assert page.status == 303, page.text
        return browser

    async def pending_payment(self, *, proof: bytes | None = None) -> int:
        """A bank transfer with an uploaded proof, waiting for approval, on a demo booking."""
        reference = self.demo.bookings[0].reference
        async with self.db.transaction() as session:
            booking = await session.scalar(select(Booking).where(Booking.reference == reference))
            assert booking is not None
            file_id = None
            if proof is not None:
                row = StoredFile.from_bytes("proof.png", "image/png", proof)
                session.add(row)
                await session.flush()
                file_id = row.id
            payment = Payment(
                booking_id=booking.id,
                amount=Decimal("25.00"),
                currency=booking.currency,
                method=PaymentMethod.BANK_TRANSFER,
                status=PaymentStatus.PENDING,
                proof_file_id=file_id,
            )
            session.add(payment)
            await session.flush()
            return payment.id


def sandbox_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest_asyncio.fixture
async def console(database_url: str, db: Database) -> AsyncIterator[Console]:
    """``nyala serve`` in sandbox mode with the demo data, on each backend."""
    demo = await load_demo_data(db, tz=flows.safari.app.timezone)
    app = create_app(sandbox_settings(database_url), flows.safari.app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    running = Console(str(server.make_url("")).rstrip("/"), db, demo)
    try:
        yield running
    finally:
        for http in running.browsers:
            await http.close()
        await server.close()


BrowserFactory = Callable[[OperatorRole], Awaitable[Browser]]
