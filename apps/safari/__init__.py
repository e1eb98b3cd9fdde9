"""The reference bot of a safari tour operator, written with Nyala's public API only.

It is one app among others: :data:`app` brings its own tables (:mod:`.models`) and
migration branch (``migrations/``, label ``safari``), its conversion goal (``booking``),
console pages (:mod:`.console`), commands (:mod:`.commands`), the Omari callback route
(:mod:`.omari_callback`), the services it runs with (:mod:`.lifespan`: the Omari
provider, the PDF renderer, the receipt hook) and demo data (:mod:`.demo`).

It registers its actions, queries, conditions and validators on the :class:`flows.App`
and keeps its conversations as flow files in ``flows/``, exactly as a customer's bot
would; one flow, ``payment_flow``, is a :class:`flows.Flow` class (see
:mod:`apps.safari.payment` for why). The callables live in one module per flow:

* :mod:`~apps.safari.booking`: ``booking_flow`` (choose a tour and date, name the
  travellers, book through :mod:`~apps.safari.operations`);
* :mod:`~apps.safari.payment`: ``payment_flow`` (Omari mobile money or bank transfer);
* :mod:`~apps.safari.id_upload`: ``id_upload_flow`` (the travellers' ID documents);
* :mod:`~apps.safari.customers`: what we know about the customer, ``update_details_flow``;
* :mod:`~apps.safari.support`: ``support_flow`` (hand the chat to a person);
* :mod:`~apps.safari.enquiry`: ``enquiry_flow`` (a tailor-made quote);
* :mod:`~apps.safari.receipt_flow`: ``receipt_flow`` (automatic receipts:
  :mod:`~apps.safari.receipts`);
* :mod:`~apps.safari.summaries`: pre-tour summaries, ID reminders, the *summary* intent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from analytics.goals import Goal
from apps.safari.commands import COMMANDS
from apps.safari.console import PAGES
from apps.safari.demo import load_demo
from apps.safari.leads import greet_lead
from apps.safari.lifespan import safari_services
from apps.safari.models import SafariBase
from apps.safari.omari_callback import callback_route
from flows import App, TemplateRef

HERE: Final = Path(__file__).parent

# Annotated: the flow modules import `app` while this module is still loading.
app: App = App(
    "Savannah Trails Safaris",
    flows_dir=HERE / "flows",
    greeting="Hello from Savannah Trails Safaris 🦁 What would you like to do?",
    help_text=(
        "I'm the Savannah Trails assistant. I can book you on a tour, take payments, "
        "collect your travellers' IDs, update your details, put together a safari quote, "
        "or get a person from our team to help."
    ),
    timezone="Africa/Harare",
    default_region="ZW",
    tables=SafariBase.metadata,
    migrations=HERE / "migrations",
    goals=[Goal("booking", description="a booking was made in the chat")],
    console=PAGES,
    commands=COMMANDS,
    routes=[callback_route],
    lifespans=[safari_services],
    demo_data=load_demo,
    on_referral=greet_lead,
    # What an agent's reply becomes once the customer's 24-hour window has closed.
    agent_template=TemplateRef(HERE / "documents" / "templates.yaml", "agent_follow_up"),
)

# The flow modules register their callables on `app`, so they are imported after it.
from apps.safari import (  # noqa: E402
    booking,
    customers,
    enquiry,
    id_upload,
    receipt_flow,
    summaries,
    support,
)
from apps.safari.payment import PaymentFlow  # noqa: E402

__all__ = [
    "app",
    "booking",
    "customers",
    "enquiry",
    "id_upload",
    "receipt_flow",
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

app.intent(
    "summary",
    ["summary", "my summary", "tour summary", "send my summary", "itinerary"],
    handler=summaries.send_summary_on_request,
    description="get the summary of your next tour",
)
# Tap-only intents: the quick-reply buttons of the summary templates (templates.yaml).
for _days in (7, 3, 1):
    app.intent(f"tour_summary_{_days}d", [], handler=summaries.summary_on_tap(_days))

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
