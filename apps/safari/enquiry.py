"""``enquiry_flow.yaml``'s callables: a tailor-made safari quote request."""

from __future__ import annotations

from apps.safari import app
from apps.safari.common import remember, remembered
from flows import FlowContext

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
    facts = remembered(ctx)
    return "\n".join(
        [
            "Here's your enquiry:",
            f"• Name: {data.get('name') or facts.get('name', '')}",
            f"• Interest: {INTERESTS.get(data.get('interest', ''), data.get('interest', ''))}",
            f"• Travel date: {data.get('travel_date', '')}",
            f"• Travellers: {data.get('group_size', '')}",
            f"• E-mail: {data.get('email') or facts.get('email', '')}",
            "",
            "Shall I send it to our safari planners?",
        ]
    )


@app.action()
def record_enquiry(ctx: FlowContext) -> None:
    """Keep the enquiry with the customer so the team can prepare a quote."""
    enquiries = list(remembered(ctx).get("enquiries", []))
    enquiries.append(
        {
            "interest": ctx.data.get("interest"),
            "travel_date": ctx.data.get("travel_date"),
            "group_size": ctx.data.get("group_size"),
            "received_at": ctx.now.isoformat(),
        }
    )
    remember(ctx, enquiries=enquiries)
