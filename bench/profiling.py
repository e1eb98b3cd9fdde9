"""``python -m bench --profile``: where one end-to-end run's time goes (pyinstrument),
turns in batches as the server runs them.

pyinstrument is not a dependency; install it with ``pip install -e ".[bench]"``. The
profile covers the benchmark's process only (the Engine, SQLAlchemy, asyncpg,
python-statemachine); PostgreSQL's share shows as time waiting on sockets.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import asyncpg

from bench.end_to_end import engine_rate
from bench.runner import Config
from flows import Engine
from storage import Database
from tests.cafe import build_app

INSTALL_HINT = 'pyinstrument is not installed: pip install -e ".[bench]"'


def available() -> bool:
    """Whether pyinstrument can be imported."""
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        return False
    return True


async def profile_async(cfg: Config, url: str, workdir: Path) -> str:
    """The pyinstrument text of one end-to-end Engine run (in the running event loop)."""
    from pyinstrument import Profiler

    db = Database(url)
    engine = Engine(db, build_app(workdir / "flows"), sandbox=True)
    conn = await asyncpg.connect(url)
    try:
        await engine_rate(engine, conn, contacts=64, conversations=1, concurrency=8, batch=32)
        profiler = Profiler(interval=0.0005)
        profiler.start()
        processed = await engine_rate(
            engine,
            conn,
            concurrency=cfg.concurrency,
            contacts=cfg.e2e_contacts,
            conversations=cfg.e2e_conversations,
            batch=32,  # the server's default batches (NYALA_BATCH_SIZE), 2 at once
        )
        profiler.stop()
    finally:
        await conn.close()
        await db.dispose()
    header = (
        f"{processed.messages} messages at {processed.rate:.0f} msg/s under the profiler "
        "(slower than without)\n"
    )
    return header + str(profiler.output_text(unicode=True, color=False))


def profile_end_to_end(cfg: Config, url: str) -> str:
    """The pyinstrument text of one end-to-end Engine run."""
    with tempfile.TemporaryDirectory(prefix="nyala-bench-") as workdir:
        return asyncio.run(profile_async(cfg, url, Path(workdir)))
