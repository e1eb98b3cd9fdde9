"""An agent's reply and WhatsApp's 24-hour window (issue 16.5): inside the window the text
goes, with the app's agent template as its fallback; outside it the template with the text
in it (one line, as WhatsApp requires of a parameter); with no template, or a text too long
for it, nothing is stored and the notice says why. The page shows the window in the
business's time zone, and the notice says what was really queued. A live-mode console
(an access token, no outbox running) on both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.console.pages.conversations import local_time
from bot.server import create_app
from bot.settings import Settings
from flows.outreach import TEMPLATE_BODY_MAX, TemplateRef, load_template_specs
from storage import (
    AuditEntry,
    Contact,
    Conversation,
    Database,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    get_or_create_contact,
    utcnow,
)
from storage.operators import OperatorRole
from tests.cafe import build_app
from tests.console.conftest import Browser, Console, seed
from tests.console.notes import add_pages

HARARE = ZoneInfo("Africa/Harare")
TEMPLATES = """\
language: en_US
templates:
  agent_follow_up:
    name: agent_follow_up
    parameters: [first_name, message]
    text: "Hi {first_name}, our team replied: {message} Reply here with any questions."
"""
SAFARI_TEMPLATES = Path(__file__).parents[2] / "apps/safari/documents/templates.yaml"


@dataclass
class Live:
    """A console in live mode whose app (Africa/Harare) may name an agent template."""

    console: Console
    templates: Path


@pytest_asyncio.fixture(params=["template", "no_template"])
async def live(
    request: pytest.FixtureRequest, database_url: str, db: Database, tmp_path: Path
) -> AsyncIterator[Live]:
    app = build_app(tmp_path / "flows")
    add_pages(app)
    app.timezone = HARARE  # set before the server starts, so every page uses it
    templates = tmp_path / "templates.yaml"
    templates.write_text(TEMPLATES)
    if request.param == "template":
        app.agent_template = TemplateRef(templates, "agent_follow_up")
    await seed(db, app)
    # An access token makes the console live (rows queued, not sandbox); without a phone
    # number id no outbox runs, so nothing leaves the machine.
    settings = Settings(database_url=database_url, whatsapp_access_token="test-token")
    server = TestServer(create_app(settings, app), host="127.0.0.1")
    await server.start_server()
    console = Console(str(server.make_url("")).rstrip("/"), db, app)
    try:
        yield Live(console, templates)
    finally:
        for http in console.browsers:
            await http.close()
        await server.close()


async def _handed_off(
    console: Console, *, wrote: dt.datetime | None, sandbox: bool = False
) -> int:
    """A contact waiting for a person, who last wrote at ``wrote``."""
    async with console.db.transaction() as session:
        contact = await get_or_create_contact(
            session, wa_id="263779990002", profile_name="Tariro M"
        )
        contact.last_inbound_at = wrote
        contact.sandbox = sandbox
        session.add(
            Conversation(contact_id=contact.id, handed_off_at=utcnow(), handoff_reason="help")
        )
        session.add(
            InboundMessage(
                wa_message_id="wamid.window.1",
                contact_id=contact.id,
                kind="text",
                payload={"id": "wamid.window.1", "kind": "text", "text": "Is my tour on?"},
            )
        )
        await session.flush()
        return contact.id


async def _rows(console: Console, contact_id: int) -> list[OutboundMessage]:
    async with console.db.read() as session:
        return list(
            await session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.contact_id == contact_id)
                .order_by(OutboundMessage.id)
            )
        )


async def _audited(console: Console) -> int:
    async with console.db.read() as session:
        rows = await session.scalars(
            select(AuditEntry.id).where(AuditEntry.action == "reply_conversation")
        )
        return len(list(rows))


async def _reply(agent: Browser, contact_id: int, body: str) -> tuple[str, str]:
    """Send ``body``; the page it lands on and where."""
    sent = await agent.post(f"/console/conversations/{contact_id}/reply", {"body": body})
    assert sent.status == 303
    page = await agent.get(sent.headers["Location"])
    return page.text, sent.headers["Location"]


def _closes(wrote: dt.datetime) -> str:
    return local_time(wrote + dt.timedelta(hours=24), HARARE)


async def test_inside_the_window_the_text_goes_with_the_template_as_fallback(
    live: Live,
) -> None:
    console = live.console
    wrote = utcnow() - dt.timedelta(hours=2)
    contact_id = await _handed_off(console, wrote=wrote)
    agent = await console.browser(OperatorRole.AGENT)
    page = await agent.get(f"/console/conversations/{contact_id}")
    assert f"window is open until {_closes(wrote)}" in page.text
    assert "CAT" in _closes(wrote)  # the business's zone, named
    if console.app.agent_template is None:
        assert "after that they cannot be sent (this app names no agent template)" in page.text
    else:
        assert "the template agent_follow_up goes instead" in page.text
    text, location = await _reply(agent, contact_id, "Yes, it runs.\nSee you at 7.")
    assert location.endswith("?sent=1")
    assert "Reply queued for WhatsApp: the 24-hour window is open until" in text
    [row] = await _rows(console, contact_id)
    assert (row.kind, row.status) == ("text", OutboundStatus.QUEUED)
    assert row.payload["body"] == "Yes, it runs.\nSee you at 7."
    if console.app.agent_template is None:
        assert row.fallback is None
        assert "WhatsApp refuses the reply (no agent template)" in text
    else:
        assert "the template agent_follow_up goes instead" in text
        assert row.fallback is not None
        assert row.fallback["name"] == "agent_follow_up"
        assert row.fallback["parameters"] == ["Tariro", "Yes, it runs. See you at 7."]
    assert await _audited(console) == 1


async def test_outside_the_window_the_template_carries_the_text(live: Live) -> None:
    console = live.console
    wrote = utcnow() - dt.timedelta(hours=30)
    contact_id = await _handed_off(console, wrote=wrote)
    agent = await console.browser(OperatorRole.AGENT)
    page = await agent.get(f"/console/conversations/{contact_id}")
    assert f"window is closed on {_closes(wrote)}" in page.text
    body = "Your pick-up\n\nis at   7:00,\tgate 2."
    text, location = await _reply(agent, contact_id, body)
    if console.app.agent_template is None:
        assert not location.endswith("?sent=1")  # the draft is kept
        assert "Not sent: the customer&#39;s 24-hour window is closed" in text
        assert "names none for agent replies" in text
        assert await _rows(console, contact_id) == []
        assert await _audited(console) == 0
        return
    assert (
        "Reply queued for WhatsApp as the template agent_follow_up because the 24-hour "
        f"window closed on {_closes(wrote)}." in text
    )
    [row] = await _rows(console, contact_id)
    assert (row.kind, row.status, row.fallback) == ("template", OutboundStatus.QUEUED, None)
    # One line, no tab, no run of spaces: what WhatsApp accepts as a parameter (132018).
    assert row.payload["parameters"] == ["Tariro", "Your pick-up is at 7:00, gate 2."]
    assert row.payload["name"] == "agent_follow_up"
    assert row.payload["fallback"] == (
        "Hi Tariro, our team replied: Your pick-up is at 7:00, gate 2. "
        "Reply here with any questions."
    )


async def test_a_reply_too_long_for_the_template_is_refused_outside_the_window(
    live: Live,
) -> None:
    console = live.console
    contact_id = await _handed_off(console, wrote=utcnow() - dt.timedelta(days=3))
    agent = await console.browser(OperatorRole.AGENT)
    text, _ = await _reply(agent, contact_id, "x" * 1500)
    assert await _rows(console, contact_id) == []
    if console.app.agent_template is None:
        assert "names none for agent replies" in text
        return
    assert f"holds at most {TEMPLATE_BODY_MAX} characters" in text
    # Inside the window the whole text goes; the fallback is cut to fit.
    async with console.db.transaction() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        contact.last_inbound_at = utcnow()
    await _reply(agent, contact_id, "y" * 1500)
    [row] = await _rows(console, contact_id)
    assert row.payload["body"] == "y" * 1500 and row.fallback is not None
    assert len(row.fallback["fallback"]) <= TEMPLATE_BODY_MAX


async def test_a_customer_who_never_wrote_gets_the_template_or_nothing(live: Live) -> None:
    console = live.console
    contact_id = await _handed_off(console, wrote=None)
    agent = await console.browser(OperatorRole.AGENT)
    page = await agent.get(f"/console/conversations/{contact_id}")
    assert "the customer has not written yet" in page.text
    text, _ = await _reply(agent, contact_id, "Hello")
    rows = await _rows(console, contact_id)
    if console.app.agent_template is None:
        assert rows == [] and "Not sent" in text
    else:
        assert [r.kind for r in rows] == ["template"]
        assert "because the customer has not written yet" in text


async def test_a_sandbox_contact_is_stored_never_queued(live: Live) -> None:
    console = live.console
    wrote = utcnow() - dt.timedelta(hours=26)
    contact_id = await _handed_off(console, wrote=wrote, sandbox=True)
    agent = await console.browser(OperatorRole.AGENT)
    text, _ = await _reply(agent, contact_id, "Hi from the team")
    rows = await _rows(console, contact_id)
    if console.app.agent_template is None:
        # The same rule as a real customer: the simulator shows what WhatsApp would do.
        assert rows == [] and "Not sent" in text
        return
    [row] = rows
    assert (row.kind, row.status, row.next_attempt_at) == (
        "template",
        OutboundStatus.SANDBOX,
        None,
    )
    assert "Reply stored (sandbox) as the template agent_follow_up" in text


def test_the_safari_app_has_an_agent_follow_up_template() -> None:
    """The safari app's templates name one for agent replies, filled from what the console
    gives (first_name, customer_name, business, message)."""
    spec = load_template_specs(SAFARI_TEMPLATES)["agent_follow_up"]
    assert set(spec.parameters) <= {"first_name", "customer_name", "business", "message"}
    assert "message" in spec.parameters
    ref = TemplateRef(SAFARI_TEMPLATES, "agent_follow_up")
    assert ref.spec() == spec


def test_a_template_ref_to_nothing_fails_when_made(tmp_path: Path) -> None:
    file = tmp_path / "templates.yaml"
    file.write_text(TEMPLATES)
    with pytest.raises(ValueError, match=r"no template 'agent_reply'.*agent_follow_up"):
        TemplateRef(file, "agent_reply")
    with pytest.raises(ValueError, match="cannot read the templates file"):
        TemplateRef(tmp_path / "missing.yaml", "agent_follow_up")
