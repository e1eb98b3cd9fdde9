"""What a newcomer meets first on the command line: a mistyped flow name is a one-line
error with a suggestion (exit 2), never an empty report; every help text reads the same
way (sentence case, British "travellers")."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import nyala

ROOT = Path(__file__).resolve().parents[2]

# Every command that takes a flow name, with the name in the last place.
FLOW_COMMANDS = [
    ("report", "completion"),
    ("report", "funnel"),
    ("report", "errors"),
    ("report", "kpis"),
    ("snapshot", "--period", "daily", "--flow"),
]

# Walks the whole command tree of ``nyala`` (framework and selected app) in a fresh
# interpreter and prints every help text as JSON: [command path, kind, text].
WALK = """
import json, click
from bot.cli import cli

def walk(command, path, ctx):
    found = [(path, "command", command.help or ""), (path, "short", command.short_help or "")]
    for param in command.params:
        if isinstance(param, click.Option):
            found.append((path + " " + param.opts[0], "option", param.help or ""))
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            found += walk(sub, path + " " + name, click.Context(sub, parent=ctx, info_name=name))
    return found

root = click.Context(cli, info_name="nyala")
print(json.dumps(walk(cli, "nyala", root)))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'nyala.db'}"}


@pytest.mark.parametrize("command", FLOW_COMMANDS, ids=" ".join)
def test_an_unknown_flow_is_one_line_with_did_you_mean(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    done = nyala(*command, "booking_flw", cwd=tmp_path, env=_env(tmp_path))
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "no flow 'booking_flw'" in done.stderr
    assert "did you mean 'booking_flow'?" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_name_like_nothing_lists_the_flows(tmp_path: Path) -> None:
    done = nyala("report", "completion", "nosuchflow", cwd=tmp_path, env=_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "no flow 'nosuchflow'" in done.stderr
    assert "booking_flow" in done.stderr


def test_a_known_flow_without_sessions_still_reports(tmp_path: Path) -> None:
    done = nyala(
        "report", "completion", "booking_flow", "--json", cwd=tmp_path, env=_env(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total_sessions"] == 0


def test_every_help_text_is_sentence_case_and_british(tmp_path: Path) -> None:
    script = tmp_path / "walk.py"
    script.write_text(WALK)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NYALA_")}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**environment, **_env(tmp_path)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    texts = [(path, kind, text) for path, kind, text in json.loads(done.stdout) if text]
    assert len(texts) > 40  # the framework's and the safari app's commands
    for path, kind, text in texts:
        assert text[0].isupper() or not text[0].isalpha(), (path, kind, text)
        assert not re.search(r"\btravel(er|ers|ing)\b", text, re.IGNORECASE), (path, text)
    top = nyala("--help", cwd=tmp_path, env=_env(tmp_path))
    assert "traveler" not in top.stdout.lower()


def test_demo_data_says_travellers(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert nyala("demo-data", cwd=tmp_path, env=env).returncode == 0
    listing = nyala("demo-bookings", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    assert "travellers" in listing.stdout
    assert "traveler" not in listing.stdout
