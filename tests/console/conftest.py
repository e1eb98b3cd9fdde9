"""A running ``nyala serve`` app (sandbox): the test café with a console page of its own
(tests/console/notes.py) and a few conversations, and a browser-like HTTP client that logs
in as an operator of a given role. Both backends."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import ClientResponse, ClientSession, CookieJar
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.console.accounts import create_operator
from bot.server import create_app
from bot.settings import Settings
from flows import App, ContactRef, Engine, UserMessage
from storage import Contact, Database
from storage.operators import OperatorRole
from tests.cafe import build_app
from tests.console.notes import add_pages

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


GUEST = "263771110001"  # ordered a coffee and left a note


@dataclass
class Console:
    """The server under test, its database and app, and a way to open browsers."""

    base: str
    db: Database
    app: App
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

    async def guest_id(self) -> int:
        """The contact id of :data:`GUEST`."""
        async with self.db.read() as session:
            found = await session.scalar(select(Contact.id).where(Contact.wa_id == GUEST))
        assert found is not None
        return found


def sandbox_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


async def seed(db: Database, app: App) -> None:
    """A completed coffee order (sessions, events, replies) and a guest's note."""
    engine = Engine(db, app, sandbox=True)
    guest = ContactRef(wa_id=GUEST, profile_name="Rudo")
    for n, text in enumerate(["order", "Rudo Moyo", "", "2", ""], 1):
        if text:
            message = UserMessage(id=f"wamid.seed.{n}", kind="text", text=text)
        else:  # tap the first button of the last question
            reply_id = "small" if n == 3 else "yes"
            message = UserMessage(id=f"wamid.seed.{n}", kind="reply", reply_id=reply_id)
        await engine.handle(guest, message)
    async with db.transaction() as session:
        contact = await session.scalar(select(Contact).where(Contact.wa_id == GUEST))
        assert contact is not None
        contact.attributes = {**contact.attributes, "note": "Oat milk, please"}


@pytest_asyncio.fixture
async def console(database_url: str, db: Database, tmp_path: Path) -> AsyncIterator[Console]:
    """``nyala serve`` in sandbox mode for the test café, on each backend."""
    app = build_app(tmp_path / "flows")
    add_pages(app)
    await seed(db, app)
    async with serving(database_url, db, app) as running:
        yield running


@contextlib.asynccontextmanager
async def serving(database_url: str, db: Database, app: App) -> AsyncIterator[Console]:
    """``app``'s server in sandbox mode on ``database_url``, closed with its browsers."""
    server = TestServer(create_app(sandbox_settings(database_url), app), host="127.0.0.1")
    await server.start_server()
    running = Console(str(server.make_url("")).rstrip("/"), db, app)
    try:
        yield running
    finally:
        for http in running.browsers:
            await http.close()
        await server.close()


BrowserFactory = Callable[[OperatorRole], Awaitable[Browser]]
