"""DEBUG logs never print SQL parameters (names, phone numbers, token hashes) unless
``NYALA_LOG_SQL_PARAMETERS`` asks for them: the engine itself (both backends) and a
running console's login, over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.console.accounts import create_operator
from bot.server import create_app
from bot.settings import Settings
from storage import Contact, Database
from storage.operators import ConsoleSession, OperatorRole
from tests.cafe import build_app
from tests.console.conftest import PASSWORD, Browser

SECRET_NAME = "Tsitsi Leakproof"
SECRET_USER = "leaky-user-7f3a"


@pytest.fixture
def sql_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything SQLAlchemy's engine logs, at DEBUG (statements, parameters, rows)."""
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    return caplog


async def _look_up_a_name(db: Database) -> None:
    """A name as a parameter (insert, where) and in a result row."""
    async with db.transaction() as session:
        session.add(Contact(wa_id="263770001234", profile_name=SECRET_NAME, attributes={}))
    async with db.read() as session:
        await session.scalar(select(Contact.id).where(Contact.profile_name == SECRET_NAME))
        assert await session.scalar(select(Contact.profile_name)) == SECRET_NAME


async def test_parameters_are_hidden_by_default(
    database_url: str,
    db: Database,
    sql_log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NYALA_LOG_SQL_PARAMETERS", raising=False)
    own = Database(database_url)  # ``db`` only empties the tables first
    try:
        assert not own.log_parameters
        await _look_up_a_name(own)
    finally:
        await own.dispose()
    assert "FROM contacts" in sql_log.text  # the statement is logged ...
    assert SECRET_NAME not in sql_log.text  # ... its parameters and rows are not
    assert "SQL parameters hidden" in sql_log.text
    assert "Row [hidden" in sql_log.text


@pytest.mark.parametrize("how", ["argument", "environment"])
async def test_parameters_are_logged_only_when_asked(
    database_url: str,
    sql_log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    db: Database,
) -> None:
    if how == "environment":
        monkeypatch.setenv("NYALA_LOG_SQL_PARAMETERS", "1")
        own = Database(database_url)
    else:
        monkeypatch.setenv("NYALA_LOG_SQL_PARAMETERS", "0")
        own = Database(database_url, log_parameters=True)
    try:
        assert own.log_parameters
        await _look_up_a_name(own)
    finally:
        await own.dispose()
    assert SECRET_NAME in sql_log.text


def test_the_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NYALA_LOG_SQL_PARAMETERS", raising=False)
    assert Settings().log_sql_parameters is False
    monkeypatch.setenv("NYALA_LOG_SQL_PARAMETERS", "1")
    assert Settings().log_sql_parameters is True


@pytest_asyncio.fixture
async def server(
    database_url: str, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """``nyala serve`` (sandbox) for the test café, with the default logging settings."""
    monkeypatch.delenv("NYALA_LOG_SQL_PARAMETERS", raising=False)
    app = build_app(tmp_path / "flows")
    running = TestServer(create_app(Settings(database_url=database_url), app), host="127.0.0.1")
    await running.start_server()
    try:
        yield str(running.make_url("")).rstrip("/")
    finally:
        await running.close()


async def test_a_login_leaves_no_username_or_token_hash_in_debug_logs(
    server: str, db: Database, sql_log: pytest.LogCaptureFixture
) -> None:
    await create_operator(db, SECRET_USER, PASSWORD, OperatorRole.ADMIN, actor="test")
    sql_log.clear()
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        browser = Browser(server, http)
        assert (await browser.login(SECRET_USER, "not the password!")).status == 401
        assert (await browser.login(SECRET_USER)).status == 303
        assert (await browser.get("/console/")).status == 200
    async with db.read() as session:
        hashes = list(await session.scalars(select(ConsoleSession.token_hash)))
    assert hashes
    logged = sql_log.text
    assert "INSERT INTO console_sessions" in logged  # the server's SQL was captured
    assert SECRET_USER not in logged
    for token_hash in hashes:
        assert token_hash not in logged
