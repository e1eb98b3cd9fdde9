"""Operator actions through the framework's console pages: each does what it says, tells
the customer where it should, and leaves an audit row naming who did it (the safari app's
pages: tests/apps/safari/test_console_operations.py)."""

from __future__ import annotations

from sqlalchemy import select

from storage import (
    AuditEntry,
    Contact,
    Conversation,
    FlowSession,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    get_or_create_contact,
    utcnow,
)
from storage.operators import Operator, OperatorRole
from tests.console.conftest import Console


async def audit_rows(console: Console, action: str) -> list[AuditEntry]:
    async with console.db.read() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


async def _handed_off_contact(console: Console) -> int:
    async with console.db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id="263779990001", profile_name="Tariro")
        # The customer just wrote: WhatsApp's 24-hour window is open.
        contact.last_inbound_at = utcnow()
        session.add(
            Conversation(contact_id=contact.id, handed_off_at=utcnow(), handoff_reason="help me")
        )
        session.add(
            InboundMessage(
                wa_message_id="wamid.test.1",
                contact_id=contact.id,
                kind="text",
                payload={"id": "wamid.test.1", "kind": "text", "text": "I need a person"},
            )
        )
        await session.flush()
        return contact.id


async def test_agents_reply_as_the_business_and_release_to_the_bot(console: Console) -> None:
    contact_id = await _handed_off_contact(console)
    agent = await console.browser(OperatorRole.AGENT)
    waiting = await agent.get("/console/conversations")
    assert "Tariro" in waiting.text and "help me" in waiting.text
    page = await agent.get(f"/console/conversations/{contact_id}")
    assert "I need a person" in page.text
    page = await agent.post(
        f"/console/conversations/{contact_id}/reply",
        {"body": "Hi Tariro, <b>Rudo</b> here."},
        follow=True,
    )
    assert "Hi Tariro, &lt;b&gt;Rudo&lt;/b&gt; here." in page.text
    async with console.db.read() as session:
        sent = await session.scalar(
            select(OutboundMessage).where(OutboundMessage.contact_id == contact_id)
        )
        assert sent is not None and sent.status is OutboundStatus.SANDBOX
        assert sent.payload == {"body": "Hi Tariro, <b>Rudo</b> here."}
    [row] = await audit_rows(console, "reply_conversation")
    assert row.actor == "agent1" and row.target == f"contact {contact_id}"
    empty = await agent.post(f"/console/conversations/{contact_id}/reply", {"body": " "})
    assert empty.status == 303
    page = await agent.post(f"/console/conversations/{contact_id}/release", follow=True)
    assert "back with the bot" in page.text
    async with console.db.read() as session:
        conversation = await session.get(Conversation, contact_id)
        assert conversation is not None and conversation.handed_off_at is None
    [row] = await audit_rows(console, "release_conversation")
    assert row.actor == "agent1"
    again = await agent.post(f"/console/conversations/{contact_id}/release", follow=True)
    assert "already with the bot" in again.text


async def test_failed_messages_show_metas_error_and_can_be_retried(console: Console) -> None:
    async with console.db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id="263779990002")
        row = OutboundMessage(
            contact_id=contact.id, kind="text", payload={"body": "Hello"},
            status=OutboundStatus.FAILED, attempts=8, error_code=131047,
            last_error="Re-engagement message: more than 24 hours have passed",
        )  # fmt: skip
        session.add(row)
        await session.flush()
        message_id = row.id
    agent = await console.browser(OperatorRole.AGENT)
    page = await agent.get("/console/outbox")
    assert "131047" in page.text and "Re-engagement message" in page.text
    page = await agent.post(f"/console/outbox/{message_id}/retry", follow=True)
    assert "queued again" in page.text
    async with console.db.read() as session:
        retried = await session.get(OutboundMessage, message_id)
        assert retried is not None and retried.status is OutboundStatus.QUEUED
        assert retried.attempts == 0 and retried.next_attempt_at is not None
    [audit] = await audit_rows(console, "retry_message")
    assert audit.actor == "agent1"
    page = await agent.post(f"/console/outbox/{message_id}/retry", follow=True)
    assert "not a failed message" in page.text


async def test_the_simulator_talks_to_the_bot_and_shows_up_in_analytics(console: Console) -> None:
    agent = await console.browser(OperatorRole.AGENT)
    page = await agent.post("/console/simulator/send", {"text": "order"}, follow=True)
    assert page.status == 200
    assert "Your name?" in page.text
    page = await agent.post("/console/simulator/send", {"text": "Ada Lovelace"}, follow=True)
    assert "Which size, Ada Lovelace?" in page.text
    assert 'name="reply_id"' in page.text  # the sizes are tappable buttons
    async with console.db.read() as session:
        operator_id = await session.scalar(
            select(Operator.id).where(Operator.username == "agent1")
        )
        contact = await session.scalar(
            select(Contact).where(Contact.wa_id == f"000{operator_id:08d}")
        )
        assert contact is not None
        flow_session = await session.scalar(
            select(FlowSession).where(FlowSession.contact_id == contact.id)
        )
        assert flow_session is not None and flow_session.flow_name == "order_flow"
        assert all(
            m.status is OutboundStatus.SANDBOX
            for m in await session.scalars(
                select(OutboundMessage).where(OutboundMessage.contact_id == contact.id)
            )
        )
    sessions = await agent.get(f"/console/sessions?q={contact.wa_id}")
    assert f"/console/sessions/{flow_session.id}" in sessions.text
    timeline = await agent.get(f"/console/sessions/{flow_session.id}")
    assert "ask_size" in timeline.text
    page = await agent.post("/console/simulator/reset", follow=True)
    assert "Started over" in page.text


async def test_admins_manage_operators(console: Console) -> None:
    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.post(
        "/console/operators", {"username": "Nyasha", "password": "short", "role": "agent"},
        follow=True,
    )  # fmt: skip
    assert "at least 10 characters" in page.text
    page = await admin.post(
        "/console/operators",
        {"username": "Nyasha", "password": "long enough password", "role": "agent"},
        follow=True,
    )
    assert "Created nyasha (agent)" in page.text
    rows = await audit_rows(console, "create_operator")
    assert ("admin1", "operator nyasha") in [(r.actor, r.target) for r in rows]
    page = await admin.post("/console/operators/admin1/active", {"active": "0"}, follow=True)
    assert "cannot disable yourself" in page.text
    nyasha = await console.browser()
    assert (await nyasha.login("nyasha", "long enough password")).status == 303
    page = await admin.post(
        "/console/operators/nyasha/password", {"password": "another long password"}, follow=True
    )
    assert "Password of nyasha changed" in page.text
    assert (await nyasha.get("/console/", follow=False)).status == 303  # logged out
