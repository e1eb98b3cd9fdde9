"""Mobile-money payment providers: the interface the payment flow uses.

A provider initiates a payment (the customer approves it on their phone); the provider
later confirms or fails it through an authenticated callback, handled by
:func:`flows.safari.omari.apply_provider_event` (Omari) in its own transaction.
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


_providers: dict[str, PaymentProvider] = {}


def set_provider(provider: PaymentProvider) -> None:
    """Install the provider for its name (the server and chat install Omari's)."""
    _providers[provider.name] = provider


def get_provider(name: str) -> PaymentProvider:
    """The installed provider called ``name``."""
    try:
        return _providers[name]
    except KeyError:
        raise PaymentProviderError(
            "Mobile money is not available right now; please choose another way to pay."
        ) from None


def reset_providers() -> None:
    """Forget every installed provider (tests; a server installs its own at start)."""
    _providers.clear()
