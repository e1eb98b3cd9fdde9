"""Operator actions through the console: each does what it says, tells the customer where
it should, and leaves an audit row naming who did it."""

from __future__ import annotations

from sqlalchemy import select

from storage import (
    AuditEntry,
    Booking,
    BookingStatus,
    Contact,
    Conversation,
    FlowSession,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    Payment,
    PaymentStatus,
    Receipt,
    get_or_create_contact,
    utcnow,
)
from storage.operators import Operator, OperatorRole
from tests.console.conftest import Console

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


async def audit_rows(console: Console, action: str) -> list[AuditEntry]:
    async with console.db.read() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


async def outbound_for_booking(console: Console, reference: str) -> list[OutboundMessage]:
    from storage import Customer

    async with console.db.read() as session:
        contact_id = await session.scalar(
            select(Customer.contact_id)
            .join(Booking, Booking.customer_id == Customer.id)
            .where(Booking.reference == reference)
        )
        return list(
            await session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.contact_id == contact_id)
                .order_by(OutboundMessage.id)
            )
        )


async def open_window(console: Console, whatsapp: str) -> None:
    """The customer wrote recently: WhatsApp's 24-hour window is open (no template)."""
    async with console.db.transaction() as session:
        contact = await session.scalar(select(Contact).where(Contact.wa_id == whatsapp))
        assert contact is not None
        contact.last_inbound_at = utcnow()


async def test_approving_a_payment_sends_the_news_and_the_receipt(console: Console) -> None:
    payment_id = await console.pending_payment(proof=PNG)
    await open_window(console, console.demo.bookings[0].whatsapp)
    admin = await console.browser(OperatorRole.ADMIN)
    queue = await admin.get("/console/payments")
    assert f"/console/payments/{payment_id}" in queue.text
    detail = await admin.get(f"/console/payments/{payment_id}")
    assert "Approve payment" in detail.text
    assert f"/console/payments/{payment_id}/proof" in detail.text
    page = await admin.post(f"/console/payments/{payment_id}/approve", follow=True)
    assert page.status == 200
    assert "approved" in page.text and "RCT-" in page.text
    async with console.db.read() as session:
        payment = await session.get(Payment, payment_id)
        assert payment is not None and payment.status is PaymentStatus.APPROVED
        assert payment.approved_by == "admin1"
        receipt = await session.scalar(select(Receipt).where(Receipt.payment_id == payment_id))
        assert receipt is not None
    messages = await outbound_for_booking(console, console.demo.bookings[0].reference)
    kinds = [m.kind for m in messages[-2:]]
    assert kinds == ["text", "document"]
    assert all(m.status is OutboundStatus.SANDBOX for m in messages[-2:])
    [row] = await audit_rows(console, "approve_payment")
    assert row.actor == "admin1" and row.target == f"payment {payment_id}"
    # The receipt downloads as the stored PDF, and the download is audited.
    pdf = await admin.get(f"/console/payments/{payment_id}/receipt.pdf")
    assert pdf.status == 200
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.body.startswith(b"%PDF")
    assert [r.actor for r in await audit_rows(console, "download_receipt")] == ["admin1"]
    # Approving again changes nothing.
    again = await admin.post(f"/console/payments/{payment_id}/approve", follow=True)
    assert again.status == 200
    assert len(await outbound_for_booking(console, console.demo.bookings[0].reference)) == len(
        messages
    )


async def test_the_proof_is_viewable_and_served_safely(console: Console) -> None:
    payment_id = await console.pending_payment(proof=PNG)
    viewer = await console.browser(OperatorRole.VIEWER)
    proof = await viewer.get(f"/console/payments/{payment_id}/proof")
    assert proof.status == 200
    assert proof.body == PNG
    assert proof.headers["Content-Type"] == "image/png"
    assert proof.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in proof.headers["Content-Security-Policy"]
    assert [r.actor for r in await audit_rows(console, "view_proof")] == ["viewer1"]


async def test_rejecting_needs_a_reason_and_tells_the_customer(console: Console) -> None:
    payment_id = await console.pending_payment()
    await open_window(console, console.demo.bookings[0].whatsapp)
    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.post(f"/console/payments/{payment_id}/reject", {"reason": "  "})
    assert page.status == 303
    async with console.db.read() as session:
        assert (await session.get(Payment, payment_id)).status is PaymentStatus.PENDING  # type: ignore[union-attr]
    page = await admin.post(
        f"/console/payments/{payment_id}/reject",
        {"reason": "The transfer has not arrived <yet>"},
        follow=True,
    )
    assert "rejected" in page.text
    assert "&lt;yet&gt;" in page.text  # the reason is shown escaped in the history
    async with console.db.read() as session:
        payment = await session.get(Payment, payment_id)
        assert payment is not None and payment.status is PaymentStatus.REJECTED
    last = (await outbound_for_booking(console, console.demo.bookings[0].reference))[-1]
    assert "could not accept your payment" in last.payload["body"]
    [row] = await audit_rows(console, "reject_payment")
    assert row.actor == "admin1" and row.details == "The transfer has not arrived <yet>"
    # A rejected payment cannot be approved.
    page = await admin.post(f"/console/payments/{payment_id}/approve", follow=True)
    assert "Not approved" in page.text


