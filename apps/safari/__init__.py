"""The reference bot of a safari tour operator, written with Nyala's public API only.

It registers its actions, queries, conditions and validators on an :class:`flows.App`
and keeps its conversations as flow files in ``flows/``, exactly as a customer's bot
would; one flow, ``payment_flow``, is a :class:`flows.Flow` class (see
:mod:`flows.safari.payment` for why). The callables live in one module per flow:

* :mod:`~flows.safari.booking`: ``booking_flow`` (choose a tour and date, name the
  travellers, book through :mod:`~flows.safari.operations`);
* :mod:`~flows.safari.payment`: ``payment_flow`` (Omari mobile money or bank transfer);
* :mod:`~flows.safari.id_upload`: ``id_upload_flow`` (the travellers' ID documents);
* :mod:`~flows.safari.customers`: what we know about the customer, ``update_details_flow``;
* :mod:`~flows.safari.support`: ``support_flow`` (hand the chat to a person);
* :mod:`~flows.safari.enquiry`: ``enquiry_flow`` (a tailor-made quote);
* :mod:`~flows.safari.receipts`: ``receipt_flow`` and the automatic PDF receipts;
* :mod:`~flows.safari.summaries`: pre-tour summaries, ID reminders, the *summary* intent.
"""

from __future__ import annotations

from pathlib import Path

from flows import App

# Annotated: the flow modules import `app` while this module is still loading.
app: App = App(
    "Savannah Trails Safaris",
    flows_dir=Path(__file__).parent / "flows",
    greeting="Hello from Savannah Trails Safaris 🦁 What would you like to do?",
    help_text=(
        "I'm the Savannah Trails assistant. I can book you on a tour, take payments, "
        "collect your travellers' IDs, update your details, put together a safari quote, "
        "or get a person from our team to help."
    ),
    timezone="Africa/Harare",
    default_region="ZW",
)

# The flow modules register their callables on `app`, so they are imported after it.
from flows.safari import (  # noqa: E402
    booking,
    customers,
    enquiry,
    id_upload,
    receipts,
    summaries,
    support,
)
from flows.safari.payment import PaymentFlow  # noqa: E402

__all__ = [
    "app",
    "booking",
    "customers",
    "enquiry",
    "id_upload",
    "receipts",
    "summaries",
    "support",
]

app.add_flow(PaymentFlow)

# Every way to a person (typed "agent", the "Talk to a person" button offered after
# repeated invalid answers, the menu) goes through support_flow, which asks what it is
# about before handing over; this replaces the core intent of the same name.
app.intent(
    "human",
    [
        "support",
        "agent",
        "human",
        "person",
        "talk to a person",
        "speak to someone",
        "talk to someone",
        "real person",
    ],
    flow="support_flow",
    description="talk to a person from our team",
)

# The main menu, in this order (more than three rows: sent as a list).
MENU = (
    ("Book a tour", "booking_flow", "Choose a tour and date, and book your seats"),
    ("My bookings & payments", "payment_flow", "See what's due and pay by Omari or transfer"),
    ("Upload IDs", "id_upload_flow", "Send your travellers' passports or IDs"),
    ("Update my details", "update_details_flow", "Change your name, e-mail or phone number"),
    ("Talk to a person", "support_flow", "Someone from our team replies here"),
    ("Plan a safari", "enquiry_flow", "Tell us your dates and we'll send a tailor-made quote"),
)
for title, flow_name, description in MENU:
    app.add_menu_item(title, flow=flow_name, description=description)
