"""Paying a booking's balance: ``payment_flow`` and the actions, queries and validator it uses.

``payment_flow`` is written in Python, not as a flow file, because of one thing a file
cannot say: when ``booking_flow`` hands over with the way to pay already chosen
(``ctx.start_flow("payment_flow", booking_reference=..., method="omari")``), the skipped
``payment_method`` step must lead to a *different* step per method. A file's ``skip_if``
has a single target; here two eventless transitions from ``payment_method`` do it, each
recorded as ``skipped`` like any ``skip_if``.

Every payment starts as a pending :class:`storage.Payment` for the balance due. Omari
confirms it later through its callback (:mod:`apps.safari.omari`); a bank transfer's
proof waits for an operator's approval. After the proof, the customer may type the
reference their bank gave the transfer (or skip it): the operator sees it beside the
proof, confirms or corrects it when approving, and the receipt prints it.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from typing import ClassVar

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from statemachine import State

from apps.safari import app, operations
from apps.safari.common import BookingView, open_booking, open_bookings, stored_file_id
from apps.safari.models import Booking, Payment, PaymentMethod, PaymentStatus
from apps.safari.payments import (
    PaymentOutcomeUnknownError,
    PaymentProviderError,
    PaymentProviders,
    PaymentRequest,
    SandboxPaymentProviders,
)
from documents import format_money
from flows import (
    Accepted,
    ActionError,
    Expect,
    Flow,
    FlowContext,
    Option,
    Rejected,
    Step,
    UserMessage,
)
from flows import ValidationContext as Context
from flows.validators import echo, normalize, phone

Check = Callable[[UserMessage, Context], Accepted | Rejected]

OMARI = PaymentMethod.OMARI.value
BANK_TRANSFER = PaymentMethod.BANK_TRANSFER.value
THIS_NUMBER = "this_number"
THIS_NUMBER_TITLE = "Use this number"
PROOF_MAX_MB = 10
SKIP = "skip"
SKIP_WORDS = {"skip", "no", "none", "nothing", "-", "n/a", "don't have", "dont have"}
# ISO 20022 end-to-end ids and SWIFT references are at most 35 characters; what banks
# print is letters, digits and a few separators, in at most a few groups.
BANK_REFERENCE_MAX = 35
BANK_REFERENCE_GROUPS = 3
_BANK_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./:#-]*")
# The operator's account (fictional, like everything about Savannah Trails).
BANK_ACCOUNT = (
    "Savannah Trails Safaris (Pvt) Ltd\n"
    "CBZ Bank, Victoria Falls branch\n"
    "USD account 01234567890123"
)


async def create_pending_payment(
    session: AsyncSession,
    booking: Booking,
    *,
    method: PaymentMethod,
    amount: Decimal,
    mobile_number: str | None = None,
    proof_media_id: str | None = None,
    proof_file_id: int | None = None,
) -> Payment:
    """Record money the customer is about to pay (Omari) or says they paid (a transfer).

    The payment stays ``pending`` until Omari confirms it or an operator approves it; only
    then does it count towards the booking's balance.

    Args:
        session: the caller's transaction.
        booking: the booking paid for.
        method: how it is paid.
        amount: the amount, in the booking's currency.
        mobile_number: the Omari wallet's number (E.164).
        proof_media_id: the media id of the proof of payment (a bank transfer).
        proof_file_id: the stored file of that proof, when it is stored already.

    Returns:
        The new payment, flushed (it has its id).
    """
    payment = Payment(
        booking_id=booking.id,
        amount=amount,
        currency=booking.currency,
        method=method,
        status=PaymentStatus.PENDING,
        mobile_number=mobile_number,
        proof_media_id=proof_media_id,
        proof_file_id=proof_file_id,
    )
    session.add(payment)
    await session.flush()
    return payment


async def _pending_payments(ctx: FlowContext, booking: Booking) -> int:
    count = await ctx.session.scalar(
        select(func.count())
        .select_from(Payment)
        .where(Payment.booking_id == booking.id, Payment.status == PaymentStatus.PENDING)
    )
    return int(count or 0)


async def payable(
    ctx: FlowContext, reference: object
) -> tuple[BookingView, operations.Balance] | None:
    """The contact's open booking ``reference`` with its balance, if something is due."""
    found = await open_booking(ctx, reference)
    if found is None:
        return None
    owed = await operations.balance(ctx.session, found.booking)
    return (found, owed) if owed.due > 0 else None


