"""``nyala operator``: creating accounts with prompted or piped passwords, and the
first-run admin of ``nyala serve``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.console.accounts import ensure_first_admin, first_admin_notice
from bot.console.passwords import verify_password
from storage import AuditEntry, Database
from storage.operators import Operator, OperatorRole
from tests.cli import nyala


def test_operator_create_reads_the_password_from_stdin(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}"}
    done = nyala(
        "operator", "create", "Ada", "--role", "admin", "--password-stdin",
        cwd=tmp_path, stdin="a long secret\n", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "created operator ada (admin); log in at /console"
    assert "a long secret" not in done.stdout + done.stderr
    listed = nyala("operator", "list", cwd=tmp_path, env=env)
    assert listed.stdout.startswith("ada  admin")


@pytest.mark.parametrize(
    ("args", "stdin", "status", "message"),
    [
        (["create", "bob", "--role", "agent", "--password-stdin"], "short\n", 2,
         "at least 10 characters (it has 5)"),
        (["create", "bob", "--role", "agent", "--password-stdin"], "", 2,
         "standard input is empty"),
        (["create", "bob", "--role", "boss", "--password-stdin"], "long enough pw\n", 2,
         "'boss' is not one of"),
        (["create", "b b", "--role", "agent", "--password-stdin"], "long enough pw\n", 2,
         "bad username"),
        (["password", "nobody", "--password-stdin"], "long enough pw\n", 1, "no operator"),
    ],
)  # fmt: skip
def test_operator_create_refuses_bad_input_in_one_line(
    tmp_path: Path, args: list[str], stdin: str, status: int, message: str
) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}"}
    done = nyala("operator", *args, cwd=tmp_path, stdin=stdin, env=env)
    assert done.returncode == status, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_taken_username_is_refused(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}"}
    args = ("operator", "create", "ada", "--role", "viewer", "--password-stdin")
    assert nyala(*args, cwd=tmp_path, stdin="long enough pw\n", env=env).returncode == 0
    again = nyala(*args, cwd=tmp_path, stdin="long enough pw\n", env=env)
    assert again.returncode == 1
    assert again.stderr.strip() == "nyala: error: operator 'ada' already exists"


async def test_the_first_run_creates_one_admin_once(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = await ensure_first_admin(db)
    assert first is not None
    assert first.username == "admin" and len(first.password) >= 20
    assert await ensure_first_admin(db) is None  # operators exist now
    async with db.read() as session:
        [admin] = list(await session.scalars(select(Operator)))
        audit = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "create_operator")
        )
    assert admin.role is OperatorRole.ADMIN
    assert admin.password_hash.startswith("$argon2id$")
    assert await verify_password(admin.password_hash, first.password)
    assert audit is not None and audit.actor == "nyala serve"
    assert first.password not in caplog.text  # never in the logs
    notice = first_admin_notice(first, "http://127.0.0.1:8080/console")
    assert first.password in notice and "http://127.0.0.1:8080/console" in notice
