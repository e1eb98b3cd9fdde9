"""The ``nyala`` command line (click).

Every command that touches the database applies pending migrations first, so each one
works on a fresh database. Bad arguments give one line and exit status 2; an unreachable
database gives one line (URL without password) and exit status 1; never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any, TypeVar

import click

from bot.apps import load_app
from bot.cli.analytics import report, snapshot
from bot.cli.common import load_app_from as _app
from bot.cli.common import load_settings as _settings
from bot.cli.common import phone as _phone
from bot.cli.common import run as _run
from bot.cli.common import with_db as _with_db
from bot.cli.operators import operator
from bot.settings import Settings
from flows import App, Engine, FlowError, load_flow_file
from storage import Database, NyalaError

T = TypeVar("T")
DEFAULT_CHAT_PHONE = "263771234567"
log = logging.getLogger("nyala.bot")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--app",
    "app_target",
    metavar="APP",
    help="the bot to run: module:attr, module, or a folder with app.py "
    "(default: $NYALA_APP or the built-in safari bot)",
)
@click.version_option(package_name="nyala")
@click.pass_context
def cli(ctx: click.Context, app_target: str | None) -> None:
    """Nyala: WhatsApp bots whose conversations are state machines."""
    settings = _settings()
    ctx.obj = {"settings": settings, "app": app_target or settings.app}


@cli.command("migrate")
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Apply pending database migrations (and nothing else)."""
    settings: Settings = ctx.obj["settings"]

    async def work(db: Database) -> None:
        click.echo(f"database {db.display_url} is up to date")

    _run(_with_db(settings, work))


@cli.command()
@click.option(
    "--as",
    "phone",
    callback=_phone,
    metavar="PHONE",
    help=f"chat as this number, international form (default +{DEFAULT_CHAT_PHONE})",
)
@click.option(
    "--files",
    "files_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("nyala-chat-files"),
    show_default=True,
    help="where documents the bot sends are saved",
)
@click.pass_context
def chat(ctx: click.Context, phone: str | None, files_dir: Path) -> None:
    """Talk to the bot in the terminal (sandbox: nothing is ever sent to WhatsApp)."""
    from bot.cli.chat import TerminalChat

    settings: Settings = ctx.obj["settings"]
    app = _app(ctx)

    async def work(db: Database) -> None:
        await _autoload_demo(db, app)
        engine = Engine(db, app, sandbox=True)
        await TerminalChat(engine, phone or DEFAULT_CHAT_PHONE, files_dir=files_dir).run()

    _run(_with_db(settings, work))


async def _autoload_demo(db: Database, app: App) -> None:
    """Load the safari demo data into a fresh SQLite database, so a first run just works.

    Only for the built-in safari bot on SQLite, and only when there are no tours at all.
    """
    from sqlalchemy import select

    import flows.safari
    from flows.safari.demo import load_demo_data
    from storage import Tour

    if not db.is_sqlite or app is not flows.safari.app:
        return
    async with db.read() as session:
        if await session.scalar(select(Tour.id).limit(1)) is not None:
            return
    data = await load_demo_data(db, tz=app.timezone)
    click.echo(
        f"loaded demo data: {len(data.tours)} tours, {len(data.bookings)} bookings "
        "(nyala demo-data shows them)",
        err=True,
    )


