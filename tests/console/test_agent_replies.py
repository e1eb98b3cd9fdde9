"""An agent replies only where a person is expected (an open hand-off, or a conversation
they took over), and every take and reply is audited: real HTTP against a running
console, both backends."""

from __future__ import annotations

from sqlalchemy import func, select

from storage import AuditEntry, Conversation, OutboundMessage, OutboundStatus
from storage.operators import OperatorRole
from tests.console.conftest import Console
from tests.console.test_operations import _handed_off_contact

COMPOSER = 'action="/console/conversations/{}/reply"'


async def _outbound(console: Console, contact_id: int) -> list[OutboundMessage]:
    async with console.db.read() as session:
        return list(
            await session.scalars(
                select(OutboundMessage)
                .where(
                    OutboundMessage.contact_id == contact_id, OutboundMessage.inbound_id.is_(None)
                )
                .order_by(OutboundMessage.id)
            )
        )


async def _audit(console: Console, action: str) -> list[AuditEntry]:
    async with console.db.read() as session:
        return list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


async def test_no_reply_into_a_conversation_the_bot_has(console: Console) -> None:
    guest = await console.guest_id()  # the bot has this conversation
    agent = await console.browser(OperatorRole.AGENT)
    page = await agent.get(f"/console/conversations/{guest}")
    assert page.status == 200
    assert COMPOSER.format(guest) not in page.text  # no reply box is offered
    assert "Take over from the bot" in page.text
    refused = await agent.post(f"/console/conversations/{guest}/reply", {"body": "Hello!"})
    assert refused.status == 303
    shown = await agent.get(refused.headers["Location"])
    assert "Not sent: the bot has this conversation" in shown.text
    assert await _outbound(console, guest) == []
    assert await _audit(console, "reply_conversation") == []


async def test_an_open_hand_off_takes_replies_and_each_is_audited(console: Console) -> None:
    contact_id = await _handed_off_contact(console)
    agent = await console.browser(OperatorRole.AGENT)
    page = await agent.get(f"/console/conversations/{contact_id}")
    assert COMPOSER.format(contact_id) in page.text
    for body in ("First reply", "Second reply"):
        sent = await agent.post(f"/console/conversations/{contact_id}/reply", {"body": body})
        assert sent.status == 303
    assert [m.payload["body"] for m in await _outbound(console, contact_id)] == [
        "First reply",
        "Second reply",
    ]
    rows = await _audit(console, "reply_conversation")
    assert [(r.actor, r.target, r.details) for r in rows] == [
        ("agent1", f"contact {contact_id}", "First reply"),
        ("agent1", f"contact {contact_id}", "Second reply"),
    ]
    # Given back to the bot: no more replies.
    await agent.post(f"/console/conversations/{contact_id}/release")
    late = await agent.post(f"/console/conversations/{contact_id}/reply", {"body": "Late"})
    assert "Not sent" in (await agent.get(late.headers["Location"])).text
    assert len(await _outbound(console, contact_id)) == 2


async def test_an_agent_takes_a_conversation_over_then_replies(console: Console) -> None:
    guest = await console.guest_id()
    agent = await console.browser(OperatorRole.AGENT)
    taken = await agent.post(f"/console/conversations/{guest}/take", follow=True)
    assert "You have this conversation" in taken.text
    assert COMPOSER.format(guest) in taken.text
    async with console.db.read() as session:
        conversation = await session.get(Conversation, guest)
        assert conversation is not None and conversation.handed_off_at is not None
        assert conversation.handoff_reason == "taken over by agent1 in the console"
    [row] = await _audit(console, "take_conversation")
    assert (row.actor, row.target) == ("agent1", f"contact {guest}")
    page = await agent.post(
        f"/console/conversations/{guest}/reply", {"body": "Rudo, it's Ada."}, follow=True
    )
    assert "Reply stored (sandbox)" in page.text
    [sent] = await _outbound(console, guest)
    assert sent.status is OutboundStatus.SANDBOX
    again = await agent.post(f"/console/conversations/{guest}/take", follow=True)
    assert "A person has this conversation already" in again.text
    assert len(await _audit(console, "take_conversation")) == 1


async def test_viewers_cannot_take_and_unknown_contacts_are_404(console: Console) -> None:
    guest = await console.guest_id()
    viewer = await console.browser(OperatorRole.VIEWER)
    assert (await viewer.post(f"/console/conversations/{guest}/take")).status == 403
    agent = await console.browser(OperatorRole.AGENT)
    assert (await agent.post("/console/conversations/999999/take")).status == 404
    assert (await agent.post("/console/conversations/999999/reply", {"body": "x"})).status == 404
    async with console.db.read() as session:
        assert not await session.scalar(
            select(func.count()).where(AuditEntry.action == "take_conversation")
        )
