"""The chat simulator talks only as sandbox contacts, with no external effect, and is
audited: real HTTP against a running console (both backends), plus the engine and the
outbox a sandbox contact can never get past."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator

import aiohttp
import phonenumbers
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from bot.console import formatting
from bot.console.pages.simulator import SANDBOX_PREFIX, default_phone, sandbox_id
from bot.metrics import Metrics
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.outbox import Outbox
from flows import App, ContactRef, Engine, UserMessage
from flows.messages import Text, reply_to_payload
from storage import (
    AuditEntry,
    Contact,
    Database,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    get_or_create_contact,
    utcnow,
)
from storage.operators import Operator, OperatorRole
from testing.fake_graph import FakeGraph
from tests.bot.webhooks import ACCESS_TOKEN, PHONE_NUMBER_ID
from tests.console.conftest import GUEST, Console

REFUSED = "not a sandbox contact"


async def _count(db: Database, model: type[InboundMessage] | type[OutboundMessage]) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _audit(db: Database, action: str) -> list[AuditEntry]:
    async with db.read() as session:
        return list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


@pytest.mark.parametrize(
    "number", [GUEST, "+263 77 111 0001", "15551234567", "٠٠٠١٢٣٤٥", "０００１２３４５", "000"]
)
def test_only_sandbox_ids_are_accepted(number: str) -> None:
    assert sandbox_id(number) is None


def test_a_sandbox_id_can_never_be_a_phone_number() -> None:
    """No country calling code starts with 0, so no WhatsApp number does either."""
    for number in ("00012345", default_phone(1), default_phone(99_999_999)):
        assert sandbox_id(number) == number
        assert number.startswith(SANDBOX_PREFIX)
        with pytest.raises(phonenumbers.NumberParseException):
            phonenumbers.parse("+" + number)
    assert sandbox_id("+000 1234-5") == "00012345"


@pytest.mark.parametrize("number", [GUEST, "+263771110001", "٠٠٠١٢٣٤٥", "12"])
async def test_a_real_number_is_refused_and_nothing_is_processed(
    console: Console, number: str
) -> None:
    agent = await console.browser(OperatorRole.AGENT)
    inbound, outbound = (
        await _count(console.db, InboundMessage),
        await _count(console.db, OutboundMessage),
    )
    page = await agent.post("/console/simulator/send", {"phone": number, "text": "order"})
    assert page.status == 303
    shown = await agent.get(page.headers["Location"])
    assert REFUSED in shown.text
    assert await _count(console.db, InboundMessage) == inbound
    assert await _count(console.db, OutboundMessage) == outbound
    async with console.db.read() as session:
        guest = await session.scalar(select(Contact).where(Contact.wa_id == GUEST))
        assert guest is not None and guest.profile_name == "Rudo" and not guest.sandbox
    reset = await agent.post("/console/simulator/reset", {"phone": number}, follow=True)
    assert REFUSED in reset.text
    assert await _audit(console.db, "simulator_send") == []
    assert await _audit(console.db, "simulator_reset") == []


async def test_the_page_never_shows_a_real_contacts_chat(console: Console) -> None:
    agent = await console.browser(OperatorRole.AGENT)
    page = await agent.get("/console/simulator?" + urllib.parse.urlencode({"phone": GUEST}))
    assert page.status == 200
    assert "never as a real number" in page.text
    assert "Which size, Rudo" not in page.text  # the guest's conversation
    assert f'value="{GUEST}"' not in page.text


async def test_a_sandbox_id_taken_by_another_contact_is_never_touched(console: Console) -> None:
    """Defence in depth: a contact that is not a sandbox one keeps its conversation even
    if its id looks like a sandbox id."""
    async with console.db.transaction() as session:
        await get_or_create_contact(session, wa_id="00099990000", profile_name="Not sandbox")
    agent = await console.browser(OperatorRole.AGENT)
    page = await agent.post("/console/simulator/send", {"phone": "00099990000", "text": "hi"})
    assert REFUSED in (await agent.get(page.headers["Location"])).text
    async with console.db.read() as session:
        contact = await session.scalar(select(Contact).where(Contact.wa_id == "00099990000"))
        assert contact is not None and contact.profile_name == "Not sandbox"
        assert not await session.scalar(
            select(func.count()).where(InboundMessage.contact_id == contact.id)
        )


async def test_the_simulator_talks_as_a_sandbox_contact_and_is_audited(console: Console) -> None:
    agent = await console.browser(OperatorRole.AGENT)
    page = await agent.post("/console/simulator/send", {"text": "order"}, follow=True)
    assert "Your name?" in page.text
    page = await agent.post(
        "/console/simulator/send",
        {"phone": "+000 5555 0001", "text": "Ada Lovelace"},
        follow=True,
    )
    assert page.status == 200
    async with console.db.read() as session:
        operator_id = await session.scalar(
            select(Operator.id).where(Operator.username == "agent1")
        )
        assert operator_id is not None
        mine = await session.scalar(
            select(Contact).where(Contact.wa_id == default_phone(operator_id))
        )
        other = await session.scalar(select(Contact).where(Contact.wa_id == "00055550001"))
        assert mine is not None and mine.sandbox
        assert other is not None and other.sandbox
        statuses = set(
            await session.scalars(
                select(OutboundMessage.status).where(
                    OutboundMessage.contact_id.in_([mine.id, other.id])
                )
            )
        )
    assert statuses == {OutboundStatus.SANDBOX}
    sends = await _audit(console.db, "simulator_send")
    assert [(row.actor, row.target, row.details) for row in sends] == [
        ("agent1", f"sandbox contact +{mine.wa_id}", "text: order"),
        ("agent1", "sandbox contact +00055550001", "text: Ada Lovelace"),
    ]
    page = await agent.post("/console/simulator/reset", {"phone": "00055550001"}, follow=True)
    assert "Started over" in page.text
    [reset] = await _audit(console.db, "simulator_reset")
    assert (reset.actor, reset.target) == ("agent1", "sandbox contact +00055550001")


async def test_a_tapped_button_and_a_file_are_audited_without_the_bytes(
    console: Console,
) -> None:
    agent = await console.browser(OperatorRole.AGENT)
    await agent.post("/console/simulator/send", {"reply_id": "small", "title": "Small"})
    form = aiohttp.FormData()
    form.add_field("csrf_token", agent.csrf)
    form.add_field("file", b"%PDF-1.4\n% secret bytes\n", filename="proof.pdf",
                   content_type="application/pdf")  # fmt: skip
    async with agent.http.post(
        console.base + "/console/simulator/send", data=form, allow_redirects=False
    ) as response:
        assert response.status == 303
    details = [row.details or "" for row in await _audit(console.db, "simulator_send")]
    assert details[0] == "tapped 'small' (Small)"
    assert len(details) == 2
    assert "proof.pdf" in details[1] and "application/pdf" in details[1]
    assert "secret bytes" not in details[1]


async def test_a_live_engine_keeps_a_sandbox_contact_sandboxed(db: Database, cafe: App) -> None:
    """Even processed by a live server's engine (e.g. its recovery loop), a sandbox
    contact's replies are stored, never queued, and its actions see ``ctx.sandbox``."""
    async with db.transaction() as session:
        session.add(Contact(wa_id="00012340000", attributes={}, sandbox=True))
    live = Engine(db, cafe, sandbox=False)
    await live.handle(
        ContactRef(wa_id="00012340000"), UserMessage(id="wamid.sb.1", kind="text", text="order")
    )
    async with db.read() as session:
        statuses = set(await session.scalars(select(OutboundMessage.status)))
    assert statuses == {OutboundStatus.SANDBOX}


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(token=ACCESS_TOKEN, phone_number_id=PHONE_NUMBER_ID) as graph:
        yield graph


