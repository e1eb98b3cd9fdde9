"""The ``nyala`` command line (click): the framework's commands plus the selected app's.

``--app`` (or ``$NYALA_APP``) selects the app; its ``App(commands=[...])`` are listed and
run beside the framework's, so ``nyala --app examples/restaurant --help`` shows the
restaurant's commands and no other app's. Every command that touches the database
applies pending migrations first (the framework's branch and the app's), so each one
works on a fresh database. Bad arguments give one line and exit status 2; an unreachable
database gives one line (URL without password) and exit status 1; never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select

from analytics import abandon_idle_sessions
from bot.apps import AppNotFoundError
from bot.cli.analytics import report, snapshot
from bot.cli.chat import TerminalChat
from bot.cli.common import CliState, cli_state, load_settings, phone, run_with_db
from bot.cli.operators import operator
from bot.console.accounts import ensure_first_admin, first_admin_notice
from bot.diagrams import write_diagram
from bot.files import FileLimits
from bot.settings import DEFAULT_APP, Settings
from bot.whatsapp.pressure import AckPressure
from flows import Engine, FlowError, load_flow_file, release_handoff
from flows.runtime import Runtime
from storage import Contact, Database, NyalaError

if TYPE_CHECKING:  # the worker is imported only by the commands that run it
    from bot.worker import Role

DEFAULT_CHAT_PHONE = "263771234567"
log = logging.getLogger("nyala.bot")


class NyalaGroup(click.Group):
    """The framework's commands, then the selected app's (``App.commands``)."""

    def _app_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        state = ctx.find_object(CliState)
        if state is None:  # ``--help`` came before ``--app``: the app from the settings
            state = _state(ctx, None)
        app = state.app()
        found: dict[str, click.Command] = {}
        for command in app.commands:
            if not isinstance(command, click.Command) or command.name is None:
                raise click.UsageError(f"{app!r}: App.commands holds {command!r}, not a command")
            if command.name in self.commands:
                raise click.UsageError(
                    f"{app!r}: its command {command.name!r} has the name of one of nyala's own"
                )
            found[command.name] = command
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(self.commands)
        try:
            names.update(self._app_commands(ctx))
        except (AppNotFoundError, FlowError) as exc:
            # Help must still work with a broken app: the framework's commands, and why.
            log.warning("the app's commands are not listed: %s", exc)
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        own = self.commands.get(cmd_name)
        if own is not None:
            return own
        return self._app_commands(ctx).get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Two sections: the framework's commands, then the selected app's."""
        try:
            app_commands = self._app_commands(ctx)
            app_name = _state(ctx, None).app().name
        except (AppNotFoundError, FlowError):
            app_commands, app_name = {}, ""
        limit = formatter.width - 6 - max(map(len, [*self.commands, *app_commands]))
        sections = [("Commands", self.commands), (f"Commands of {app_name}", app_commands)]
        for heading, commands in sections:
            rows = [
                (name, command.get_short_help_str(limit))
                for name, command in sorted(commands.items())
                if not command.hidden
            ]
            if rows:
                with formatter.section(heading):
                    formatter.write_dl(rows)


