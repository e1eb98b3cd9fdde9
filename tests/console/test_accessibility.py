"""Every console page passes axe-core in a real headless Chromium: no serious or critical
violation (contrast, names of links, buttons and fields, links told apart by colour alone,
nested controls, scroll regions a keyboard cannot reach), and none of the rules the
hardening issue named (a level-one heading on every page, no empty table header).

axe-core is never downloaded while the tests run: ``axe.min.js`` comes from the PyPI
package ``axe-playwright-python`` (the ``test`` extra) and is evaluated in each page.
The pages are the safari app's (the framework's pages and the app's own), filled with its
demo data, a conversation handed to a person, snapshots and a payment with a proof; and
the restaurant example's reservations page.

SQLite only: the HTML is the same on both backends (they are tested everywhere else), and
a second Chromium pass would add a minute to the suite for nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select, update

from analytics import generate_snapshots
from apps.safari import app as safari
from apps.safari.demo import load_demo_data
from apps.safari.models import Booking, Payment, PaymentMethod, PaymentStatus
from bot.console.accounts import create_operator
from bot.server import create_app
from examples.restaurant.app import app as restaurant
from flows import App, ContactRef, Engine, UserMessage
from storage import Contact, Conversation, Database, FlowSession, StoredFile, utcnow
from storage.operators import OperatorRole
from tests.conftest import Databases
from tests.console.conftest import PASSWORD, sandbox_settings
from tests.console.test_browser import chromium

__all__ = ["chromium"]  # the fixture, imported to be used here

# The axe-core build the package ships (no network at run time).
AXE = files("axe_playwright_python").joinpath("axe.min.js").read_text(encoding="utf-8")
# Impacts that fail a page; below them, only the rules the issue named fail it.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
BLOCKING_RULES = frozenset({"page-has-heading-one", "empty-table-header"})
ADMIN = "admin-a11y"
CUSTOMER = "263771230001"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One axe violation on one page: the rule, how bad, where and what to fix."""

    page: str
    rule: str
    impact: str
    targets: tuple[str, ...]
    summary: str

    @property
    def blocking(self) -> bool:
        return self.impact in BLOCKING_IMPACTS or self.rule in BLOCKING_RULES

    def __str__(self) -> str:
        where = ", ".join(self.targets)
        return f"{self.page}: {self.rule} ({self.impact}) at {where}: {self.summary}"


async def axe(page: Page, label: str) -> list[Finding]:
    """axe-core's violations on ``page`` as it is now (all rules axe runs by default)."""
    await page.evaluate(AXE)
    raw: Any = await page.evaluate(
        "async () => JSON.stringify("
        "(await axe.run(document, {resultTypes: ['violations']})).violations)"
    )
    return [
        Finding(
            label,
            str(violation["id"]),
            str(node.get("impact") or violation.get("impact")),
            tuple(str(target) for target in node["target"]),
            " ".join(str(node.get("failureSummary", "")).split()),
        )
        for violation in json.loads(raw)
        for node in violation["nodes"]
    ]


@dataclass
class Served:
    """A running console, its database and a browser tab, and what axe found so far."""

    base: str
    db: Database
    page: Page
    found: list[Finding] = field(default_factory=list)

    async def check(self, label: str) -> None:
        """Run axe on the page as it is now."""
        self.found += await axe(self.page, label)

    async def visit(self, path: str, status: int = 200) -> None:
        """Open ``path``, which answers ``status`` (the 404 page is checked too: an error
        page checked in place of the real one would hide the real one), and run axe."""
        response = await self.page.goto(self.base + path)
        assert response is not None
        assert response.status == status, f"{path}: {response.status}"
        await self.check(path)

    async def log_in(self) -> None:
        """Check the login page empty and after a wrong password, then log in."""
        page = self.page
        await self.visit("/console/login")
        await page.fill("input[name=username]", ADMIN)
        await page.fill("input[name=password]", "not the password")
        await page.press("input[name=password]", "Enter")
        await expect(page.locator(".alert-error")).to_be_visible()
        await self.check("/console/login (wrong password)")
        await page.fill("input[name=password]", PASSWORD)
        await page.press("input[name=password]", "Enter")
        await expect(page.locator(".topbar .user")).to_contain_text(ADMIN)

    def assert_clean(self) -> None:
        blocking = [str(finding) for finding in self.found if finding.blocking]
        assert not blocking, "\n".join(blocking)


Serve = Callable[[App, str], Awaitable[Served]]


@pytest.fixture
def safari_url(tmp_path: Path, databases: Databases) -> str:
    """An empty SQLite database with the framework's and the safari app's tables."""
    return databases.url("sqlite", tmp_path, safari.migration_locations)


@pytest.fixture
def restaurant_url(tmp_path: Path, databases: Databases) -> str:
    """An empty SQLite database with the framework's and the restaurant's tables."""
    return databases.url("sqlite", tmp_path, restaurant.migration_locations)