async def test_the_outbox_never_sends_to_a_sandbox_contact(db: Database, fake: FakeGraph) -> None:
    now = utcnow()
    async with db.transaction() as session:
        real = await get_or_create_contact(session, wa_id="263770009911")
        sandbox = Contact(wa_id="00011112222", attributes={}, sandbox=True)
        session.add(sandbox)
        await session.flush()
        for contact in (real, sandbox):
            contact.last_inbound_at = now
            session.add(
                OutboundMessage(
                    contact_id=contact.id,
                    kind="text",
                    payload=reply_to_payload(Text("Hi")),
                    status=OutboundStatus.QUEUED,
                    created_at=now,
                    next_attempt_at=now,
                )
            )
    async with aiohttp.ClientSession() as http:
        client = GraphClient(http, base_url=str(fake.base_url), access_token=ACCESS_TOKEN,
                             phone_number_id=PHONE_NUMBER_ID, timeout=5.0)  # fmt: skip
        outbox = Outbox(db, client, Metrics(), rate=None)
        assert await outbox.send_due() == 1
        assert await outbox.send_due() == 0
    assert [sent.to for sent in fake.sent] == ["+263770009911"]


def test_a_sandbox_id_is_never_written_as_a_phone_number() -> None:
    assert formatting.phone("00012345") == "sandbox 00012345"
    assert formatting.phone("263771234567") == "+263771234567"
    assert Contact(wa_id="0001", sandbox=True).display == "sandbox 0001"
    assert Contact(wa_id="263771234567").display == "+263771234567"
