"""Data safety: no secret in any log, and a PostgreSQL backup that restores whole.

* ``nyala serve`` runs at DEBUG with every secret set (Meta app secret, access and verify
  tokens, Omari merchant key and callback secret, a database password) and is fed good
  and forged webhooks, forged Omari callbacks and Graph API failures; then ``nyala`` is
  pointed at an unreachable database with a password. None of the secrets appears in
  anything written to stdout or stderr.
* ``pg_dump -Fc`` of a database holding the demo data and stored files, restored with
  ``pg_restore`` into a scratch database, gives back every row of every table and the
  schema version (the procedure ``docs/reliability.md`` documents).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from apps.safari import app as safari
from apps.safari.demo import load_demo_data
from apps.safari.omari import CALLBACK_PATH
from apps.safari.omari_callback import SIGNATURE_HEADER as OMARI_SIGNATURE
from apps.safari.omari_callback import signature as omari_signature
from storage import Database, StoredFile
from storage.migrate import head_revisions
from testing.fake_graph import FakeGraph, FaultKind
from tests.bot.webhooks import PHONE_NUMBER_ID, message, messages_payload, signed
from tests.cli import nyala
from tests.conftest import PG_ADMIN_URL, empty_tables
from tests.reliability.results import Row, record
from tests.reliability.test_console_abuse import fingerprint

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "WHATSAPP_APP_SECRET": "app-secret-Zq81vX",
    "WHATSAPP_ACCESS_TOKEN": "EAAG-access-token-Kp29sW",
    "WHATSAPP_VERIFY_TOKEN": "verify-token-Hn47tR",
    "OMARI_MERCHANT_KEY": "merchant-key-Jd55uE",
    "OMARI_CALLBACK_SECRET": "callback-secret-Wm63yQ",
}
DB_PASSWORD = "db-password-Xc72pL"  # PostgreSQL trusts loopback here, so any password works


def _with_password(url: str) -> str:
    return make_url(url).set(password=DB_PASSWORD).render_as_string(hide_password=False)


async def _wait_ready(
    http: aiohttp.ClientSession, url: str, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "nyala serve exited"
        try:
            async with http.get(f"{url}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("nyala serve did not start")


@pytest.mark.postgres
@pytest.mark.slow
async def test_no_secret_reaches_the_logs(safari_postgres_url: str, tmp_path: Path) -> None:
    postgres_url = safari_postgres_url  # `nyala serve` runs the safari app
    database = Database(postgres_url)
    await empty_tables(database)
    await database.dispose()
    fake = FakeGraph(token=SECRETS["WHATSAPP_ACCESS_TOKEN"], phone_number_id=PHONE_NUMBER_ID,
                     hang=2.0)  # fmt: skip
    graph_url = await fake.start()
    fake.fail_next(1, FaultKind.SERVER_ERROR)
    fake.fail_next(1, FaultKind.TIMEOUT_BEFORE)
    fake.fail_next(1, FaultKind.UNDELIVERABLE)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WHATSAPP_", "NYALA_", "OMARI_"))}  # fmt: skip
    env.update(
        SECRETS,
        DATABASE_URL=_with_password(postgres_url),
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        WHATSAPP_API_BASE=graph_url,
        OMARI_API_BASE="http://127.0.0.1:9/v1",  # nothing listens: initiations fail
        NYALA_PUBLIC_URL=url,
        NYALA_GRAPH_TIMEOUT="1",
        NYALA_LOG_LEVEL="DEBUG",
        PYTHONPATH=str(ROOT),
    )
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "bot", "serve", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            await _wait_ready(http, url, process)
            app_secret = SECRETS["WHATSAPP_APP_SECRET"]
            verify = SECRETS["WHATSAPP_VERIFY_TOKEN"]
            for n, words in enumerate(["hi", "book", "pay", "support", "menu"]):
                raw, headers = signed(
                    messages_payload(message("263770005550", text=words, wamid=f"wamid.S{n}")),
                    secret=app_secret,
                )
                async with http.post(f"{url}/webhook", data=raw, headers=headers) as r:
                    assert r.status == 200
            forged, _ = signed(messages_payload(message("263770005551", text="hi")))
            async with http.post(f"{url}/webhook", data=forged,
                                 headers={"X-Hub-Signature-256": "sha256=00"}) as r:  # fmt: skip
                assert r.status == 403
            query = {"hub.mode": "subscribe", "hub.verify_token": verify, "hub.challenge": "42"}
            async with http.get(f"{url}/webhook", params=query) as r:
                assert r.status == 200
            async with http.get(f"{url}/webhook", params={**query, "hub.verify_token": "x"}) as r:
                assert r.status == 403
            body = json.dumps({"event_id": "e1", "reference": "r"}).encode()
            for signed_with in (SECRETS["OMARI_CALLBACK_SECRET"], "wrong"):
                headers = {OMARI_SIGNATURE: omari_signature(signed_with, body)}
                async with http.post(url + CALLBACK_PATH, data=body, headers=headers) as r:
                    assert r.status in (400, 403, 404), await r.text()
            async with http.get(f"{url}/metrics") as r:
                metrics = await r.text()
            deadline = time.monotonic() + 30
            while len(fake.sent) < 5 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 60)
        except subprocess.TimeoutExpired:
            process.kill()
        await fake.stop()
    # The same secrets, on a database that cannot be reached.
    env["DATABASE_URL"] = _with_password("postgresql://nyala@127.0.0.1:9/nyala")
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "serve", "--port", str(_free_port())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    logs = out.read_text() + err.read_text() + metrics + refused.stdout + refused.stderr
    assert "DEBUG" in logs and "127.0.0.1:9" in logs  # the logs did say things
    leaked = {name: logs.count(value) for name, value in
              {**SECRETS, "database password": DB_PASSWORD}.items() if value in logs}  # fmt: skip
    assert leaked == {}, leaked
    record(
        "secrets-in-logs",
        Row(
            scenario="Secrets in logs",
            injected="every secret set (app secret, access and verify tokens, Omari merchant "
            "key and callback secret, database password); DEBUG logging; good and forged "
            "webhooks and callbacks, Graph errors and a timeout, an unreachable database",
            load=f"{len(logs.splitlines()):,} lines of stdout, stderr and /metrics",
            observed=f"{sum(leaked.values())} occurrences of any of the 6 secrets",
        ),
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.postgres
async def test_a_pg_dump_restores_every_row(safari_postgres_url: str, tmp_path: Path) -> None:
    postgres_url = safari_postgres_url  # the framework's and the safari app's tables
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.fail("pg_dump and pg_restore are needed (Debian: postgresql-client)")
    source = Database(postgres_url)
    await empty_tables(source)
    await load_demo_data(source, tz=safari.timezone)
    async with source.transaction() as session:
        session.add(StoredFile.from_bytes("id.pdf", "application/pdf", os.urandom(200_000)))
    before = await fingerprint(source)
    dump = tmp_path / "nyala.dump"
    plain = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    await asyncio.to_thread(
        subprocess.run,
        ["pg_dump", "--format=custom", "--file", str(dump), plain],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    scratch = f"nyala_restore_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{scratch}"')
        target_url = plain.rsplit("/", 1)[0] + f"/{scratch}"
        await asyncio.to_thread(
            subprocess.run,
            ["pg_restore", "--no-owner", "--exit-on-error", "--dbname", target_url, str(dump)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        target = Database(target_url)
        try:
            after = await fingerprint(target)
            async with source.read() as s, target.read() as t:
                versions = [
                    sorted((await db.execute(text("SELECT version_num FROM alembic_version")))
                           .scalars())
                    for db in (s, t)
                ]  # fmt: skip
                tables = (await t.execute(text(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema='public'"
                ))).scalar()  # fmt: skip
        finally:
            await target.dispose()
        # The restored database serves the CLI like the original.
        shown = await asyncio.to_thread(
            nyala, "demo-bookings", "--json", cwd=tmp_path, env={"DATABASE_URL": target_url}
        )
        assert shown.returncode == 0, shown.stderr
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        await admin.close()
        await source.dispose()
    assert after == before
    # The same revision(s), the newest there are (the safari branch's head stands for the
    # framework's, which it depends on).
    assert versions[0] == versions[1] != []
    assert set(versions[1]) <= head_revisions(safari.migration_locations), versions
    record(
        "backup-restore",
        Row(
            scenario="PostgreSQL backup and restore",
            injected="`pg_dump --format=custom`, `pg_restore --no-owner` into a new database",
            load=f"the demo data and a 200 kB stored file; {tables} tables, "
            f"{dump.stat().st_size:,} bytes of dump",
            observed="every row of every table identical (SHA-256 over all rows), schema "
            f"version {', '.join(versions[1])} kept, `nyala demo-bookings` runs on the copy",
        ),
    )


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_documents_the_chat_saves_are_private_to_their_user(tmp_path: Path) -> None:
    files = tmp_path / "files"
    done = nyala("chat", "--as", "263771234567", "--files", str(files), cwd=tmp_path,
                 stdin="send receipt\n/quit\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    saved = list(files.iterdir())
    assert saved and all(_mode(p) == 0o600 for p in saved), {p.name: oct(_mode(p)) for p in saved}
    assert _mode(files) == 0o700
    record(
        "secrets-files-chat",
        Row(
            scenario="Files the terminal chat saves",
            injected="`nyala chat` asked for a receipt under the default umask (022)",
            load=f"{len(saved)} PDF saved",
            observed=f"file mode {oct(_mode(saved[0]))}, folder {oct(_mode(files))}",
        ),
    )


def test_the_embedded_database_holding_id_documents_is_private(tmp_path: Path) -> None:
    done = nyala("demo-data", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    modes = {p.name: oct(_mode(p)) for p in tmp_path.glob("nyala.db*")}
    record(
        "secrets-files-sqlite",
        Row(
            scenario="The embedded SQLite database file (ID documents, proofs)",
            injected="a fresh `nyala.db` created by `nyala demo-data` under umask 022",
            load="1 database",
            observed=f"file modes {modes}",
            passed=all(m == "0o600" for m in modes.values()),
        ),
    )
    assert all(m == "0o600" for m in modes.values()), modes
