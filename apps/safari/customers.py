"""What the bot knows about the customer, and ``update_details_flow.yaml``'s callables.

The name and e-mail address are kept in two places: ``contact.attributes`` (what any flow
remembers about the person on WhatsApp) and the :class:`storage.Customer` row that
bookings belong to. The update flow writes both, so every flow sees the new value.
"""

from __future__ import annotations

from typing import Any

from apps.safari import app, operations
from apps.safari.common import known_email, known_name, linked_customer, remember, remembered
from flows import ActionError, FlowContext

DETAIL_LABELS = {"name": "name", "email": "e-mail address", "phone": "phone number"}


# shared by several flows ---------------------------------------------------------------


@app.condition()
def name_known(ctx: FlowContext) -> bool:
    """Whether we already know the customer's name."""
    return bool(remembered(ctx).get("name"))


@app.condition()
def email_known(ctx: FlowContext) -> bool:
    """Whether we already know the customer's e-mail address."""
    return bool(remembered(ctx).get("email"))


@app.query()
def customer_name(ctx: FlowContext) -> str:
    """The customer's first name, for friendly prompts."""
    name = ctx.data.get("name") or remembered(ctx).get("name") or ctx.contact.profile_name
    return str(name).split(" ")[0] if name else "there"


@app.action()
def remember_name(ctx: FlowContext) -> None:
    """Keep the name (``data["name"]``) for next time: later flows skip asking it."""
    remember(ctx, name=ctx.data["name"])


@app.action()
def remember_email(ctx: FlowContext) -> None:
    """Keep the e-mail address (``data["email"]``) for next time."""
    remember(ctx, email=ctx.data["email"])


@app.action()
async def load_customer_details(ctx: FlowContext) -> None:
    """Put the name and e-mail address we already know into the data (``skip_if: known``)."""
    name = await known_name(ctx)
    email = await known_email(ctx)
    if name:
        ctx.data["name"] = name
    if email:
        ctx.data["email"] = email


# update_details_flow ---------------------------------------------------------------------


@app.query()
async def current_details(ctx: FlowContext) -> str:
    """The name, e-mail address and phone number we have, one per line."""
    customer = await linked_customer(ctx)
    facts = remembered(ctx)
    name = await known_name(ctx)
    email = facts.get("email") or (customer.email if customer else None)
    phone = facts.get("phone") or (customer.phone if customer else None)
    if phone is None and ctx.contact.wa_id:
        phone = f"+{ctx.contact.wa_id}"
    return "\n".join(
        [
            f"• Name: {name or 'not given yet'}",
            f"• E-mail: {email or 'not given yet'}",
            f"• Phone: {phone or 'not given yet'}",
        ]
    )


@app.query()
def detail_label(ctx: FlowContext) -> str:
    """The detail being changed, in words: ``e-mail address``."""
    return DETAIL_LABELS.get(str(ctx.data.get("detail")), "details")


@app.action()
async def save_detail(ctx: FlowContext) -> None:
    """Save the new value of the chosen detail on the customer and the contact.

    Raises:
        ActionError: the detail is not one we keep (a stale answer).
    """
    detail = str(ctx.data.get("detail"))
    if detail not in DETAIL_LABELS:
        raise ActionError("Sorry, I can't change that. Please choose name, e-mail or phone.")
    value: Any = ctx.value
    new_value = str(value)
    customer = await linked_customer(ctx) or await operations.customer_for_contact(
        ctx.session, ctx.contact, name=await known_name(ctx)
    )
    if detail == "name":
        customer.name = new_value
    elif detail == "email":
        customer.email = new_value
    else:
        customer.phone = new_value
    remember(ctx, **{detail: new_value})
    ctx.data["new_value"] = new_value