async def test_generate_receipt_issues_once_and_sends(console: Console) -> None:
    payment_id = console.demo.bookings[1].payment_ids[0]  # approved, no receipt yet
    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.post(f"/console/payments/{payment_id}/receipt", {"send": "1"}, follow=True)
    assert page.status == 200
    assert "issued and sent to the customer" in page.text
    page = await admin.post(f"/console/payments/{payment_id}/receipt", follow=True)
    assert "already issued" in page.text
    async with console.db.read() as session:
        receipts = list(
            await session.scalars(select(Receipt).where(Receipt.payment_id == payment_id))
        )
    assert len(receipts) == 1
    rows = await audit_rows(console, "generate_receipt")
    assert [r.actor for r in rows] == ["admin1", "admin1"]
    pending = await console.pending_payment()
    page = await admin.post(f"/console/payments/{pending}/receipt", follow=True)
    assert "No receipt" in page.text


async def _handed_off_contact(console: Console) -> int:
    async with console.db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id="263779990001", profile_name="Tariro")
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
    page = await agent.post("/console/simulator/send", {"text": "book"}, follow=True)
    assert page.status == 200
    assert "Which tour would you like to book?" in page.text
    assert 'name="reply_id"' in page.text  # the tours are tappable list rows
    async with console.db.read() as session:
        operator_id = await session.scalar(
            select(Operator.id).where(Operator.username == "agent1")
        )
        contact = await session.scalar(
            select(Contact).where(Contact.wa_id == f"1555{operator_id:07d}")
        )
        assert contact is not None
        flow_session = await session.scalar(
            select(FlowSession).where(FlowSession.contact_id == contact.id)
        )
        assert flow_session is not None and flow_session.flow_name == "booking_flow"
        assert all(
            m.status is OutboundStatus.SANDBOX
            for m in await session.scalars(
                select(OutboundMessage).where(OutboundMessage.contact_id == contact.id)
            )
        )
    sessions = await agent.get(f"/console/sessions?q={contact.wa_id}")
    assert f"/console/sessions/{flow_session.id}" in sessions.text
    timeline = await agent.get(f"/console/sessions/{flow_session.id}")
    assert "choose_tour" in timeline.text
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


async def test_the_summaries_dry_run_and_preview(console: Console) -> None:
    week = next(b for b in console.demo.bookings if b.status == BookingStatus.CONFIRMED.value)
    viewer = await console.browser(OperatorRole.VIEWER)
    days = (week.tour_date - console.demo.today).days
    page = await viewer.get(f"/console/summaries?days={days}")
    assert week.reference in page.text
    preview = await viewer.get(f"/console/summaries/{week.reference}?days={days}")
    assert preview.status == 200
    assert "nothing is sent" in preview.text
    async with console.db.read() as session:
        assert await session.scalar(select(OutboundMessage.id).limit(1)) is None  # sent nothing


async def test_bookings_search_and_detail(console: Console) -> None:
    booking = console.demo.bookings[0]
    viewer = await console.browser(OperatorRole.VIEWER)
    page = await viewer.get(f"/console/bookings?q={booking.reference.lower()}")
    assert page.url.endswith(f"/console/bookings/{booking.reference}")  # straight to it
    page = await viewer.get(f"/console/bookings?q={booking.customer.split()[0]}")
    assert booking.reference in page.text
    page = await viewer.get(f"/console/bookings/{booking.reference}")
    assert booking.customer in page.text
    assert "Balance due" in page.text


async def test_admins_record_payments_and_cancel_bookings(console: Console) -> None:
    booking = console.demo.bookings[0]
    admin = await console.browser(OperatorRole.ADMIN)
    path = f"/console/bookings/{booking.reference}"
    for junk in ("", "-5", "abc", "NaN", "1e99"):
        page = await admin.post(
            path + "/payments", {"amount": junk, "method": "cash"}, follow=True
        )
        assert "Enter the amount received" in page.text, junk
    page = await admin.post(path + "/payments", {"amount": "10", "method": "cheque"}, follow=True)
    assert "Choose cash or bank transfer" in page.text
    page = await admin.post(
        path + "/payments", {"amount": "40.5", "method": "cash", "reference": "RB-7"}, follow=True
    )
    assert "USD 40.50" in page.text or "40.50 USD" in page.text
    assert "/console/payments/" in page.url
    async with console.db.read() as session:
        payment = await session.scalar(select(Payment).where(Payment.provider_reference == "RB-7"))
        assert payment is not None and payment.status is PaymentStatus.APPROVED
        assert payment.approved_by == "admin1"
    assert [r.actor for r in await audit_rows(console, "record_payment")][-1] == "admin1"
    page = await admin.post(path + "/cancel", {"reason": " "}, follow=True)
    assert "Say why" in page.text
    page = await admin.post(path + "/cancel", {"reason": "Customer fell ill"}, follow=True)
    assert "cancelled" in page.text
    async with console.db.read() as session:
        found = await session.scalar(select(Booking).where(Booking.reference == booking.reference))
        assert found is not None and found.status is BookingStatus.CANCELLED
    [row] = await audit_rows(console, "cancel_booking")
    assert row.actor == "admin1" and row.details == "Customer fell ill"
