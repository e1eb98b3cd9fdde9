"""``support_flow.yaml``'s callables: ask what it is about, then hand over to a person.

The app routes the core ``human`` intent (*agent*, *talk to a person*, the *Talk to a
person* button offered after repeated invalid answers) to ``support_flow``, so every way
to a person goes through it and the team always gets a reason.
"""

from __future__ import annotations

from collections.abc import Callable

from apps.safari import app
from flows import Accepted, FlowContext, Rejected, UserMessage
from flows import ValidationContext as Context
from flows.validators import normalize

Check = Callable[[UserMessage, Context], Accepted | Rejected]

SKIP = "skip"
_NOTHING = {"skip", "no", "none", "nothing", "-", "n/a"}


@app.validator()
def optional_topic(*, max_length: int = 500) -> Check:
    """Free text, or the *Skip* button (or "skip", "no"): saved as the text or ``""``."""

    def check(message: UserMessage, _ctx: Context) -> Accepted | Rejected:
        if message.kind == "reply" and message.reply_id == SKIP:
            return Accepted("", "skipped")
        text = " ".join((message.text or "").split())
        if message.kind not in ("text", "reply") or not text:
            return Rejected("Please type a few words about it, or tap *Skip*.")
        if normalize(text) in _NOTHING:
            return Accepted("", "skipped")
        if len(text) > max_length:
            return Rejected(
                f"Please keep it under {max_length} characters; our team will ask for more."
            )
        return Accepted(text, text)

    return check


@app.action()
def hand_off_to_team(ctx: FlowContext) -> None:
    """Hand the conversation to a person, with what it is about as the reason."""
    topic = str(ctx.data.get("topic") or "")
    ctx.hand_off(f"support request: {topic}" if topic else "support request (no topic given)")
