"""Helpers shared by the ``nyala`` command modules (settings, database, app, asyncio)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from pydantic import ValidationError

from bot.apps import load_app
from bot.settings import Settings
from flows import App
from storage import Database, migrate

T = TypeVar("T")


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.UsageError(f"bad setting {first['loc'][0]}: {first['msg']}") from None


def phone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    digits = re.sub(r"[\s\-()]", "", value).removeprefix("+")
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        raise click.BadParameter(f"{value!r} is not a phone number in international form")
    return digits


async def with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(settings.database_url)
    try:
        await db.check()
        await migrate(db)
        return await work(db)
    finally:
        await db.dispose()


def run(coro: Awaitable[T]) -> T:
    async def runner() -> T:
        return await coro

    return asyncio.run(runner())


def load_app_from(ctx: click.Context) -> App:
    target: str = ctx.obj["app"]
    app = load_app(target)
    app.check()
    return app