async def _payable_or_refuse(ctx: FlowContext) -> tuple[BookingView, operations.Balance]:
    reference = ctx.data.get("booking_reference")
    result = await payable(ctx, reference)
    if result is None:
        raise ActionError(
            f"Booking {reference} has nothing left to pay. Type *pay* to see your bookings."
        )
    return result


# queries ------------------------------------------------------------------------------------


@app.query()
async def bookings_with_balance(ctx: FlowContext) -> list[Option]:
    """The contact's upcoming bookings with a balance due, soonest first."""
    rows: list[Option] = []
    for view in await open_bookings(ctx):
        owed = await operations.balance(ctx.session, view.booking)
        if owed.due <= 0:
            continue
        pending = await _pending_payments(ctx, view.booking)
        note = " · payment pending" if pending else ""
        rows.append(
            Option(
                view.booking.reference,
                view.booking.reference,
                f"{format_money(owed.due, owed.currency)} due{note} · {view.row_label}",
            )
        )
    return rows[:10]


@app.query()
async def nothing_due(ctx: FlowContext) -> str:
    """What to say when no booking has a balance due: the bookings there are, if any."""
    views = await open_bookings(ctx)
    if not views:
        return "You don't have any upcoming bookings with us. Type *book* to book a tour."
    lines = ["Good news: nothing is due on your bookings 🎉"]
    for view in views:
        lines.append(f"• {view.booking.reference}: {view.label}")
    lines += ["", "Type *menu* if there's anything else."]
    return "\n".join(lines)


@app.query()
async def amount_due(ctx: FlowContext) -> str:
    """The balance due on the booking in ``data["booking_reference"]``: ``USD 120.00``."""
    found = await open_booking(ctx, ctx.data.get("booking_reference"))
    if found is None:
        return ""
    owed = await operations.balance(ctx.session, found.booking)
    return format_money(owed.due, owed.currency)


@app.query()
async def booking_label(ctx: FlowContext) -> str:
    """The tour and date of the booking in ``data["booking_reference"]``."""
    found = await open_booking(ctx, ctx.data.get("booking_reference"))
    return found.label if found is not None else ""


# validators ---------------------------------------------------------------------------------


@app.validator()
def mobile_number(*, region: str | None = None) -> Check:
    """A mobile number: the *Use this number* button (the WhatsApp number, which an
    ``enter`` action put in ``data["whatsapp_number"]``) or one typed; saved as E.164."""
    typed = phone(region=region)

    def check(message: UserMessage, ctx: Context) -> Accepted | Rejected:
        tapped = message.kind == "reply" and message.reply_id == THIS_NUMBER
        # Like any option, the button may also be typed: its title or its number.
        if tapped or normalize(message.text or "") in ("1", normalize(THIS_NUMBER_TITLE)):
            number = ctx.data.get("whatsapp_number")
            if not number:
                return Rejected("Please type the mobile number, e.g. 077 123 4567.")
            return Accepted(str(number), str(number))
        result = typed(message, ctx)
        if isinstance(result, Rejected):
            return result
        kind = phonenumbers.number_type(phonenumbers.parse(result.value))
        if kind not in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            return Rejected(
                "That looks like a landline. Please send the mobile number your wallet is on."
            )
        return result

    return check


def _has_control(text: str) -> bool:
    """Whether ``text`` holds a control or format character other than line breaks and
    tabs (a bidi override would print the reference backwards on the receipt)."""
    return any(
        unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs") and c not in "\t\n\r" for c in text
    )


