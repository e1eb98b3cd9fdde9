"""Helpers shared by the ``nyala`` command modules (settings, database, app, asyncio)."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar

import click
from pydantic import ValidationError

from bot.apps import load_app
from bot.settings import Settings
from flows import App
from flows.runtime import Runtime
from storage import Database, migrate

T = TypeVar("T")
P = ParamSpec("P")


def load_settings() -> Settings:
    """The settings from the environment; a bad value is one line, not a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.UsageError(f"bad setting {first['loc'][0]}: {first['msg']}") from None


def phone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A click callback: a phone number in international form, as digits."""
    if value is None:
        return None
    digits = re.sub(r"[\s\-()]", "", value).removeprefix("+")
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        raise click.BadParameter(f"{value!r} is not a phone number in international form")
    return digits


async def with_db(
    settings: Settings, work: Callable[[Database], Awaitable[T]], *, app: App | None = None
) -> T:
    """Open the database, migrate it (the framework's branch and ``app``'s), run ``work``."""
    db = Database(settings.database_url, log_parameters=settings.log_sql_parameters)
    try:
        await db.check()
        if app is None:
            await migrate(db)
        else:
            await migrate(db, app.migration_locations, metadata=app.metadata)
        return await work(db)
    finally:
        await db.dispose()


def run(coro: Awaitable[T]) -> T:
    """Run ``coro`` to the end in a new event loop."""

    async def runner() -> T:
        return await coro

    return asyncio.run(runner())


@dataclass(slots=True)
class CliState:
    """What ``nyala``'s options chose: the settings and the app (loaded on first use)."""

    settings: Settings
    target: str
    _app: App | None = field(default=None, repr=False)

    def app(self) -> App:
        """The selected app, loaded and checked once."""
        if self._app is None:
            app = load_app(self.target)
            app.check()
            self._app = app
        return self._app


def cli_state(ctx: click.Context | None = None) -> CliState:
    """The state of the running ``nyala`` command (from any sub-command)."""
    context = ctx or click.get_current_context()
    state = context.find_object(CliState)
    if state is None:
        raise click.UsageError("this command runs under nyala (no app selected)")
    return state


def load_app_from(ctx: click.Context) -> App:
    """The app the command line selected."""
    return cli_state(ctx).app()


def run_with_db(work: Callable[[Database], Awaitable[T]], ctx: click.Context | None = None) -> T:
    """Run ``work(db)`` on the selected app's database, migrated with the app's branch."""
    state = cli_state(ctx)
    return run(with_db(state.settings, work, app=state.app()))


def runtime_command(function: Callable[Concatenate[Runtime, P], Awaitable[T]]) -> Callable[P, T]:
    """Make ``async def f(runtime, **options)`` a click callback that starts the app.

    The selected app's database is opened and migrated (its branch too), its lifespans
    run (its services are ready), and ``runtime.sandbox`` is true unless WhatsApp is
    live. Use it under ``@click.command``::

        @click.command("reservations")
        @click.option("--day", type=click.DateTime(["%Y-%m-%d"]))
        @runtime_command
        async def reservations(runtime: Runtime, day: dt.datetime | None) -> None: ...
    """

    @functools.wraps(function)
    def callback(*args: P.args, **kwargs: P.kwargs) -> T:
        state = cli_state()
        app = state.app()

        async def work(db: Database) -> T:
            async with Runtime.start(
                app, db, sandbox=not state.settings.live, settings=state.settings
            ) as runtime:
                return await function(runtime, *args, **kwargs)

        return run(with_db(state.settings, work, app=app))

    return callback


# --- what app commands build on ---------------------------------------------------------
# An app's commands are ordinary click commands; ``nyala --app X`` lists X's beside the
# framework's. ``runtime_command`` turns ``async def f(runtime, **options)`` into one that
# starts the selected app first: settings read, database opened and migrated with the
# app's branch, the app's lifespans run (its services ready), sandboxed unless live.
