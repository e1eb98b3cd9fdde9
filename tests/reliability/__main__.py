"""``python -m tests.reliability``: run every reliability proof and rewrite its page.

Runs the chaos run (``--size full`` by default), then the fuzzing, abuse and data-safety
tests with ``NYALA_FUZZ_EXAMPLES`` generated cases per property (10,000 in full size),
each writing its figures to a results folder, and finally assembles
``docs/reliability.md`` from them (:mod:`tests.reliability.report`). Exits non-zero when
any invariant failed; the page is written either way, showing what did not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.reliability import chaos, report
from tests.reliability.results import FUZZ_ENV, RESULTS_ENV, record

ROOT = Path(__file__).resolve().parents[2]
FUZZ_EXAMPLES = {"ci": 200, "full": 10_000}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability",
        description="Chaos run, fuzzing and abuse tests; rewrites docs/reliability.md.",
    )
    parser.add_argument("--size", choices=sorted(chaos.SIZES), default="full")
    parser.add_argument("--fuzz-examples", type=int, help="cases per fuzzed property")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args(argv)
    examples = args.fuzz_examples or FUZZ_EXAMPLES[args.size]
    with tempfile.TemporaryDirectory(prefix="nyala-reliability-") as folder:
        os.environ[RESULTS_ENV] = folder
        print(f"chaos run ({args.size})…", flush=True)
        result = asyncio.run(chaos.run(args.size, chaos.SIZES[args.size]))
        print(result.line(), flush=True)
        for problem in result.problems[:20]:
            print(f"  - {problem}")
        record("chaos", *result.rows())
        print(f"fuzzing ({examples:,} cases per property), abuse and data-safety tests…")
        env = {**os.environ, FUZZ_ENV: str(examples), RESULTS_ENV: folder}
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/reliability", "--deselect",
             "tests/reliability/test_chaos.py::test_the_chaos_run_loses_and_duplicates_nothing"],
            cwd=ROOT, env=env, check=False,
        )  # fmt: skip
        command = "python -m tests.reliability" + (
            f" --size {args.size}" if args.size != "full" else ""
        )
        report.write(Path(folder), args.out, command=command, ci_examples=FUZZ_EXAMPLES["ci"])
        print(f"wrote {args.out}")
    return 0 if result.ok and tests.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