@pytest_asyncio.fixture
async def serve(chromium: Browser) -> AsyncIterator[Serve]:
    """``await serve(app, url)``: ``nyala serve`` of ``app`` (sandbox) on the empty database
    at ``url``, an admin ``admin-a11y`` and a browser tab, not yet logged in."""
    servers: list[TestServer] = []
    dbs: list[Database] = []

    async def start(app: App, url: str) -> Served:
        db = Database(url)
        dbs.append(db)
        server = TestServer(create_app(sandbox_settings(url), app), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        await create_operator(db, ADMIN, PASSWORD, OperatorRole.ADMIN, actor="test")
        page = await chromium.new_page()
        page.set_default_timeout(15_000)
        return Served(str(server.make_url("")).rstrip("/"), db, page)

    try:
        yield start
    finally:
        for server in servers:
            await server.close()
        for db in dbs:
            await db.dispose()


async def a_handed_off_conversation(db: Database) -> int:
    """A customer who chatted with the safari bot and asked for a person; the contact id."""
    engine = Engine(db, safari, sandbox=True)
    contact = ContactRef(wa_id=CUSTOMER, profile_name="Chipo Dube")
    for n, text in enumerate(["hi", "book"]):
        await engine.handle(contact, UserMessage(id=f"wamid.a11y.{n}", kind="text", text=text))
    async with db.transaction() as session:
        contact_id = await session.scalar(select(Contact.id).where(Contact.wa_id == CUSTOMER))
        assert contact_id is not None
        await session.execute(
            update(Conversation)
            .where(Conversation.contact_id == contact_id)
            .values(handed_off_at=utcnow(), handoff_reason="Can I speak to someone?")
        )
    return contact_id


async def a_payment_to_review(db: Database, reference: str) -> int:
    """A bank transfer with a proof on booking ``reference``, waiting for approval."""
    async with db.transaction() as session:
        booking = await session.scalar(select(Booking).where(Booking.reference == reference))
        assert booking is not None
        proof = StoredFile.from_bytes("proof.png", "image/png", PNG)
        session.add(proof)
        await session.flush()
        payment = Payment(
            booking_id=booking.id,
            amount=Decimal("25.00"),
            currency=booking.currency,
            method=PaymentMethod.BANK_TRANSFER,
            status=PaymentStatus.PENDING,
            proof_file_id=proof.id,
        )
        session.add(payment)
        await session.flush()
        return payment.id


async def test_the_framework_pages_have_no_serious_violations(
    serve: Serve, safari_url: str
) -> None:
    served = await serve(safari, safari_url)
    db = served.db
    await load_demo_data(db, tz=safari.timezone)
    contact_id = await a_handed_off_conversation(db)
    await generate_snapshots("daily", dt.datetime.now(safari.timezone).date(), db=db)
    async with db.read() as session:
        session_id = await session.scalar(select(FlowSession.id).limit(1))
    await served.log_in()
    for path in (
        "/console/",
        "/console/conversations",
        f"/console/conversations/{contact_id}",
        "/console/sessions",
        "/console/sessions?status=active",
        f"/console/sessions/{session_id}",
        "/console/funnel",
        "/console/events",
        "/console/outbox",
        "/console/media",
        "/console/operators",
        "/console/audit",
        "/console/snapshots",
        "/console/simulator",
    ):
        await served.visit(path)
    await served.visit("/console/no-such-page", status=404)
    # The simulator mid-conversation: the bot's answer and its menu opened.
    page = served.page
    await page.goto(served.base + "/console/simulator")
    box = page.locator(".composer input[name=text]")
    await box.fill("hi")
    await box.press("Enter")
    await expect(page.locator(".msg.bot").last).to_be_visible()
    menus = page.locator("details.list-menu summary")
    if await menus.count():
        await menus.last.click()
    await served.check("/console/simulator (after 'hi')")
    served.assert_clean()


async def test_the_safari_pages_have_no_serious_violations(serve: Serve, safari_url: str) -> None:
    served = await serve(safari, safari_url)
    demo = await load_demo_data(served.db, tz=safari.timezone)
    reference = demo.bookings[0].reference
    payment_id = await a_payment_to_review(served.db, reference)
    await served.log_in()
    for path in (
        "/console/bookings",
        f"/console/bookings/{reference}",
        "/console/payments",
        f"/console/payments/{payment_id}",
        "/console/summaries",
        f"/console/summaries/{reference}",
    ):
        await served.visit(path)
    served.assert_clean()


async def test_the_restaurant_reservations_page_has_no_serious_violations(
    serve: Serve, restaurant_url: str
) -> None:
    served = await serve(restaurant, restaurant_url)
    await served.log_in()
    await served.visit("/console/reservations")
    await expect(served.page.locator("h1")).to_have_count(1)
    served.assert_clean()


def test_a_finding_names_the_page_rule_and_fix() -> None:
    finding = Finding("/console/", "color-contrast", "serious", (".x",), "Fix: 3.5:1")
    assert finding.blocking
    assert str(finding) == "/console/: color-contrast (serious) at .x: Fix: 3.5:1"
    assert Finding("/", "empty-table-header", "minor", (), "").blocking
    assert not Finding("/", "region", "moderate", (), "").blocking
    assert re.fullmatch(r"/\*! axe v4\.\d+\.\d+", AXE.splitlines()[0])
