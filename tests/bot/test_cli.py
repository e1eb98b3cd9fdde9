"""The ``nyala`` command as a user runs it: piped chat, errors, flows commands, and the
selected app's own commands and demo data (the restaurant example and a tiny shop app
written to a folder, as a newcomer would)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.cli import nyala

ROOT = Path(__file__).resolve().parents[2]
RESTAURANT = str(ROOT / "examples" / "restaurant")

SHOP_APP = '''
"""A shop with demo data and one command of its own."""

from pathlib import Path

import click
from sqlalchemy import func, select

from bot.cli.common import runtime_command
from flows import App
from flows.runtime import Runtime
from storage import Contact

HERE = Path(__file__).parent


async def demo(runtime: Runtime) -> str:
    async with runtime.db.transaction() as session:
        if await session.scalar(select(Contact.id).where(Contact.wa_id == "15550000001")):
            return "the demo customer was already there"
        session.add(Contact(wa_id="15550000001", profile_name="Demo customer", attributes={}))
    return "1 demo customer"


@click.command("count-contacts")
@click.option("--label", default="contacts")
@runtime_command
async def count_contacts(runtime: Runtime, label: str) -> None:
    """Count the shop's contacts."""
    async with runtime.db.read() as session:
        count = await session.scalar(select(func.count(Contact.id)))
    click.echo(f"{label}: {count} (sandbox={runtime.sandbox})")


