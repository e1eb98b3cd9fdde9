"""Contacts: the people who talk to the bot, keyed like WhatsApp keys them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, String, false, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, TimestampMixin, UTCDateTime
from storage.types import BigIntId, JSONDoc


class Contact(TimestampMixin, Base):
    """A WhatsApp user.

    ``wa_id`` is the phone number as digits (WhatsApp's ``wa_id``); ``user_id`` is the
    business-scoped user id that users with a username have instead of, or besides, a
    number. At least one of the two is set.
    """

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    wa_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    user_id: Mapped[str | None] = mapped_column(String(160), unique=True)
    profile_name: Mapped[str | None] = mapped_column(String(256))
    # Facts about the person that outlive one flow (e.g. a name already given).
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    last_inbound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # A sandbox contact is never a real WhatsApp user (the console's chat simulator talks
    # only as these): nothing is sent to it, no real payment is taken, and analytics
    # leave it out unless asked.
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The click-to-WhatsApp ad (Meta's ``referral`` object) that last brought them, and when.
    referral: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    referred_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    @property
    def display(self) -> str:
        """A label for logs and pages: the name when known, else the number or user id."""
        if self.profile_name:
            return self.profile_name
        if self.sandbox:  # never a phone number: no "+"
            return f"sandbox {self.wa_id}"
        return f"+{self.wa_id}" if self.wa_id else str(self.user_id)


async def get_or_create_contact(
    session: AsyncSession,
    *,
    wa_id: str | None,
    user_id: str | None = None,
    profile_name: str | None = None,
) -> Contact:
    """Find a contact by phone digits or business-scoped id, creating it when new.

    Callers hold a write transaction; on PostgreSQL a concurrent insert of the same
    contact is resolved by the unique keys (the caller retries the transaction).
    """
    if not wa_id and not user_id:
        raise ValueError("a contact needs a wa_id or a user_id")
    contact: Contact | None = None
    if wa_id:
        contact = await session.scalar(select(Contact).where(Contact.wa_id == wa_id))
    if contact is None and user_id:
        contact = await session.scalar(select(Contact).where(Contact.user_id == user_id))
    if contact is None:
        contact = Contact(wa_id=wa_id, user_id=user_id, profile_name=profile_name, attributes={})
        session.add(contact)
        await session.flush()
        return contact
    if wa_id and not contact.wa_id:
        contact.wa_id = wa_id
    if user_id and not contact.user_id:
        contact.user_id = user_id
    if profile_name and profile_name != contact.profile_name:
        contact.profile_name = profile_name
    return contact