@app.validator()
def bank_reference(*, max_length: int = BANK_REFERENCE_MAX) -> Check:
    """The reference a bank gave a transfer, or the *Skip* button (or "skip", "no").

    Saved trimmed, inner spaces collapsed, as ``""`` when skipped. Only ASCII letters,
    digits and ``. / : # -`` in at most three groups, with a digit: what a bank prints,
    what the receipt's font can always draw, and no WhatsApp markup (``_``, ``*``) when
    it is echoed in bold. What the customer typed is quoted back only as a short piece.
    """

    def check(message: UserMessage, _ctx: Context) -> Accepted | Rejected:
        if message.kind == "reply" and message.reply_id == SKIP:
            return Accepted("", "skipped")
        if message.kind not in ("text", "reply") or not (message.text or "").strip():
            return Rejected(
                "Please type the reference as text, or tap *Skip*.",
                code="bank_reference.not_text",
            )
        raw = message.text or ""
        if _has_control(raw):
            return Rejected(
                "That reference has characters a bank doesn't use. Please type it as it "
                "appears on your bank's confirmation, or tap *Skip*.",
                code="bank_reference.control",
            )
        typed = " ".join(unicodedata.normalize("NFKC", raw).split())
        if normalize(typed) in SKIP_WORDS:
            return Accepted("", "skipped")
        if len(typed) > max_length:
            return Rejected(
                f"That's {len(typed)} characters; a bank reference has at most {max_length}. "
                "Please type just the reference, or tap *Skip*.",
                code="bank_reference.too_long",
            )
        if (
            not _BANK_REFERENCE.fullmatch(typed)
            or not any(c.isdigit() for c in typed)
            or len(typed.split()) > BANK_REFERENCE_GROUPS
        ):
            return Rejected(
                f"“{echo(typed)}” doesn't look like a bank reference (letters and digits, "
                "like FT24031ABC7). Please type it as on your bank's confirmation, or tap "
                "*Skip*.",
                code="bank_reference.invalid",
            )
        return Accepted(typed, typed)

    return check


# actions ------------------------------------------------------------------------------------


@app.action("check_booking_due")
async def check_booking_still_due(ctx: FlowContext) -> None:
    """Refuse a booking from the list that was paid in full since the list was shown.

    Raises:
        ActionError: nothing is due on it any more.
    """
    await _payable_or_refuse(ctx)


def _providers(ctx: FlowContext) -> PaymentProviders:
    """The running app's payment providers (none installed: mobile money is off).

    A sandbox contact (the console's simulator) only ever gets the sandbox ones: it is
    never a real customer, so no real wallet may be charged for it.
    """
    if ctx.contact.sandbox:
        return ctx.services.find(SandboxPaymentProviders) or SandboxPaymentProviders()
    return ctx.services.find(PaymentProviders) or PaymentProviders()


@app.action("initiate_omari")
async def initiate_omari_payment(ctx: FlowContext) -> None:
    """Ask Omari to collect the balance due from ``data["omari_number"]``.

    A pending payment is recorded first (its id is the merchant reference Omari's callback
    returns); the provider's reference and instructions are kept.

    Raises:
        ActionError: nothing is due, or Omari refused or could not be reached (its message
            is for the customer); the pending payment is rolled back with the attempt.
    """
    view, owed = await _payable_or_refuse(ctx)
    number = str(ctx.data["omari_number"])
    payment = await create_pending_payment(
        ctx.session, view.booking, method=PaymentMethod.OMARI, amount=owed.due,
        mobile_number=number,
    )  # fmt: skip
    try:
        provider = _providers(ctx).get(OMARI)
        initiated = await provider.initiate(
            PaymentRequest(
                payment_id=payment.id,
                booking_reference=view.booking.reference,
                amount=owed.due,
                currency=owed.currency,
                mobile_number=number,
            )
        )
    except PaymentOutcomeUnknownError:
        # Omari may have accepted it: keep the pending payment so its callback finds it.
        ctx.data.update(
            payment_id=payment.id,
            payment_amount=format_money(owed.due, owed.currency),
            omari_instructions=(
                "Omari is slow to answer right now. If a payment prompt reaches your phone, "
                "approve it and I'll confirm here; if nothing comes, type *pay* to try again."
            ),
        )
        return
    except PaymentProviderError as exc:
        raise ActionError(str(exc)) from exc
    payment.provider_reference = initiated.provider_reference
    ctx.data.update(
        payment_id=payment.id,
        payment_amount=format_money(owed.due, owed.currency),
        omari_instructions=initiated.instructions,
    )