def _state(ctx: click.Context, target: str | None) -> CliState:
    """The command line's state (settings and app), made once per invocation."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        settings = load_settings()
        root.obj = CliState(settings, target or settings.app)
    return root.obj


def _select_app(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # Eager: the app is known before --help lists the commands.
    _state(ctx, value)
    return value


@click.group(cls=NyalaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--app",
    "app_target",
    metavar="APP",
    is_eager=True,
    expose_value=True,
    callback=_select_app,
    help="The bot to run: module:attr, module, or a folder with app.py "
    f"(default: $NYALA_APP or the built-in {DEFAULT_APP})",
)
@click.version_option(package_name="nyala")
@click.pass_context
def cli(ctx: click.Context, app_target: str | None) -> None:
    """Nyala: WhatsApp bots whose conversations are state machines."""
    _state(ctx, app_target)


@cli.command("migrate")
def migrate_command() -> None:
    """Apply pending database migrations (the framework's and the app's; nothing else)."""

    async def work(db: Database) -> None:
        click.echo(f"database {db.display_url} is up to date")

    run_with_db(work)


async def load_demo_if_fresh(runtime: Runtime) -> str | None:
    """Load the app's demo data into a fresh SQLite database, so a first run just works.

    Fresh: no contact has ever written (the first chat creates one, so this happens
    once). Only on SQLite, the single-user default; returns the app's summary line.
    """
    app, db = runtime.app, runtime.db
    if app.demo_data is None or not db.is_sqlite:
        return None
    async with db.read() as session:
        if await session.scalar(select(Contact.id).limit(1)) is not None:
            return None
    return await app.demo_data(runtime)


@cli.command()
@click.option(
    "--as",
    "phone_number",
    callback=phone,
    metavar="PHONE",
    help=f"Chat as this number, international form (default +{DEFAULT_CHAT_PHONE})",
)
@click.option(
    "--files",
    "files_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("nyala-chat-files"),
    show_default=True,
    help="Where documents the bot sends are saved",
)
def chat(phone_number: str | None, files_dir: Path) -> None:
    """Talk to the bot in the terminal (sandbox: nothing is ever sent to WhatsApp)."""
    state = cli_state()
    app = state.app()

    async def work(db: Database) -> None:
        async with Runtime.start(app, db, sandbox=True, settings=state.settings) as runtime:
            loaded = await load_demo_if_fresh(runtime)
            if loaded:
                click.echo(f"loaded demo data: {loaded} (nyala demo-data shows it)", err=True)
            engine = Engine(db, app, sandbox=True, services=runtime.services)
            chat = TerminalChat(
                engine,
                phone_number or DEFAULT_CHAT_PHONE,
                files_dir=files_dir,
                file_limits=FileLimits.from_settings(state.settings),
            )
            await chat.run()

    run_with_db(work)


def port_free(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, no such address), or ``None``.

    Bound without ``SO_REUSEPORT``: a port another server holds is in use even when that
    server shares it among its own workers.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror}"
    family, _, _, _, address = infos[0]
    try:
        with socket.create_server(address[:2], family=family):
            return None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return f"cannot listen on {host}:{port}: {reason}"


def _child_settings(settings_env: dict[str, str]) -> Settings:
    """The settings of a server or processing process, with its logging set up."""
    os.environ.update(settings_env)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl ..." is noise
    return settings


def _serve_process(
    settings_env: dict[str, str],
    app_target: str,
    host: str,
    port: int,
    *,
    share_port: bool = False,
    pressure: AckPressure | None = None,
) -> None:
    """One server process (also the body of each ``--workers`` child)."""
    # Imported here: the server and its console (Jinja, Argon2, charts) are heavy and
    # only ``serve`` needs them; every other command starts without them.
    from bot.apps import load_app
    from bot.server import create_app, run

    settings = _child_settings(settings_env)
    app = load_app(app_target)
    # Not web.run_app: slow or flooding clients are cut off (bot.server.ConnectionGuard).
    try:
        run(
            create_app(settings, app, pressure=pressure),
            host=host,
            port=port,
            reuse_port=share_port,
        )
    except OSError as exc:  # taken since the check in ``serve``
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise SystemExit(f"nyala: cannot listen on {host}:{port}: {reason}") from None


def _work_process(
    settings_env: dict[str, str],
    app_target: str,
    role: Role = "work",
    pressure: AckPressure | None = None,
) -> None:
    """One processing process (``nyala work``, and each ``serve --processors`` child, role
    "process"), or the sending child of ``serve --processors`` (role "send"); ``pressure``:
    the webhook's, shared with ``serve``'s web processes."""
    from bot.apps import load_app
    from bot.worker import run_worker

    run_worker(_child_settings(settings_env), load_app(app_target), role=role, pressure=pressure)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (PostgreSQL only)",
)
@click.option(
    "--processors",
    default=0,
    show_default=True,
    type=click.IntRange(0, 64),
    help="Processes that process messages, apart from the webhook's, plus one that sends "
    "the replies in live mode (PostgreSQL only; 0: the server does both itself)",
)
def serve(host: str, port: int, workers: int, processors: int) -> None:
    """Run the WhatsApp webhook server (sandbox mode without WHATSAPP_ACCESS_TOKEN)."""
    from bot.server import startup_warnings  # see _serve_process: heavy, serve only

    state = cli_state()
    settings = state.settings
    app = state.app()
    if workers > 1 and Database(settings.database_url).is_sqlite:
        raise click.UsageError(
            "--workers > 1 needs PostgreSQL: SQLite allows one writing process "
            "(set DATABASE_URL=postgresql://...)"
        )
    if processors and Database(settings.database_url).is_sqlite:
        raise click.UsageError(
            "--processors needs PostgreSQL: SQLite allows one writing process "
            "(set DATABASE_URL=postgresql://...)"
        )

    async def check(db: Database) -> None:
        async with Runtime.start(app, db, sandbox=not settings.live, settings=settings) as rt:
            loaded = await load_demo_if_fresh(rt)
            if loaded:
                click.echo(f"loaded demo data: {loaded}", err=True)
        if first := await ensure_first_admin(db):  # printed once to the terminal, not logged
            click.echo(first_admin_notice(first, f"http://{host}:{port}/console"), err=True)

    # One server per port: a second ``serve`` on a busy port says so and stops, instead of
    # sharing it silently (only this command's own --workers share their port).
    if problem := port_free(host, port):
        raise click.ClickException(problem)
    run_with_db(check)
    for note in startup_warnings(settings):
        click.echo(f"note: {note}", err=True)
    processes = f"{workers} process{'es' if workers > 1 else ''}"
    # With processing processes, one process of its own sends (live mode): the rate is
    # kept in one place, and sending takes no time from the turns.
    sender = bool(processors) and settings.live
    if processors:
        processes += f", {processors} processing process{'es' if processors > 1 else ''}"
    if sender:
        processes += " and a sending process"
    database = Database(settings.database_url).display_url
    click.echo(
        f"nyala: serving {app.name} on http://{host}:{port} ({processes}, database {database})",
        err=True,
    )
    # The processes that send share the send rate: never above it all together.
    senders = 1 if processors else workers
    env = {"NYALA_SEND_RATE": str(settings.send_rate / senders)}
    if processors:
        env["NYALA_PROCESSING"] = "elsewhere"
    if workers == 1 and not processors:
        _serve_process(env, state.target, host, port)
        return
    spawn = multiprocessing.get_context("spawn")
    # The processing and sending children make way for a flood of webhooks, which the web
    # processes tell them of in shared memory (bot.whatsapp.pressure).
    pressure = (
        AckPressure.shared(spawn, requests=settings.ack_pressure, max_hold=settings.ack_max_hold)
        if processors
        else None
    )
    children = [
        spawn.Process(
            target=_serve_process,
            args=(env, state.target, host, port),
            kwargs={"share_port": workers > 1, "pressure": pressure},
            daemon=False,
        )
        for _ in range(workers)
    ]
    children += [
        spawn.Process(
            target=_work_process, args=({}, state.target, "process", pressure), daemon=False
        )
        for _ in range(processors)
    ]
    if sender:
        children.append(
            spawn.Process(
                target=_work_process,
                args=(
                    {"NYALA_SEND_RATE": env["NYALA_SEND_RATE"]},
                    state.target,
                    "send",
                    pressure,
                ),
                daemon=False,
            )
        )
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


@cli.command()
def work() -> None:
    """Process stored messages and send replies, without a web server (PostgreSQL only).

    For a webhook server started with NYALA_PROCESSING=elsewhere (or beside `serve
    --processors`): it announces what it stores, and any number of `nyala work`
    processes, here or on other machines, process it.
    """
    state = cli_state()
    settings = state.settings
    state.app()  # a wrong --app is a one-line error here, not in the child
    if Database(settings.database_url).is_sqlite:
        raise click.UsageError(
            "work needs PostgreSQL: SQLite allows one writing process "
            "(set DATABASE_URL=postgresql://...)"
        )
    click.echo(
        f"nyala: processing (database {Database(settings.database_url).display_url})", err=True
    )
    _work_process({}, state.target)


@cli.command("demo-data")
def demo_data() -> None:
    """Load the app's demo data (idempotent) and say what it holds."""
    state = cli_state()
    app = state.app()
    loader = app.demo_data
    if loader is None:
        raise click.ClickException(f"{app.name} has no demo data (App(demo_data=...))")

    async def work(db: Database) -> str:
        async with Runtime.start(
            app, db, sandbox=not state.settings.live, settings=state.settings
        ) as runtime:
            return await loader(runtime)

    click.echo(run_with_db(work))