app = App("Corner Shop", flows_dir=HERE / "flows", demo_data=demo, commands=[count_contacts])
'''

BARE_APP = """
from pathlib import Path

from flows import App

app = App("Bare Kiosk", flows_dir=Path(__file__).parent / "flows")
"""

SHOP_FLOW = """
flow: greet_flow
description: Say hello
menu: Say hello
steps:
  ask_name:
    ask: Your name?
    expect: person_name
    save: name
  done:
    final: true
    say: Hello {name}!
"""


def _app_folder(folder: Path, source: str) -> Path:
    (folder / "flows").mkdir(parents=True)
    (folder / "app.py").write_text(source)
    (folder / "flows" / "greet_flow.yaml").write_text(SHOP_FLOW)
    return folder


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """The shop app's folder (``nyala --app <folder>``)."""
    return _app_folder(tmp_path / "shop", SHOP_APP)


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """An app with one flow and nothing else."""
    return _app_folder(tmp_path / "bare", BARE_APP)


def test_piped_chat_completes_a_flow_on_a_fresh_database(tmp_path: Path) -> None:
    script = "hi\n2\n1\nThe soup was cold\n"
    result = nyala("--app", RESTAURANT, "chat", "--as", "+263 77 555 0101", cwd=tmp_path,
                   stdin=script)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "bot> Welcome to Msasa Grill" in out
    assert "     2. Rate your visit" in out
    assert "bot> Thank you for your feedback" in out
    db = sqlite3.connect(tmp_path / "nyala.db")
    (status,) = db.execute("select status from flow_sessions").fetchone()
    actions = db.execute("select step_name, action from flow_step_events order by id").fetchall()
    (wa_id,) = db.execute(
        "select wa_id from contacts where id = (select contact_id from flow_sessions)"
    ).fetchone()
    assert status == "completed"
    assert actions[:2] == [("awaiting_rating", "entered"), ("awaiting_rating", "completed")]
    assert actions[-1] == ("thanked", "entered")
    assert wa_id == "263775550101"


def test_chat_ends_on_quit(tmp_path: Path) -> None:
    result = nyala("--app", RESTAURANT, "chat", cwd=tmp_path, stdin="hi\n/quit\nhello\n")
    assert result.returncode == 0
    assert result.stdout.count("bot> Welcome") == 1


def test_first_chat_on_a_fresh_sqlite_database_loads_the_apps_demo_data_once(
    tmp_path: Path, shop: Path
) -> None:
    first = nyala("--app", str(shop), "chat", cwd=tmp_path, stdin="hi\n/quit\n")
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines() == [
        "loaded demo data: 1 demo customer (nyala demo-data shows it)"
    ]
    again = nyala("--app", str(shop), "chat", cwd=tmp_path, stdin="hi\n/quit\n")
    assert again.returncode == 0 and again.stderr == ""
    shown = nyala("--app", str(shop), "demo-data", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "the demo customer was already there\n"


def test_an_app_without_demo_data(tmp_path: Path, bare: Path) -> None:
    chat = nyala("--app", str(bare), "chat", cwd=tmp_path, stdin="hi\n/quit\n")
    assert chat.returncode == 0 and chat.stderr == ""  # nothing to load
    result = nyala("--app", str(bare), "demo-data", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "nyala: error: Bare Kiosk has no demo data (App(demo_data=...))\n"


def test_the_selected_apps_commands_are_listed_and_run(tmp_path: Path, shop: Path) -> None:
    listed = nyala("--app", str(shop), "--help", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "count-contacts" in listed.stdout and "Count the shop's contacts." in listed.stdout
    assert "migrate" in listed.stdout and "fake-graph" in listed.stdout
    ran = nyala("--app", str(shop), "count-contacts", "--label", "people", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "people: 0 (sandbox=True)\n"
    # $NYALA_APP selects the app as --app does.
    env = {"NYALA_APP": str(shop)}
    assert "count-contacts" in nyala("--help", cwd=tmp_path, env=env).stdout
    # Another app does not have it.
    restaurant = nyala("--app", RESTAURANT, "--help", cwd=tmp_path)
    assert "count-contacts" not in restaurant.stdout
    for safari_command in ("send-tour-summaries", "send-id-reminders", "receipt"):
        assert safari_command not in restaurant.stdout
    missing = nyala("--app", RESTAURANT, "count-contacts", cwd=tmp_path)
    assert missing.returncode == 2 and "No such command 'count-contacts'" in missing.stderr


def test_the_default_app_brings_the_safari_commands(tmp_path: Path) -> None:
    listed = nyala("--help", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for command in ("send-tour-summaries", "send-id-reminders", "receipt", "migrate"):
        assert command in listed.stdout
    # The framework's commands first, then the app's under its name.
    own, _, apps = listed.stdout.partition("Commands of Savannah Trails Safaris:")
    assert "migrate" in own and "receipt" not in own
    assert "send-tour-summaries" in apps and "migrate" not in apps


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
    args = args if args[0] == "--app" else ["--app", RESTAURANT, *args]
    result = nyala(*args, cwd=tmp_path)
    assert result.returncode == (2 if "No such" in message or "phone" in message else 1)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://nyala:hunter2@127.0.0.1:1/nyala"
    result = nyala("--app", RESTAURANT, "migrate", cwd=tmp_path, env={"DATABASE_URL": url})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert (
        "cannot reach the database at postgresql+asyncpg://nyala:***@127.0.0.1:1/nyala" in lines[0]
    )
    assert "hunter2" not in result.stderr


def test_migrate_runs_on_postgresql(postgres_url: str, tmp_path: Path, bare: Path) -> None:
    # An app without tables: the run's shared framework-only database stays that way.
    result = nyala("--app", str(bare), "migrate", cwd=tmp_path, env={"DATABASE_URL": postgres_url})
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout


def test_flows_list_validate_and_diagram(tmp_path: Path) -> None:
    listed = nyala("--app", RESTAURANT, "flows", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "table_booking" in listed.stdout
    assert "awaiting_rating → awaiting_comment → thanked" in listed.stdout
    flows_dir = ROOT / "examples" / "restaurant" / "flows"
    ok = nyala("--app", RESTAURANT, "flows", "validate", str(flows_dir), cwd=tmp_path)
    assert ok.returncode == 0 and "ok:" in ok.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "flow: broken\nsteps:\n  a:\n    ask: hi\n    do: no_such_action\n  b:\n    final: true\n"
    )
    bad = nyala("--app", RESTAURANT, "flows", "validate", str(broken), cwd=tmp_path)
    assert bad.returncode == 1
    assert f"{broken}:5: steps.a.do: unknown action 'no_such_action'" in bad.stderr
    mermaid = nyala("--app", RESTAURANT, "flows", "diagram", "feedback", "-o", "f.mmd",
                    cwd=tmp_path)  # fmt: skip
    assert mermaid.returncode == 0, mermaid.stderr
    assert "awaiting_rating" in (tmp_path / "f.mmd").read_text()
    if shutil.which("dot"):
        png = nyala("--app", RESTAURANT, "flows", "diagram", "feedback", "-o", "f.png",
                    cwd=tmp_path)  # fmt: skip
        assert png.returncode == 0, png.stderr
        assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_and_handoff_release(tmp_path: Path, shop: Path) -> None:
    nyala("--app", str(shop), "chat", "--as", "263771000000", cwd=tmp_path,
          stdin="hi\nagent\n")  # fmt: skip
    swept = nyala("--app", str(shop), "sweep", cwd=tmp_path)
    assert swept.returncode == 0 and "abandoned 0 idle sessions" in swept.stdout
    released = nyala("--app", str(shop), "handoff", "release", "+263771000000", cwd=tmp_path)
    assert released.returncode == 0, released.stderr
    assert "back with the bot" in released.stdout
    unknown = nyala("--app", str(shop), "handoff", "release", "263779999999", cwd=tmp_path)
    assert unknown.returncode == 2 and "no contact +263779999999" in unknown.stderr


def test_fake_graph_without_the_test_extra_says_what_to_install(tmp_path: Path) -> None:
    # jsonschema (the test extra) hidden: a module of that name that cannot be imported.
    (tmp_path / "jsonschema.py").write_text("raise ImportError('hidden', name='jsonschema')\n")
    result = nyala("fake-graph", "--token", "t", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "nyala: error: nyala fake-graph needs the test extra: pip install 'nyala[test]' "
        "(jsonschema is missing)"
    ]
