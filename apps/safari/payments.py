"""Mobile-money payment providers: the interface the payment flow uses.

A provider initiates a payment (the customer approves it on their phone); the provider
later confirms or fails it through an authenticated callback, handled by
:func:`apps.safari.omari.apply_provider_event` (Omari) in its own transaction.

The providers of a running app live in its :class:`PaymentProviders` service (the app's
lifespan installs Omari's), never in a module.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRequest:
    """What the provider is asked to collect."""

    payment_id: int  # our payments.id (the merchant reference the callback returns)
    booking_reference: str
    amount: Decimal
    currency: str
    mobile_number: str  # E.164 digits with "+"


@dataclass(frozen=True, slots=True, kw_only=True)
class Initiated:
    """The provider accepted the request; the customer must now approve it."""

    provider_reference: str
    instructions: str  # what to tell the customer, e.g. "Approve the prompt on your phone"


class PaymentProviderError(Exception):
    """The provider refused or could not be reached; the message is for the customer."""


class PaymentOutcomeUnknownError(PaymentProviderError):
    """No answer in time: the provider may have accepted the request.

    The pending payment must be kept, so that a later callback finds it.
    """


class PaymentProvider(Protocol):
    """A mobile-money provider."""

    name: str

    async def initiate(self, request: PaymentRequest) -> Initiated:
        """Ask the provider to collect ``request``; raises :class:`PaymentProviderError`."""
        ...


UNAVAILABLE = "Mobile money is not available right now; please choose another way to pay."


class PaymentProviders:
    """The payment providers of a running app, by name (``runtime.services``)."""

    def __init__(self, *providers: PaymentProvider) -> None:
        self._providers: dict[str, PaymentProvider] = {}
        for provider in providers:
            self.install(provider)

    def __repr__(self) -> str:
        return f"PaymentProviders({', '.join(sorted(self._providers))})"

    def install(self, provider: PaymentProvider) -> PaymentProvider:
        """Install ``provider`` for its name (replacing any other of that name)."""
        self._providers[provider.name] = provider
        return provider

    def find(self, name: str) -> PaymentProvider | None:
        """The provider called ``name``, if installed."""
        return self._providers.get(name)

    def get(self, name: str) -> PaymentProvider:
        """The provider called ``name``.

        Raises:
            PaymentProviderError: none is installed (the message is for the customer).
        """
        provider = self._providers.get(name)
        if provider is None:
            raise PaymentProviderError(UNAVAILABLE)
        return provider


class SandboxPaymentProviders(PaymentProviders):
    """The providers a sandbox contact (the console's chat simulator) pays through, in
    ``runtime.services`` beside the live ones: they move no money, so a test chat on a
    live server can never charge a real wallet."""