def _serve_process(settings_env: dict[str, str], app_target: str, host: str, port: int) -> None:
    """One server process (also the body of each ``--workers`` child)."""
    import os

    from aiohttp import web

    from bot.server import create_app

    os.environ.update(settings_env)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl ..." is noise
    app = load_app(app_target)
    web.run_app(
        create_app(settings, app),
        host=host,
        port=port,
        print=None,
        reuse_port=True,
        access_log=None,
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="server processes (PostgreSQL only)",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int) -> None:
    """Run the WhatsApp webhook server (sandbox mode without WHATSAPP_ACCESS_TOKEN)."""
    import multiprocessing

    from bot.server import startup_warnings

    settings: Settings = ctx.obj["settings"]
    app = _app(ctx)
    if workers > 1 and Database(settings.database_url).is_sqlite:
        raise click.UsageError(
            "--workers > 1 needs PostgreSQL: SQLite allows one writing process "
            "(set DATABASE_URL=postgresql://...)"
        )

    async def check(db: Database) -> None:
        await _autoload_demo(db, app)
        from bot.console.accounts import ensure_first_admin, first_admin_notice

        if first := await ensure_first_admin(db):  # printed once to the terminal, not logged
            click.echo(first_admin_notice(first, f"http://{host}:{port}/console"), err=True)

    _run(_with_db(settings, check))
    for note in startup_warnings(settings):
        click.echo(f"note: {note}", err=True)
    processes = f"{workers} process{'es' if workers > 1 else ''}"
    database = Database(settings.database_url).display_url
    click.echo(
        f"nyala: serving {app.name} on http://{host}:{port} ({processes}, database {database})",
        err=True,
    )
    env = {"NYALA_SEND_RATE": str(settings.send_rate / workers)}
    target: str = ctx.obj["app"]
    if workers == 1:
        _serve_process(env, target, host, port)
        return
    spawn = multiprocessing.get_context("spawn")
    children = [
        spawn.Process(target=_serve_process, args=(env, target, host, port), daemon=False)
        for _ in range(workers)
    ]
    for child in children:
        child.start()

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # a supervisor's stop reaches every worker
    try:
        for child in children:
            child.join()
    except KeyboardInterrupt:
        for child in children:
            child.terminate()
        for child in children:
            child.join()


@cli.command("demo-data")
@click.option("--json", "as_json", is_flag=True, help="print the demo objects as JSON (only that)")
@click.pass_context
def demo_data(ctx: click.Context, as_json: bool) -> None:
    """Load the safari demo tours, departures and bookings (idempotent) and show them."""
    import json

    from flows.safari import app as safari_app
    from flows.safari.demo import DemoData, describe, load_demo_data

    settings: Settings = ctx.obj["settings"]

    async def work(db: Database) -> DemoData:
        return await load_demo_data(db, tz=safari_app.timezone)

    data = _run(_with_db(settings, work))
    for line in [json.dumps(data.to_json(), indent=2)] if as_json else describe(data):
        click.echo(line)


@cli.command()
@click.argument("payment_id", type=click.IntRange(min=1))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="file to write (default: Receipt_<number>.pdf in the current folder)",
)
@click.pass_context
def receipt(ctx: click.Context, payment_id: int, output: Path | None) -> None:
    """Write the PDF receipt of payment PAYMENT_ID (issued now if it has none yet)."""
    from documents.receipts import IssuedReceipt, issue_receipt

    settings: Settings = ctx.obj["settings"]
    app = _app(ctx)

    async def work(db: Database) -> IssuedReceipt:
        async with db.transaction() as session:
            return await issue_receipt(session, payment_id, tz=app.timezone)

    issued = _run(_with_db(settings, work))
    target = output or Path.cwd() / issued.filename
    try:
        target.write_bytes(issued.pdf)
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror or exc}") from None
    state = "issued" if issued.created else "already issued"
    click.echo(f"wrote {target} (receipt {issued.number} for payment {payment_id}, {state})")


@cli.command("fake-graph")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8099, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="WHATSAPP_ACCESS_TOKEN",
    required=True,
    help="the access token clients must send (default: $WHATSAPP_ACCESS_TOKEN)",
)
def fake_graph(host: str, port: int, token: str) -> None:
    """Run a local fake of the Graph API that validates every request against Meta's spec."""
    from bot.fake_graph import run_fake_graph

    def ready(url: str) -> None:
        click.echo(f"fake Graph API listening at {url} (set WHATSAPP_API_BASE={url})", err=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_fake_graph(host, port, token, on_ready=ready))


