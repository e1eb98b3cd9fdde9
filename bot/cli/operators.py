"""``nyala operator``: accounts of the operator console (create, list, passwords, disable)."""

from __future__ import annotations

import sys

import click

from bot.cli.common import run_with_db
from bot.console.accounts import (
    BadUsernameError,
    create_operator,
    list_operators,
    normalize_username,
    set_active,
    set_password,
)
from bot.console.passwords import WeakPasswordError, check_password
from storage import Database
from storage.operators import OperatorRole

ROLES = [role.value for role in OperatorRole]


def _read_password(password_stdin: bool) -> str:
    """The new password: one line of standard input, or prompted twice (hidden)."""
    if password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise click.UsageError("--password-stdin: standard input is empty")
        password = line.rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_password(password)
    except WeakPasswordError as exc:
        raise click.UsageError(str(exc)) from None
    return password


@click.group()
def operator() -> None:
    """Operator console accounts (admin, agent, viewer)."""


@operator.command("create")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    required=True,
    help="Admin: everything; agent: conversations and support; viewer: read only",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password as one line from standard input"
)
@click.pass_context
def operator_create(ctx: click.Context, username: str, role: str, password_stdin: bool) -> None:
    """Create console account USERNAME (the password is prompted, at least 10 characters)."""
    try:
        name = normalize_username(username)
    except BadUsernameError as exc:
        raise click.UsageError(str(exc)) from None
    password = _read_password(password_stdin)

    async def work(db: Database) -> None:
        await create_operator(db, name, password, OperatorRole(role), actor="cli")

    run_with_db(work, ctx)
    click.echo(f"created operator {name} ({role}); log in at /console")


@operator.command("password")
@click.argument("username")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password as one line from standard input"
)
@click.pass_context
def operator_password(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set USERNAME's password (their console sessions end)."""
    password = _read_password(password_stdin)

    async def work(db: Database) -> None:
        await set_password(db, username, password, actor="cli")

    run_with_db(work, ctx)
    click.echo(f"changed the password of {username.strip().lower()}")


@operator.command("disable")
@click.argument("username")
@click.pass_context
def operator_disable(ctx: click.Context, username: str) -> None:
    """Disable USERNAME (their console sessions end)."""

    async def work(db: Database) -> None:
        await set_active(db, username, active=False, actor="cli")

    run_with_db(work, ctx)
    click.echo(f"disabled {username.strip().lower()}")


@operator.command("enable")
@click.argument("username")
@click.pass_context
def operator_enable(ctx: click.Context, username: str) -> None:
    """Enable USERNAME again."""

    async def work(db: Database) -> None:
        await set_active(db, username, active=True, actor="cli")

    run_with_db(work, ctx)
    click.echo(f"enabled {username.strip().lower()}")


@operator.command("list")
@click.pass_context
def operator_list(ctx: click.Context) -> None:
    """List the console accounts."""

    async def work(db: Database) -> list[tuple[str, str, bool, str]]:
        return [
            (
                o.username,
                o.role.value,
                o.active,
                o.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if o.last_login_at else "never",
            )
            for o in await list_operators(db)
        ]

    rows = run_with_db(work, ctx)
    if not rows:
        click.echo("no operators yet: nyala operator create USERNAME --role admin")
        return
    width = max(len(r[0]) for r in rows)
    for name, role, active, last in rows:
        state = "" if active else "  (disabled)"
        click.echo(f"{name.ljust(width)}  {role:<6}  last login {last}{state}")
