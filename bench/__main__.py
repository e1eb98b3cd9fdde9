"""``python -m bench [--quick] [--profile]``: run the benchmarks, write the docs."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from bench.database import ADMIN_URL, bench_database
from bench.report import markdown, table, write
from bench.runner import FULL, QUICK, TINY, Config, main_async


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _profile(cfg: Config) -> int:
    from bench import profiling

    if not profiling.available():
        print(profiling.INSTALL_HINT, file=sys.stderr)
        return 1
    try:
        with bench_database() as url:
            print(profiling.profile_end_to_end(cfg, url))
    except KeyboardInterrupt:
        print("interrupted: benchmark database dropped", file=sys.stderr)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run; 0 on success, 1 on a failure, 130 when interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Nyala's benchmarks on PostgreSQL (loopback only); writes "
        "docs/benchmarks.md and docs/benchmarks.json.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 short repetitions (well under 2 minutes)"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the results, do not touch docs/"
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="one tiny repetition of everything (proves the runner works; implies --no-write)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: profile one end-to-end Engine run with pyinstrument (.[bench] extra)",
    )
    args = parser.parse_args(argv)
    cfg = TINY if args.tiny else QUICK if args.quick else FULL
    if args.tiny:
        args.no_write = True
    if args.profile:
        return _profile(cfg)
    command = "python -m bench" + {"quick": " --quick", "tiny": " --tiny"}.get(cfg.mode, "")
    signal.signal(signal.SIGTERM, _interrupt)  # a kill drops the database too
    print(f"{command}: {cfg.mode} mode, PostgreSQL at {ADMIN_URL}", file=sys.stderr)
    load_before = os.getloadavg()
    load = load_before[0]
    if load > 1.0:
        print(
            f"note: the machine is busy (load average {load:.2f}); figures will be lower",
            file=sys.stderr,
        )
    try:
        with bench_database() as url:
            report = main_async(cfg, url, command)
    except KeyboardInterrupt:
        print("interrupted: servers stopped, benchmark database dropped", file=sys.stderr)
        return 130
    load_after = os.getloadavg()
    report.notes.append(
        "Load average (1, 5, 15 min) before: "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; after: "
        + ", ".join(f"{x:.2f}" for x in load_after)
        + f" ({os.cpu_count()} cores)."
    )
    if args.no_write:
        print(markdown(report))
        return 0
    md, js = write(report)
    print()
    print(table(report.figures))
    print()
    for note in report.notes:
        print(f"- {note}")
    print(f"\nwrote {md} and {js}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