@cli.command()
@click.pass_context
def sweep(ctx: click.Context) -> None:
    """Mark sessions idle past their flow's timeout as abandoned."""
    from analytics import abandon_idle_sessions

    settings: Settings = ctx.obj["settings"]
    app = _app(ctx)

    async def work(db: Database) -> int:
        timeouts = {name: spec.timeout for name, spec in app.flows.items()}
        return await abandon_idle_sessions(db, timeouts)

    count = _run(_with_db(settings, work))
    click.echo(f"abandoned {count} idle session{'s' if count != 1 else ''}")


def _print_plan(planned: list[Any]) -> None:
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


async def _drain_outbox(settings: Settings, db: Database) -> int:
    """Send every due queued row with the outbox (live mode); returns how many were sent."""
    import aiohttp

    from bot.whatsapp.graph import GraphClient
    from bot.metrics import Metrics
    from bot.whatsapp.outbox import Outbox

    assert settings.whatsapp_access_token is not None
    total = 0
    async with aiohttp.ClientSession() as http:
        client = GraphClient(
            http,
            base_url=settings.whatsapp_api_base,
            access_token=settings.whatsapp_access_token.get_secret_value(),
            phone_number_id=str(settings.whatsapp_phone_number_id),
            timeout=settings.graph_timeout,
        )
        outbox = Outbox(db, client, Metrics(), rate=settings.send_rate)
        while sent := await outbox.send_due():
            total += sent
    return total


def _notify(
    ctx: click.Context, *, kind: str, key: str, amount: int, dry_run: bool, send_now: bool
) -> int:
    """Run a summaries or reminders command; returns the exit status (1 if any failed)."""
    from flows.safari import app as safari
    from flows.safari.summaries import (
        Outcome,
        deliver,
        due_id_reminder_bookings,
        due_summary_bookings,
        plan,
    )
    from storage import TOUR_SUMMARY, utcnow

    settings: Settings = ctx.obj["settings"]
    tz = safari.timezone
    now = utcnow()

    async def work(db: Database) -> int:
        async with db.read() as session:
            if kind == TOUR_SUMMARY:
                ids = await due_summary_bookings(session, amount, now=now, tz=tz)
            else:
                ids = await due_id_reminder_bookings(session, amount, now=now, tz=tz)
        if dry_run:
            _print_plan(await plan(db, ids, kind=kind, key=key, amount=amount, tz=tz, now=now))
            return 0
        counts = dict.fromkeys(Outcome, 0)

        async def one(booking_id: int) -> None:
            outcome = await deliver(
                db,
                booking_id,
                kind=kind,
                key=key,
                amount=amount,
                sandbox=settings.sandbox,
                now=now,
                tz=tz,
            )
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
            if settings.sandbox:
                click.echo("sandbox mode: the messages are stored, not sent to WhatsApp", err=True)
            else:
                sent = f", sent {await _drain_outbox(settings, db)} message(s)"
        click.echo(
            f"queued {counts[Outcome.QUEUED]}, as template {counts[Outcome.TEMPLATE]} "
            f"(24-hour window closed), skipped {counts[Outcome.SKIPPED]} (already sent), "
            f"no WhatsApp {counts[Outcome.NO_WHATSAPP]}, failed {counts[Outcome.FAILED]}{sent}"
        )
        return 1 if counts[Outcome.FAILED] else 0

    return _run(_with_db(settings, work))


@cli.command("send-tour-summaries")
@click.option(
    "--days-before",
    type=click.IntRange(min=0),
    required=True,
    help="send to confirmed bookings whose tour is exactly this many days away",
)
@click.option("--dry-run", is_flag=True, help="list who would get what; write nothing")
@click.option("--send-now", is_flag=True, help="send the queued messages now (live mode)")
@click.pass_context
def send_tour_summaries(
    ctx: click.Context, days_before: int, dry_run: bool, send_now: bool
) -> int:
    """Queue pre-tour summaries (7: full, 3: final check, 1: last details), once each."""
    from storage import TOUR_SUMMARY

    return _notify(
        ctx,
        kind=TOUR_SUMMARY,
        key=f"{days_before}d",
        amount=days_before,
        dry_run=dry_run,
        send_now=send_now,
    )


cli.add_command(send_tour_summaries, "send_tour_summaries")


