"""``nyala send-tour-summaries --days-before 7 --dry-run`` over many due bookings.

The command runs as a user would run it (``python -m bot``, its own process, the
benchmark's PostgreSQL), with every seeded booking due; its table goes to /dev/null.
The figure is the command's wall time, start-up included. **Ceiling**: ``python -m bot
--help`` (interpreter and CLI start-up alone), so the difference is the work itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import time

from bench.servers import ROOT

DAYS_BEFORE = 7


def due_date(timezone: dt.tzinfo) -> dt.date:
    """The departure date that is due for the 7-day summary today in ``timezone``."""
    return dt.datetime.now(timezone).date() + dt.timedelta(days=DAYS_BEFORE)


def _env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("WHATSAPP_ACCESS_TOKEN", None)
    return env


async def timed(args: list[str], database_url: str) -> tuple[float, int]:
    """Run ``python -m bot <args>``; (wall seconds, exit status)."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=ROOT,
        env=_env(database_url),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(
            f"python -m bot {' '.join(args)} exited with {process.returncode}: "
            f"{err.decode(errors='replace').strip()[-500:]}"
        )
    return seconds, process.returncode or 0


async def dry_run_seconds(database_url: str) -> float:
    """One ``send-tour-summaries --days-before 7 --dry-run``."""
    seconds, _ = await timed(
        ["send-tour-summaries", "--days-before", str(DAYS_BEFORE), "--dry-run"], database_url
    )
    return seconds


async def startup_seconds(database_url: str) -> float:
    """``python -m bot --help``: start-up alone."""
    seconds, _ = await timed(["--help"], database_url)
    return seconds
