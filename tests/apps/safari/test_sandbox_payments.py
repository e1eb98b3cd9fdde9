"""A sandbox contact (the console's chat simulator) never reaches a live payment
provider: the safari app gives it a sandbox Omari of its own, even on a live server with
Omari configured (both backends)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from apps.safari import app
from apps.safari.omari import SandboxOmari
from apps.safari.omari_client import OmariClient
from apps.safari.payment import _providers
from apps.safari.payments import PaymentProviders, SandboxPaymentProviders
from documents import PdfRenderer
from flows import FlowContext
from flows.runtime import Runtime, Services
from storage import Contact, Conversation, Database, utcnow


def _context(runtime: Runtime, *, sandbox: bool) -> FlowContext:
    contact = Contact(id=1, wa_id="00012345678" if sandbox else "263770000001", sandbox=sandbox)
    return FlowContext(
        session=None,  # type: ignore[arg-type]  # the provider lookup reads no table
        contact=contact,
        conversation=Conversation(contact_id=1),
        app=app,
        now=utcnow(),
        services=runtime.services,
        sandbox=sandbox,
    )


async def test_a_live_server_gives_sandbox_contacts_the_sandbox_omari(
    db: Database, renderer: PdfRenderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMARI_API_BASE", "https://omari.example/v1")
    monkeypatch.setenv("OMARI_MERCHANT_KEY", "merchant-key")
    monkeypatch.setenv("OMARI_CALLBACK_SECRET", "callback-secret")
    services = Services()
    services.provide(PdfRenderer, renderer)
    settings = SimpleNamespace(public_url="https://bot.example")
    async with Runtime.start(
        app, db, sandbox=False, settings=settings, services=services
    ) as runtime:
        live = _providers(_context(runtime, sandbox=False))
        assert type(live) is PaymentProviders
        assert isinstance(live.get("omari"), OmariClient)  # real customers: real Omari
        test = _providers(_context(runtime, sandbox=True))
        assert isinstance(test, SandboxPaymentProviders)
        assert isinstance(test.get("omari"), SandboxOmari)  # no money moves


async def test_a_sandbox_server_shares_its_sandbox_omari(runtime: Runtime) -> None:
    sandbox = runtime.services.get(SandboxOmari)
    assert _providers(_context(runtime, sandbox=True)).get("omari") is sandbox
    assert _providers(_context(runtime, sandbox=False)).get("omari") is sandbox
