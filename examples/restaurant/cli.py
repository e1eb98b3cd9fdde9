"""The restaurant's command: ``nyala --app examples/restaurant reservations --day 2026-12-24``."""

from __future__ import annotations

import datetime as dt

import click

from bot.cli.common import runtime_command
from flows.runtime import Runtime
from storage import utcnow

from .models import reservations_on


@click.command("reservations")
@click.option(
    "--day",
    type=click.DateTime(["%Y-%m-%d"]),
    help="The day to list, YYYY-MM-DD (default: today in the restaurant's timezone)",
)
@runtime_command
async def reservations_command(runtime: Runtime, day: dt.datetime | None) -> None:
    """Print one day's confirmed reservations, by sitting and table."""
    wanted = day.date() if day is not None else runtime.app.today(utcnow())
    async with runtime.db.read() as session:
        rows = await reservations_on(session, wanted)
    click.echo(f"{wanted:%A} {wanted.day} {wanted:%B %Y}: ", nl=False)
    if not rows:
        click.echo("no reservations")
        return
    guests = sum(r.party_size for r in rows)
    click.echo(f"{len(rows)} reservation{'s' if len(rows) != 1 else ''}, {guests} guests")
    for r in rows:
        reach = r.phone or r.email or "-"
        extra = "  set menu" if r.set_menu else ""
        click.echo(
            f"  {r.sitting}  {r.table_code:<3} {r.party_size:>2} × {r.guest_name:<24} "
            f"{reach:<24} {r.reference}{extra}"
        )