@cli.command("fake-graph")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on")
@click.option(
    "--port",
    default=8099,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port)",
)
@click.option(
    "--token",
    envvar="WHATSAPP_ACCESS_TOKEN",
    required=True,
    help="The access token clients must send (default: $WHATSAPP_ACCESS_TOKEN)",
)
def fake_graph(host: str, port: int, token: str) -> None:
    """Run a local fake of the Graph API that validates every request against Meta's spec."""
    try:
        # Imported here: the fake and Meta's spec are test tools (the ``test`` extra);
        # the runtime never imports them.
        from testing.fake_graph import run_fake_graph
    except ImportError as exc:
        raise click.ClickException(
            f"nyala fake-graph needs the test extra: pip install 'nyala[test]' ({exc.name} "
            "is missing)"
        ) from None

    def ready(url: str) -> None:
        click.echo(f"fake Graph API listening at {url} (set WHATSAPP_API_BASE={url})", err=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_fake_graph(host, port, token, on_ready=ready))


@cli.command()
def sweep() -> None:
    """Mark sessions idle past their flow's timeout as abandoned."""
    app = cli_state().app()

    async def work(db: Database) -> int:
        timeouts = {name: spec.timeout for name, spec in app.flows.items()}
        return await abandon_idle_sessions(db, timeouts)

    count = run_with_db(work)
    click.echo(f"abandoned {count} idle session{'s' if count != 1 else ''}")


