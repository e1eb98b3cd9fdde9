"""Servers under test, each in its own process so the load generator has its own loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp

from bench.cafe_app import FLOWS_ENV

ROOT = Path(__file__).resolve().parent.parent
APP_SECRET = "bench-app-secret"
BENCH_APP = "bench.cafe_app:app"
# Settings that would take the server out of sandbox mode or slow it down.
_CLEARED = (
    "WHATSAPP_ACCESS_TOKEN",
    "WHATSAPP_PHONE_NUMBER_ID",
    "WHATSAPP_VERIFY_TOKEN",
    "WHATSAPP_API_BASE",
    "NYALA_SEND_RATE",
    "NYALA_MAX_BODY_BYTES",
)


class ServerError(RuntimeError):
    """A server process did not come up."""


@dataclass
class Server:
    """A running server process."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the process wrote (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def nyala_command(port: int) -> list[str]:
    """``python -m bot serve`` on loopback."""
    return [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)]


def bare_command(port: int) -> list[str]:
    """The bare aiohttp handler."""
    return [sys.executable, "-m", "bench.bare_server", "--host", "127.0.0.1", "--port", str(port)]


def stop(server: Server, timeout: float = 10.0) -> None:
    """Terminate the process (SIGTERM, then SIGKILL) and wait for it."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


async def _wait_healthy(server: Server, within: float, path: str = "/healthz") -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            if server.process.poll() is not None:
                raise ServerError(
                    f"{server.name} exited with status {server.process.returncode}:\n"
                    f"{server.log_tail()}"
                )
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{server.url}{path}") as response:
                    if response.status < 500:  # the process answers HTTP
                        return
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{server.name} not healthy in {within:.0f} s:\n{server.log_tail()}"
                )
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(
    name: str,
    command: list[str],
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    *,
    within: float = 60.0,
    health_path: str = "/healthz",
) -> AsyncIterator[Server]:
    """Start ``command``, wait for ``GET /healthz``, yield, then stop it (also on errors)."""
    log_path = log_dir / f"{name}.log"
    log: IO[bytes] = log_path.open("wb")
    process = subprocess.Popen(  # noqa: ASYNC220 - starting is instant; waiting is async
        command,
        cwd=ROOT,
        env=_env(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
    try:
        await _wait_healthy(server, within, health_path)
        yield server
    finally:
        stop(server)
        log.close()


def nyala_env(database_url: str, flows_dir: Path) -> dict[str, str]:
    """Sandbox settings (no access token), an app secret, PostgreSQL, the bench café."""
    return {
        "DATABASE_URL": database_url,
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "NYALA_APP": BENCH_APP,
        FLOWS_ENV: str(flows_dir),
        "NYALA_LOG_LEVEL": "WARNING",
    }


def bare_env() -> dict[str, str]:
    """The secret, for the bare handler."""
    return {"WHATSAPP_APP_SECRET": APP_SECRET}


def fake_graph_command(port: int, token: str) -> list[str]:
    """``python -m bot fake-graph`` on loopback."""
    return [
        sys.executable, "-m", "bot", "fake-graph", "--host", "127.0.0.1", "--port", str(port),
        "--token", token,
    ]  # fmt: skip
