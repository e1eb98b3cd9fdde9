"""Business-initiated messages to a sandbox contact (the console's simulator) are stored,
never queued for WhatsApp, whoever asks (a command, a console action) (both backends)."""

from __future__ import annotations

from sqlalchemy import select

from flows.messages import Template, Text
from flows.outreach import queue_outreach
from storage import Database, OutboundMessage, OutboundStatus, get_or_create_contact, utcnow


async def test_a_sandbox_contact_gets_sandbox_rows_a_real_one_queued_rows(db: Database) -> None:
    async with db.transaction() as session:
        tester = await get_or_create_contact(session, wa_id="0007")
        tester.sandbox = True
        real = await get_or_create_contact(session, wa_id="263770000123")
        await session.flush()
        for contact in (tester, real):
            await queue_outreach(
                session, contact.id, [Text("Your tour is tomorrow.")],
                template=Template("tour_reminder", "en_US"),
                now=utcnow(), sandbox=False,
            )  # fmt: skip
        ids = {tester.id: "tester", real.id: "real"}
    async with db.read() as session:
        rows = (
            await session.execute(select(OutboundMessage.contact_id, OutboundMessage.status))
        ).all()
    assert {ids[contact]: status for contact, status in rows} == {
        "tester": OutboundStatus.SANDBOX,
        "real": OutboundStatus.QUEUED,
    }