@app.action("record_bank_transfer")
async def record_bank_transfer_payment(ctx: FlowContext) -> None:
    """Record the uploaded proof of a bank transfer as a pending payment of the balance due.

    Raises:
        ActionError: nothing is due on the booking any more.
    """
    view, owed = await _payable_or_refuse(ctx)
    media_id = str(ctx.data["proof_of_payment"]["id"])
    payment = await create_pending_payment(
        ctx.session, view.booking, method=PaymentMethod.BANK_TRANSFER, amount=owed.due,
        proof_media_id=media_id, proof_file_id=await stored_file_id(ctx, media_id),
    )  # fmt: skip
    ctx.data.update(payment_id=payment.id, payment_amount=format_money(owed.due, owed.currency))


@app.action("keep_bank_reference")
async def keep_bank_reference(ctx: FlowContext) -> None:
    """Keep the bank reference the customer typed on their transfer's pending payment.

    Kept whatever the payment's status by now (an operator may have approved it in the
    meantime): it stays the customer's claim, apart from the reference the operator
    confirmed.
    """
    typed = str(ctx.data.get("bank_reference") or "")
    payment = await ctx.session.get(Payment, ctx.data.get("payment_id"))
    if typed and payment is not None:
        payment.customer_reference = typed


@app.query()
async def bank_reference_noted(ctx: FlowContext) -> str:
    """The closing words after the reference question: the reference noted, or none."""
    typed = str(ctx.data.get("bank_reference") or "")
    if typed:
        return f"Thanks, I've noted the reference *{typed}* with your payment."
    return "No problem, our team will find your transfer without it."


# the flow -------------------------------------------------------------------------------------


