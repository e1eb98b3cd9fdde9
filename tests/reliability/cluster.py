"""A private, throw-away PostgreSQL cluster that a reliability run may crash and restart.

The machine's shared PostgreSQL (port 5432) is never touched: the chaos run restarts its
database on purpose, so it gets a cluster of its own (``initdb`` in a temporary folder,
trust authentication, a free loopback port, its socket in that folder). Run as root, the
server runs as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["ClusterError", "PrivateCluster", "postgres_bindir"]


class ClusterError(RuntimeError):
    """The private cluster could not be created, started or stopped."""


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL server's ``bin`` folder.

    Raises:
        ClusterError: no PostgreSQL server binaries are installed.
    """
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ClusterError("no PostgreSQL server binaries found (initdb): install postgresql")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateCluster:
    """A PostgreSQL cluster in a temporary folder on a free loopback port.

    Use as a context manager: the cluster is created and started on entry, stopped and
    deleted on exit.
    """

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="nyala-chaos-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        self.restarts = 0

    @property
    def admin_url(self) -> str:
        """The ``postgres`` database's URL (for CREATE DATABASE)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        """The URL of ``database`` in this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(  # noqa: PLW1510 - the return code is checked below
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()
            raise ClusterError(f"{args[0]} failed: {reason[-1] if reason else done.returncode}")

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, *args)

    def create(self) -> None:
        """``initdb`` the cluster (trust authentication, UTF-8)."""
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--no-instructions",
        )  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._ctl("-w", "-t", "60", "start")
        self.wait_ready()

    def wait_ready(self, within: float = 60.0) -> None:
        """Wait until the server accepts TCP connections on its port."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.1)
        raise ClusterError(f"PostgreSQL on port {self.port} did not come up")

    def crash(self) -> None:
        """Stop at once, as a crash would (``-m immediate``: recovery from WAL on start)."""
        self._ctl("-m", "immediate", "stop")

    def restart(self, down_for: float = 1.0) -> None:
        """Crash the server, keep it down ``down_for`` seconds, start it again."""
        self.crash()
        time.sleep(down_for)
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        """Stop the server if it runs (fast shutdown)."""
        with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
            self._ctl("-m", "fast", "stop")

    def __enter__(self) -> PrivateCluster:
        try:
            self.create()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop the server and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
