"""Greeting a lead: someone whose first message came from one of our click-to-WhatsApp ads.

An ad is usually for one tour or offer, and the person tapping it has a question about it,
not a menu to browse. So the greeting names the ad and offers the three things an ad lead
does next: book, ask for a quote, or talk to a person. The ad itself is kept on the
contact by the framework (``contacts.referral``), whatever we answer.
"""

from __future__ import annotations

from flows import FlowContext
from flows.messages import Buttons, Option

LEAD_OPTIONS = (
    Option("flow:booking_flow", "Book a tour"),
    Option("flow:enquiry_flow", "Get a quote"),
    Option("intent:human", "Talk to a person"),
)


def greet_lead(ctx: FlowContext) -> None:
    """Welcome an ad lead by the ad they tapped and offer the next step."""
    referral = ctx.message.referral if ctx.message is not None else None
    about = f" about *{referral.headline}*" if referral and referral.headline else ""
    ctx.reply(
        Buttons(
            f"Hello from Savannah Trails Safaris 🦁 Thanks for getting in touch{about}! "
            "Would you like to book, get a tailor-made quote, or ask one of our team?",
            LEAD_OPTIONS,
        )
    )
