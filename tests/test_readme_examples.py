"""The README's example sessions, run as printed: they cannot drift from what the bot says.

Each ```text block that starts with ``$ printf '…' | nyala …`` is run in a fresh folder
with that input; every line the README shows must come out, in that order (``...`` stands
for lines left out, and a booking reference may differ: they are random).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.cli import nyala

README = Path(__file__).resolve().parents[1] / "README.md"
SESSION = re.compile(r"```text\n\$ (printf .*?\| nyala .*?)\n(.*?)```", re.DOTALL)
REFERENCE = re.compile(r"SAF-[A-Z0-9]{6}")


def sessions() -> list[tuple[str, list[str]]]:
    found = [(m.group(1), m.group(2).splitlines()) for m in SESSION.finditer(README.read_text())]
    assert found, "the README shows no example session"
    return found


@pytest.mark.parametrize(("command", "shown"), sessions(), ids=lambda v: str(v)[:40])
def test_a_readme_session_says_what_the_readme_shows(
    command: str, shown: list[str], tmp_path: Path
) -> None:
    printf, _, call = command.partition(" | ")
    words = shlex.split(printf)
    assert words[0] == "printf" and len(words) == 2, command
    stdin = words[1].encode().decode("unicode_escape")
    args = shlex.split(call)
    assert args[0] == "nyala", command
    result = nyala(*args[1:], cwd=tmp_path, stdin=stdin)
    assert result.returncode == 0, result.stderr
    output = (result.stderr + result.stdout).splitlines()
    position = 0
    for line in shown:
        if line.strip() == "...":
            continue
        pattern = re.escape(REFERENCE.sub("SAFREF", line)).replace("SAFREF", REFERENCE.pattern)
        for index in range(position, len(output)):
            if re.fullmatch(pattern, output[index]):
                position = index + 1
                break
        else:
            raise AssertionError(f"the README shows {line!r}; the bot did not say it (in order)")
