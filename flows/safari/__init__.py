"""The reference bot of a safari tour operator, written with Nyala's public API only.

It registers its actions, queries and conditions on an :class:`flows.App` and keeps its
conversations as flow files in ``flows/``, exactly as a customer's bot would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows import App, FlowContext

app = App(
    "Savannah Trails Safaris",
    flows_dir=Path(__file__).parent / "flows",
    greeting="Hello from Savannah Trails Safaris 🦁 What would you like to do?",
    help_text=(
        "I'm the Savannah Trails assistant. I can put together a safari quote for you, "
        "or get a person from our team to help."
    ),
    timezone="Africa/Harare",
    default_region="ZW",
)


def _remembered(ctx: FlowContext) -> dict[str, Any]:
    return dict(ctx.contact.attributes or {})


def _remember(ctx: FlowContext, **facts: Any) -> None:
    # Assign a new dict so SQLAlchemy sees the change to the JSON column.
    ctx.contact.attributes = {**_remembered(ctx), **facts}


@app.condition()
def name_known(ctx: FlowContext) -> bool:
    """Whether we already know the customer's name."""
    return bool(_remembered(ctx).get("name"))


@app.condition()
def email_known(ctx: FlowContext) -> bool:
    """Whether we already know the customer's e-mail address."""
    return bool(_remembered(ctx).get("email"))


@app.query()
def customer_name(ctx: FlowContext) -> str:
    """The customer's first name, for friendly prompts."""
    name = ctx.data.get("name") or _remembered(ctx).get("name") or ctx.contact.profile_name
    return str(name).split(" ")[0] if name else "there"


@app.action()
def remember_name(ctx: FlowContext) -> None:
    """Keep the name for next time (later flows skip asking it)."""
    _remember(ctx, name=ctx.data["name"])


@app.action()
def remember_email(ctx: FlowContext) -> None:
    """Keep the e-mail address for next time."""
    _remember(ctx, email=ctx.data["email"])


INTERESTS = {
    "big_five": "Big Five game drive",
    "walking": "Walking safari",
    "falls": "Victoria Falls",
    "canoe": "Zambezi canoeing",
    "birding": "Birding",
}


@app.query()
def enquiry_summary(ctx: FlowContext) -> str:
    """The enquiry as the customer will confirm it."""
    data = ctx.data
    remembered = _remembered(ctx)
    return "\n".join(
        [
            "Here's your enquiry:",
            f"• Name: {data.get('name') or remembered.get('name', '')}",
            f"• Interest: {INTERESTS.get(data.get('interest', ''), data.get('interest', ''))}",
            f"• Travel date: {data.get('travel_date', '')}",
            f"• Travellers: {data.get('group_size', '')}",
            f"• E-mail: {data.get('email') or remembered.get('email', '')}",
            "",
            "Shall I send it to our safari planners?",
        ]
    )


@app.action()
def record_enquiry(ctx: FlowContext) -> None:
    """Keep the enquiry with the customer so the team can prepare a quote."""
    enquiries = list(_remembered(ctx).get("enquiries", []))
    enquiries.append(
        {
            "interest": ctx.data.get("interest"),
            "travel_date": ctx.data.get("travel_date"),
            "group_size": ctx.data.get("group_size"),
            "received_at": ctx.now.isoformat(),
        }
    )
    _remember(ctx, enquiries=enquiries)


app.add_menu_item("Talk to a person", intent="human", description="A planner replies here")
