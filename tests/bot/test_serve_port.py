"""``nyala serve`` on a port it cannot have: one line, a non-zero exit, nothing served.

Before, a busy port printed "serving …" and then a traceback, and a second server on the
same port started silently beside the first (``SO_REUSEPORT``) on the same SQLite file.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import port_free
from tests.cli import nyala


@pytest.fixture(params=["plain", "shared"])
def busy_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A port another server listens on (``shared``: one that shares it with its workers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        if request.param == "shared":
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_a_busy_port_is_one_line_and_a_non_zero_exit(busy_port: int, tmp_path: Path) -> None:
    result = nyala("serve", "--port", str(busy_port), cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"nyala: error: cannot listen on 127.0.0.1:{busy_port}: Address already in use"
    ]
    assert "serving" not in result.stdout + result.stderr
    assert not (tmp_path / "nyala.db").exists()  # stopped before touching the database


def test_an_unknown_host_is_one_line(tmp_path: Path) -> None:
    result = nyala("serve", "--host", "no-such-host.invalid", cwd=tmp_path)
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("nyala: error: cannot resolve no-such-host.invalid")


def test_a_free_port_is_free() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    assert port_free("127.0.0.1", port) is None