class PaymentFlow(Flow):
    """Pay the balance of a booking by Omari mobile money or bank transfer."""

    flow_name = "payment_flow"
    description = "See what's due on your bookings and pay it"
    triggers = ("pay", "pay balance", "pay my balance", "payment", "my bookings")
    timeout = dt.timedelta(minutes=30)

    choose_booking = State(initial=True)
    payment_method = State()
    omari_number = State()
    proof_of_payment = State()
    bank_reference = State()
    omari_requested = State(final=True)
    transfer_submitted = State(final=True)

    # Skips (eventless transitions), taken only on arrival at the step: what the flow
    # was started with is not asked again.
    choose_booking.to(payment_method, cond=["arrived_at_choose_booking", "booking_given"])
    payment_method.to(omari_number, cond=["arrived_at_payment_method", "paying_by_omari"])
    payment_method.to(
        proof_of_payment, cond=["arrived_at_payment_method", "paying_by_bank_transfer"]
    )

    answer = (
        choose_booking.to(payment_method, on="check_booking_due")
        | payment_method.to(omari_number, cond="paying_by_omari")
        | payment_method.to(proof_of_payment, cond="paying_by_bank_transfer")
        | omari_number.to(omari_requested, on="initiate_omari")
        | proof_of_payment.to(bank_reference, on="record_bank_transfer")
        | bank_reference.to(transfer_submitted, on="keep_reference")
    )

    steps: ClassVar[dict[str, Step]] = {
        "choose_booking": Step(
            name="choose_booking",
            ask="Which booking would you like to pay for?",
            list_button="Bookings",
            choices_from="bookings_with_balance",
            empty="{nothing_due}",
            save="booking_reference",
        ),
        "payment_method": Step(
            name="payment_method",
            ask=(
                "Booking *{booking_reference}* ({booking_label}): {amount_due} is due. "
                "How would you like to pay?"
            ),
            buttons=(Option(OMARI, "Omari mobile money"), Option(BANK_TRANSFER, "Bank transfer")),
            save="method",
        ),
        "omari_number": Step(
            name="omari_number",
            ask=(
                "Which mobile number is your Omari wallet on? Tap *Use this number* for "
                "{whatsapp_number}, or type another number."
            ),
            buttons=(Option(THIS_NUMBER, THIS_NUMBER_TITLE),),
            expect=Expect("mobile_number"),
            save="omari_number",
        ),
        "proof_of_payment": Step(
            name="proof_of_payment",
            ask=(
                "Please transfer {amount_due} to:\n"
                f"{BANK_ACCOUNT}\n"
                "Reference: *{booking_reference}*\n\n"
                f"Then send a photo or PDF of the proof of payment here (up to {PROOF_MAX_MB} MB)."
            ),
            expect=Expect("media", {"max_mb": PROOF_MAX_MB}),
            save="proof_of_payment",
        ),
        # The proof is a pending payment already: a customer who never answers this
        # has still sent it, and is told so first.
        "bank_reference": Step(
            name="bank_reference",
            say=(
                "Thank you! Your proof of payment of {payment_amount} for *{booking_reference}* "
                "is now pending approval by our team. We'll confirm here once it's checked, "
                "usually within one working day.",
            ),
            ask=(
                "If your bank's confirmation shows a transaction reference (like "
                "FT24031ABC7), type it so we find your payment faster, or tap *Skip*."
            ),
            buttons=(Option(SKIP, "Skip"),),
            expect=Expect("bank_reference"),
            save="bank_reference",
        ),
        "omari_requested": Step(name="omari_requested", say=("{omari_instructions}",)),
        "transfer_submitted": Step(
            name="transfer_submitted",
            say=("{bank_reference_noted} Type *menu* if there's anything else.",),
        ),
    }

    # guards
    def arrived_at_choose_booking(self) -> bool:
        """Whether the flow reached ``choose_booking`` with this message (not its answer)."""
        return "choose_booking" in self.model.entered

    def arrived_at_payment_method(self) -> bool:
        """Whether the flow reached ``payment_method`` with this message (not its answer)."""
        return "payment_method" in self.model.entered

    async def booking_given(self) -> bool:
        """Whether the flow was started with one of the contact's bookings that has a
        balance due."""
        return await payable(self.ctx, self.model.data.get("booking_reference")) is not None

    def paying_by_omari(self) -> bool:
        """Whether the customer pays by Omari mobile money."""
        return bool(self.model.data.get("method") == OMARI)

    def paying_by_bank_transfer(self) -> bool:
        """Whether the customer pays by bank transfer."""
        return bool(self.model.data.get("method") == BANK_TRANSFER)

    # actions
    def on_enter_omari_number(self) -> None:
        """Offer the WhatsApp number as the wallet's number."""
        wa_id = self.ctx.contact.wa_id
        self.model.data["whatsapp_number"] = f"+{wa_id}" if wa_id else None

    async def check_booking_due(self) -> None:
        """The booking chosen from the list still has a balance due."""
        await check_booking_still_due(self.ctx)

    async def initiate_omari(self) -> None:
        """Ask Omari to collect the balance."""
        await initiate_omari_payment(self.ctx)

    async def record_bank_transfer(self) -> None:
        """Keep the proof of payment as a pending payment."""
        await record_bank_transfer_payment(self.ctx)

    async def keep_reference(self) -> None:
        """Keep the bank reference the customer typed (if any) on that payment."""
        await keep_bank_reference(self.ctx)