@cli.command("send-id-reminders")
@click.option(
    "--hours-before",
    type=click.IntRange(min=1),
    default=48,
    show_default=True,
    help="remind bookings whose tour starts within this many hours",
)
@click.option("--dry-run", is_flag=True, help="list who would get what; write nothing")
@click.option("--send-now", is_flag=True, help="send the queued messages now (live mode)")
@click.pass_context
def send_id_reminders(ctx: click.Context, hours_before: int, dry_run: bool, send_now: bool) -> int:
    """Remind customers of travellers' missing IDs before the tour, once per booking."""
    from storage import ID_REMINDER

    return _notify(
        ctx,
        kind=ID_REMINDER,
        key=f"{hours_before}h",
        amount=hours_before,
        dry_run=dry_run,
        send_now=send_now,
    )


@cli.group()
def flows() -> None:
    """List, validate and draw flows."""


@flows.command("list")
@click.pass_context
def flows_list(ctx: click.Context) -> None:
    """List the app's flows with their steps."""
    app = _app(ctx.find_root())
    for name, spec in sorted(app.flows.items()):
        origin = str(spec.source) if spec.source else "python class"
        click.echo(f"{name}  ({len(spec.steps)} steps, version {spec.version}, {origin})")
        if spec.description:
            click.echo(f"    {spec.description}")
        click.echo(f"    steps: {' → '.join(spec.state_ids)}")


@flows.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.pass_context
def flows_validate(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Check flow files (names of actions, queries, ... against the app)."""
    app = _app(ctx.find_root())
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.y*ml")) if path.is_dir() else [path])
    failed = 0
    for file in files:
        try:
            spec = load_flow_file(file, app.registry)
        except FlowError as exc:
            failed += 1
            click.echo(f"error: {exc}", err=True)
        else:
            click.echo(f"ok: {file} (flow {spec.name}, {len(spec.steps)} steps)")
    if failed:
        raise click.exceptions.Exit(1)


@flows.command("diagram")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="file to write: .png, .svg, .pdf, .dot or .mmd (Mermaid)",
)
@click.pass_context
def flows_diagram(ctx: click.Context, name: str, output: Path) -> None:
    """Draw flow NAME's states and transitions."""
    from bot.diagrams import write_diagram

    app = _app(ctx.find_root())
    write_diagram(app.flow(name), output)
    click.echo(f"wrote {output}")


@cli.group()
def handoff() -> None:
    """Conversations handed to a person."""


@handoff.command("release")
@click.argument("phone", callback=_phone)
@click.pass_context
def handoff_release(ctx: click.Context, phone: str) -> None:
    """Give PHONE's conversation back to the bot."""
    from sqlalchemy import select

    from flows import release_handoff
    from storage import Contact

    settings: Settings = ctx.find_root().obj["settings"]

    async def work(db: Database) -> bool:
        async with db.read() as session:
            contact_id = await session.scalar(select(Contact.id).where(Contact.wa_id == phone))
        if contact_id is None:
            raise click.UsageError(f"no contact +{phone}")
        return await release_handoff(db, contact_id)

    released = _run(_with_db(settings, work))
    click.echo(f"+{phone}: {'back with the bot' if released else 'was not handed off'}")


cli.add_command(operator)
cli.add_command(report)
cli.add_command(snapshot)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``nyala`` script: errors become one line, never a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result: Any = cli.main(args=argv, prog_name="nyala", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = (
            " (see nyala --help)"
            if isinstance(exc, click.exceptions.NoSuchOption | click.exceptions.MissingParameter)
            else ""
        )
        if exc.ctx is not None and "No such command" in exc.format_message():
            hint = (
                f" (commands: {', '.join(sorted(exc.ctx.command.list_commands(exc.ctx)))})"
                if isinstance(exc.ctx.command, click.Group)
                else ""
            )
        click.echo(f"nyala: error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"nyala: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("", err=True)
        sys.exit(130)
    except NyalaError as exc:
        click.echo(f"nyala: error: {exc}", err=True)
        sys.exit(1)
    if isinstance(result, int) and result:
        sys.exit(result)
