"""The ``nyala`` command as a user runs it: piped chat, errors, flows commands."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.cli import nyala

ROOT = Path(__file__).resolve().parents[2]


def test_piped_chat_completes_a_flow_on_a_fresh_database(tmp_path: Path) -> None:
    script = "hi\n6\nTendai Moyo\n2\n14/07/2099\n4\ntendai@example.com\n1\n"
    result = nyala("chat", "--as", "+263 77 555 0101", cwd=tmp_path, stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "bot> Hello from Savannah Trails Safaris" in out
    assert "     6. Plan a safari" in out
    assert "bot> Thank you, Tendai!" in out
    # A fresh SQLite database gets the demo data first (tests/safari/test_demo.py).
    assert result.stderr.startswith("loaded demo data:")
    assert len(result.stderr.splitlines()) == 1
    db = sqlite3.connect(tmp_path / "nyala.db")
    (status,) = db.execute("select status from flow_sessions").fetchone()
    actions = db.execute("select step_name, action from flow_step_events order by id").fetchall()
    (wa_id,) = db.execute(
        "select wa_id from contacts where id = (select contact_id from flow_sessions)"
    ).fetchone()
    assert status == "completed"
    assert actions[:2] == [("ask_name", "entered"), ("ask_name", "completed")]
    assert actions[-1] == ("sent", "entered")
    assert wa_id == "263775550101"


def test_chat_ends_on_quit(tmp_path: Path) -> None:
    result = nyala("chat", cwd=tmp_path, stdin="hi\n/quit\nhello\n")
    assert result.returncode == 0
    assert result.stdout.count("bot> Hello") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chat", "--as", "not-a-phone"], "'not-a-phone' is not a phone number"),
        (["chta"], "No such command 'chta'"),
        (["chat", "--bogus"], "No such option '--bogus'"),
        (["flows", "diagram", "nope", "-o", "x.png"], "no flow called 'nope'"),
        (["--app", "no.such.module", "chat"], "app 'no.such.module' not found"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = nyala(*args, cwd=tmp_path)
    assert result.returncode in (1, 2)
    assert result.returncode == (2 if "No such" in message or "phone" in message else 1)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://nyala:hunter2@127.0.0.1:1/nyala"
    result = nyala("migrate", cwd=tmp_path, env={"DATABASE_URL": url})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert (
        "cannot reach the database at postgresql+asyncpg://nyala:***@127.0.0.1:1/nyala" in lines[0]
    )
    assert "hunter2" not in result.stderr


def test_migrate_runs_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    result = nyala("migrate", cwd=tmp_path, env={"DATABASE_URL": postgres_url})
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout


def test_flows_list_validate_and_diagram(tmp_path: Path) -> None:
    listed = nyala("flows", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "enquiry_flow" in listed.stdout
    assert "ask_name → ask_interest" in listed.stdout
    flows_dir = ROOT / "flows" / "safari" / "flows"
    ok = nyala("flows", "validate", str(flows_dir), cwd=tmp_path)
    assert ok.returncode == 0 and "ok:" in ok.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "flow: broken\nsteps:\n  a:\n    ask: hi\n    do: no_such_action\n  b:\n    final: true\n"
    )
    bad = nyala("flows", "validate", str(broken), cwd=tmp_path)
    assert bad.returncode == 1
    assert f"{broken}:5: steps.a.do: unknown action 'no_such_action'" in bad.stderr
    mermaid = nyala("flows", "diagram", "enquiry_flow", "-o", "f.mmd", cwd=tmp_path)
    assert mermaid.returncode == 0, mermaid.stderr
    assert "ask_name" in (tmp_path / "f.mmd").read_text()
    if shutil.which("dot"):
        png = nyala("flows", "diagram", "enquiry_flow", "-o", "f.png", cwd=tmp_path)
        assert png.returncode == 0, png.stderr
        assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_and_handoff_release(tmp_path: Path) -> None:
    nyala("chat", "--as", "263771000000", cwd=tmp_path, stdin="hi\n5\nskip\n")
    swept = nyala("sweep", cwd=tmp_path)
    assert swept.returncode == 0 and "abandoned 0 idle sessions" in swept.stdout
    released = nyala("handoff", "release", "+263771000000", cwd=tmp_path)
    assert released.returncode == 0, released.stderr
    assert "back with the bot" in released.stdout
    unknown = nyala("handoff", "release", "263779999999", cwd=tmp_path)
    assert unknown.returncode == 2 and "no contact +263779999999" in unknown.stderr