@cli.group()
def flows() -> None:
    """List, validate and draw flows."""


@flows.command("list")
def flows_list() -> None:
    """List the app's flows with their steps."""
    app = cli_state().app()
    for name, spec in sorted(app.flows.items()):
        origin = str(spec.source) if spec.source else "python class"
        click.echo(f"{name}  ({len(spec.steps)} steps, version {spec.version}, {origin})")
        if spec.description:
            click.echo(f"    {spec.description}")
        click.echo(f"    steps: {' → '.join(spec.state_ids)}")


@flows.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def flows_validate(paths: tuple[Path, ...]) -> None:
    """Check flow files (names of actions, queries, ... against the app)."""
    app = cli_state().app()
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
    help="File to write: .png, .svg, .pdf, .dot or .mmd (Mermaid)",
)
def flows_diagram(name: str, output: Path) -> None:
    """Draw flow NAME's states and transitions."""
    app = cli_state().app()
    write_diagram(app.flow(name), output)
    click.echo(f"wrote {output}")


@cli.group()
def handoff() -> None:
    """Conversations handed to a person."""


@handoff.command("release")
@click.argument("phone_number", metavar="PHONE", callback=phone)
def handoff_release(phone_number: str) -> None:
    """Give PHONE's conversation back to the bot."""

    async def work(db: Database) -> bool:
        async with db.read() as session:
            contact_id = await session.scalar(
                select(Contact.id).where(Contact.wa_id == phone_number)
            )
        if contact_id is None:
            raise click.UsageError(f"no contact +{phone_number}")
        return await release_handoff(db, contact_id)

    released = run_with_db(work)
    click.echo(f"+{phone_number}: {'back with the bot' if released else 'was not handed off'}")


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
