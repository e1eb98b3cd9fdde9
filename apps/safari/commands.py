"""The safari app's commands, listed by ``nyala --help`` beside the framework's.

* ``nyala send-tour-summaries --days-before N [--dry-run] [--send-now]``
* ``nyala send-id-reminders [--hours-before H] [--dry-run] [--send-now]``
* ``nyala receipt PAYMENT_ID [-o FILE]``
* ``nyala demo-bookings [--json]``: load (idempotently) and show the demo catalogue and bookings.

Each starts the app first (:func:`bot.cli.common.runtime_command`): the database opened
and migrated with the app's branch, the app's services running.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import click

from apps.safari.demo import describe, load_demo_data
from apps.safari.documents.receipts import issue_receipt
from apps.safari.documents.service import SafariDocuments
from apps.safari.models import ID_REMINDER, TOUR_SUMMARY
from apps.safari.summaries import (
    Outcome,
    Planned,
    deliver,
    due_id_reminder_bookings,
    due_summary_bookings,
    plan,
)
from bot.cli.common import runtime_command
from bot.settings import Settings
from bot.whatsapp.outbox import send_queued_now
from flows.runtime import Runtime
from storage import utcnow

__all__ = ["COMMANDS", "demo_bookings", "receipt", "send_id_reminders", "send_tour_summaries"]


def _print_plan(planned: list[Planned]) -> None:
    """The dry-run table: who would get what."""
    header = ("reference", "phone", "tour", "date", "when", "messages", "")
    rows = [
        (
            p.reference,
            p.phone,
            p.tour,
            p.date.isoformat(),
            p.when,
            ", ".join(p.messages) or "-",
            "already sent: skip"
            if p.already_sent
            else "no WhatsApp: skip"
            if not p.whatsapp
            else "would queue (24-hour window closed)"
            if p.messages == ("template",)
            else "would queue",
        )
        for p in planned
    ]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{len(planned)} booking{'s' if len(planned) != 1 else ''}; nothing was written")


async def _notify(
    runtime: Runtime, *, kind: str, key: str, amount: int, dry_run: bool, send_now: bool
) -> int:
    """Run a summaries or reminders command; returns the exit status (1 if any failed)."""
    db = runtime.db
    documents = runtime.services.get(SafariDocuments)
    tz = documents.tz
    now = utcnow()
    async with db.read() as session:
        if kind == TOUR_SUMMARY:
            ids = await due_summary_bookings(session, amount, now=now, tz=tz)
        else:
            ids = await due_id_reminder_bookings(session, amount, now=now, tz=tz)
    if dry_run:
        _print_plan(
            await plan(db, ids, kind=kind, key=key, amount=amount, documents=documents, now=now)
        )
        return 0
    counts = dict.fromkeys(Outcome, 0)

    async def one(booking_id: int) -> None:
        outcome = await deliver(
            db, booking_id, kind=kind, key=key, amount=amount, sandbox=runtime.sandbox,
            documents=documents, now=now,
        )  # fmt: skip
        counts[outcome] += 1

    if sys.stderr.isatty() and ids:
        with click.progressbar(ids, label=f"{kind} {key}", file=sys.stderr) as bar:
            for booking_id in bar:
                await one(booking_id)
    else:
        for booking_id in ids:
            await one(booking_id)
    sent = ""
    if send_now:
        if runtime.sandbox:
            click.echo("sandbox mode: the messages are stored, not sent to WhatsApp", err=True)
        else:
            settings: Settings = runtime.settings
            sent = f", sent {await send_queued_now(settings, db)} message(s)"
    click.echo(
        f"queued {counts[Outcome.QUEUED]}, as template {counts[Outcome.TEMPLATE]} "
        f"(24-hour window closed), skipped {counts[Outcome.SKIPPED]} (already sent), "
        f"no WhatsApp {counts[Outcome.NO_WHATSAPP]}, failed {counts[Outcome.FAILED]}{sent}"
    )
    return 1 if counts[Outcome.FAILED] else 0


@click.command("send-tour-summaries")
@click.option(
    "--days-before",
    type=click.IntRange(min=0),
    required=True,
    help="Send to confirmed bookings whose tour is exactly this many days away",
)
@click.option("--dry-run", is_flag=True, help="List who would get what; write nothing")
@click.option("--send-now", is_flag=True, help="Send the queued messages now (live mode)")
@runtime_command
async def send_tour_summaries(
    runtime: Runtime, days_before: int, dry_run: bool, send_now: bool
) -> int:
    """Queue pre-tour summaries (7: full, 3: final check, 1: last details), once each."""
    return await _notify(
        runtime,
        kind=TOUR_SUMMARY,
        key=f"{days_before}d",
        amount=days_before,
        dry_run=dry_run,
        send_now=send_now,
    )


@click.command("send-id-reminders")
@click.option(
    "--hours-before",
    type=click.IntRange(min=1),
    default=48,
    show_default=True,
    help="Remind bookings whose tour starts within this many hours",
)
@click.option("--dry-run", is_flag=True, help="List who would get what; write nothing")
@click.option("--send-now", is_flag=True, help="Send the queued messages now (live mode)")
@runtime_command
async def send_id_reminders(
    runtime: Runtime, hours_before: int, dry_run: bool, send_now: bool
) -> int:
    """Remind customers of travellers' missing IDs before the tour, once per booking."""
    return await _notify(
        runtime,
        kind=ID_REMINDER,
        key=f"{hours_before}h",
        amount=hours_before,
        dry_run=dry_run,
        send_now=send_now,
    )


@click.command()
@click.argument("payment_id", type=click.IntRange(min=1))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: Receipt_<number>.pdf in the current folder)",
)
@runtime_command
async def receipt(runtime: Runtime, payment_id: int, output: Path | None) -> None:
    """Write the PDF receipt of payment PAYMENT_ID (issued now if it has none yet)."""
    documents = runtime.services.get(SafariDocuments)
    async with runtime.db.transaction() as session:
        issued = await issue_receipt(session, payment_id, documents)
    target = output or Path.cwd() / issued.filename
    try:
        target.write_bytes(issued.pdf)
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror or exc}") from None
    state = "issued" if issued.created else "already issued"
    click.echo(f"wrote {target} (receipt {issued.number} for payment {payment_id}, {state})")


@click.command("demo-bookings")
@click.option("--json", "as_json", is_flag=True, help="Print the demo objects as JSON (only that)")
@runtime_command
async def demo_bookings(runtime: Runtime, as_json: bool) -> None:
    """Show the demo tours, bookings and payments (loading the demo data first if needed)."""
    data = await load_demo_data(runtime.db, tz=runtime.app.timezone)
    for line in [json.dumps(data.to_json(), indent=2)] if as_json else describe(data):
        click.echo(line)


# The name it had first, still accepted (hidden from help).
send_tour_summaries_alias = copy.copy(send_tour_summaries)
send_tour_summaries_alias.name = "send_tour_summaries"
send_tour_summaries_alias.hidden = True

COMMANDS = (
    send_tour_summaries,
    send_tour_summaries_alias,
    send_id_reminders,
    receipt,
    demo_bookings,
)
