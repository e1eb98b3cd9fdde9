"""What the safari app starts with and stops: its services in ``runtime.services``.

* :class:`~documents.PdfRenderer` (worker processes, stopped at shutdown; one the host
  provided already is used instead) and
  :class:`~apps.safari.documents.SafariDocuments` (the renderer, the app's timezone and
  the branding file);
* :class:`~apps.safari.omari.ReceiptHooks` with the receipt hook: a confirmed payment
  sends its receipt;
* :class:`~apps.safari.payments.PaymentProviders` with Omari's provider when the
  settings allow one (:func:`omari_provider`); the self-confirming
  :class:`~apps.safari.omari.SandboxOmari` only while replies are sandboxed too;
* :class:`~apps.safari.payments.SandboxPaymentProviders`, always with a
  :class:`~apps.safari.omari.SandboxOmari`: what sandbox contacts (the console's chat
  simulator) pay through, even on a live server;
* :class:`~apps.safari.omari_callback.OmariCallback`, the handler of Omari's callback
  route.

What an operator must know about the Omari settings is logged once at start-up
(:func:`omari_warnings`), never with a secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp

from apps.safari.documents.service import SafariDocuments
from apps.safari.omari import CALLBACK_PATH, Outcome, ReceiptHooks, SandboxOmari
from apps.safari.omari_callback import OmariCallback
from apps.safari.omari_client import OmariClient
from apps.safari.payments import PaymentProvider, PaymentProviders, SandboxPaymentProviders
from apps.safari.receipts import receipt_hook
from apps.safari.settings import SafariSettings
from documents import PdfRenderer
from flows.runtime import Runtime

__all__ = ["omari_provider", "omari_warnings", "safari_services"]

log = logging.getLogger("nyala.safari")


def _public_url(runtime: Runtime) -> str | None:
    """The host's public URL (``NYALA_PUBLIC_URL``), where Omari calls back."""
    url = getattr(runtime.settings, "public_url", None)
    return str(url) if url else None


def omari_warnings(
    settings: SafariSettings, *, public_url: str | None, sandbox: bool
) -> list[str]:
    """What an operator must know about mobile money at start-up (never a secret)."""
    if not settings.omari_configured:
        if bool(settings.omari_api_base) != (settings.omari_merchant_key is not None):
            return ["OMARI_API_BASE and OMARI_MERCHANT_KEY must be set together: Omari is off"]
        if not sandbox:
            return [
                "OMARI_API_BASE and OMARI_MERCHANT_KEY are not set: mobile money is off "
                "(the self-confirming sandbox Omari is never used with live WhatsApp)"
            ]
        return [
            "OMARI_API_BASE and OMARI_MERCHANT_KEY are not set: Omari payments run in "
            "sandbox (they confirm themselves; no money moves)"
        ]
    notes: list[str] = []
    if public_url is None:
        notes.append(
            "NYALA_PUBLIC_URL is not set: Omari could not call back, so mobile money is off"
        )
    if settings.omari_callback_secret is None:
        notes.append(
            f"OMARI_CALLBACK_SECRET is not set: POST {CALLBACK_PATH} answers 503 and "
            "mobile money is off"
        )
    return notes


def omari_provider(
    settings: SafariSettings,
    runtime: Runtime,
    http: aiohttp.ClientSession,
    hooks: ReceiptHooks,
) -> PaymentProvider | None:
    """The Omari provider the settings call for (``None``: mobile money is off).

    :class:`OmariClient` when ``OMARI_API_BASE``, ``OMARI_MERCHANT_KEY``,
    ``OMARI_CALLBACK_SECRET`` and ``NYALA_PUBLIC_URL`` are set; else :class:`SandboxOmari`,
    but only while replies are sandboxed too: with live WhatsApp a self-confirming
    provider would give bookings away.
    """
    public_url = _public_url(runtime)
    if settings.omari_configured:
        # Without a way back (URL) or a way to trust it (secret), customers would pay and
        # their bookings never be confirmed.
        if (
            public_url is None
            or settings.omari_callback_secret is None
            or settings.omari_merchant_key is None
        ):
            return None
        return OmariClient(
            http,
            base_url=str(settings.omari_api_base),
            merchant_key=settings.omari_merchant_key.get_secret_value(),
            callback_url=public_url.rstrip("/") + CALLBACK_PATH,
            timeout=settings.omari_timeout,
        )
    if not runtime.sandbox or bool(settings.omari_api_base) or settings.omari_merchant_key:
        return None  # live WhatsApp, or Omari half-configured: mobile money is off

    def woken(outcome: Outcome) -> None:
        if outcome.queued:
            runtime.outbox_woken()

    return SandboxOmari(runtime.db, sandbox=True, hooks=hooks, on_applied=woken)


async def safari_services(runtime: Runtime) -> AsyncIterator[None]:
    """Start the safari app's services (see the module's docstring); stop them after."""
    settings = SafariSettings()
    # A renderer the host provides already (shared by several runs) is used, not owned.
    shared = runtime.services.find(PdfRenderer)
    renderer = shared or runtime.services.provide(
        PdfRenderer, PdfRenderer(settings.render_workers)
    )
    documents = runtime.services.provide(
        SafariDocuments, SafariDocuments(renderer, runtime.app.timezone, settings.branding)
    )
    hooks = runtime.services.provide(ReceiptHooks, ReceiptHooks())
    hooks.register(receipt_hook(documents))
    secret = settings.omari_callback_secret
    runtime.services.provide(
        OmariCallback,
        OmariCallback(
            runtime.db,
            secret=secret.get_secret_value() if secret else None,
            sandbox=runtime.sandbox,
            hooks=hooks,
            on_replies=runtime.outbox_woken,
        ),
    )
    http = aiohttp.ClientSession()
    providers = runtime.services.provide(PaymentProviders, PaymentProviders())
    provider = omari_provider(settings, runtime, http, hooks)
    if provider is not None:
        providers.install(provider)
    if isinstance(provider, SandboxOmari):
        runtime.services.provide(SandboxOmari, provider)
    # Sandbox contacts never reach the live provider: they get a sandbox Omari of their own.
    sandbox_omari = (
        provider
        if isinstance(provider, SandboxOmari)
        else SandboxOmari(runtime.db, sandbox=True, hooks=hooks)
    )
    runtime.services.provide(SandboxPaymentProviders, SandboxPaymentProviders(sandbox_omari))
    # The sandbox Omari is what a sandbox wants: said quietly; anything else is a warning.
    level = logging.INFO if isinstance(provider, SandboxOmari) else logging.WARNING
    for note in omari_warnings(settings, public_url=_public_url(runtime), sandbox=runtime.sandbox):
        log.log(level, "%s", note)
    try:
        yield
    finally:
        await sandbox_omari.close()
        await http.close()
        if shared is None:
            await asyncio.to_thread(renderer.close)  # waits for the workers to exit
