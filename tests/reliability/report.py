"""Assemble ``docs/reliability.md`` from the rows the runs recorded.

``python -m tests.reliability.report RESULTS_DIR [--out docs/reliability.md]`` — normally
called by ``python -m tests.reliability``, which produces RESULTS_DIR first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tests.reliability.results import Row, load_rows

ROOT = Path(__file__).resolve().parents[2]
# The table's order: the chaos run first, then fuzzing, abuse, data safety.
ORDER = ["chaos", "fuzz", "abuse", "console", "secrets", "backup"]

INTRO = """\
# Reliability and security

What Nyala survives, measured by runs anyone can repeat. This page is assembled from
the rows that `{command}` and its parts (`python -m tests.reliability.chaos`, the tests
in `tests/reliability`) record as they run — no figure is typed by hand; last assembled
{date} ({machine}; raw rows: [`reliability.json`](reliability.json)). CI runs the
same tests in a smaller size on every change (`python -m pytest tests/reliability`: the
chaos run with a few hundred messages, {ci_examples} generated cases per fuzzed
property). The chaos run and the webhook fuzzing drive framework-only apps (a survey bot,
the test café); the Omari callbacks, receipts, cron jobs, console and backup scenarios run
the safari app (`apps/safari`) on a database migrated with its branch.

| scenario | what was injected | load | observed | held |
|---|---|---|---|---|
"""

INVARIANTS = """
## What the chaos run checks

`python -m tests.reliability.chaos --size full` (or `--size ci`, `--conversations N`)
starts a private PostgreSQL cluster in a temporary folder on a free loopback port (the
shared server is never touched), two `nyala serve` processes on it and the fake Graph API,
and plays Meta: signed webhooks to either server, 30 % of them delivered again (some racing
the original), shuffled within bursts, a contact's two messages sometimes batched in one
webhook in reverse order, failed deliveries retried. Mid-run it kills one server with
SIGKILL and starts it again, and crashes PostgreSQL (`pg_ctl stop -m immediate`) and
restarts it. The fake answers 20 % of sends with 429, 500, 503 or 131056 and 5 % with a
timeout, half of them after accepting the message. Everything stays on loopback and the
run stops by itself. Afterwards it checks, from the database and the fake's request log:

- every inbound message stored once and processed once, in each contact's order;
- each contact's replies, flow sessions and step events are exactly those of a fault-free
  reference run of the same script through the engine (so nothing was processed twice,
  skipped or reordered, and step events match every session's final state);
- every reply accepted by "Meta" exactly once, except resends whose first attempt was
  accepted but whose answer never arrived: after a timeout-after-accept (their number
  must equal the number injected) or a crash (accepted, then the process died or the
  database was down before the answer was recorded); the server counts each such resend
  as ambiguous (`outbound_messages.ambiguous_resends`, `nyala_outbound_ambiguous_resends`),
  and the check requires its count to cover both;
- no flow session left `active` past its flow's timeout.

It prints one line with the counts and exits non-zero when any invariant fails.

## What is not promised

- **Exactly-once sending after a crash.** The Graph API has no idempotency key: when a
  sender dies (or the database goes away) between Meta accepting a message and Nyala
  recording its id, the message is sent again. Such resends are counted as ambiguous,
  never hidden; the table shows how many a crash caused.
- **Order across late redeliveries.** Messages are processed in the order of the user's
  timestamps among those received. A message that Meta first delivers after a later one
  was already processed is processed after it (the simulated Meta delivers a contact's
  messages in order and shuffles everything else).
- **A sender that stalls past its lease.** A sender holds a claimed reply for
  `NYALA_SEND_LEASE` seconds (default 60); if its process is starved of CPU or database
  connections for longer than that before Meta's answer is recorded, another process takes
  the reply over and sends it again (counted as ambiguous). Keep the lease well above
  `NYALA_GRAPH_TIMEOUT` (default 15 s). The chaos run uses 30 s against a 1 s timeout; in
  an earlier run with a 15 s lease, a burst of CLI processes on the same two cores
  starved the servers long enough for some replies to go out twice.
- **Giving up.** A reply that fails 8 times in a row on retryable errors (about four
  minutes of backoff) is marked `failed` and listed in the console's outbox for a retry.
- **The pair rate limit.** After Meta's 131056 a recipient's messages back off 4ⁿ seconds
  (n: the reply's consecutive 131056 answers), as Meta asks; the chaos run injects it on
  cue so that a bounded run is not held for minutes by chance.

## Backup and restore (PostgreSQL)

Everything Nyala keeps — conversations, analytics, the operators and audit log, the app's
own tables (for the safari app: bookings, payments, receipts) and uploaded files (ID
documents and proofs are stored in the database, in `stored_files`) — is in one
PostgreSQL database, which holds the framework's tables and those of the one app it
serves; so one logical dump is a complete backup:

```bash
# Back up (consistent snapshot; safe while nyala serve runs):
pg_dump --format=custom --file nyala-$(date +%F).dump "$DATABASE_URL"

# Restore into a new, empty database, then point DATABASE_URL at it:
createdb nyala_restored
pg_restore --no-owner --exit-on-error --dbname postgresql://USER@HOST/nyala_restored \\
    nyala-YYYY-MM-DD.dump
DATABASE_URL=postgresql://USER@HOST/nyala_restored nyala --app APP migrate   # no-op if current
```

Use the `postgresql://` form of the URL for the PostgreSQL tools (not
`postgresql+asyncpg://`). The dump holds customers' personal data and ID documents: store
it encrypted and with the same access rules as the database. The round trip is tested
(`tests/reliability/test_data_safety.py`, on the safari app's database: every row of every
table identical afterwards, the schema revision kept (the head of the safari branch,
which stands on the framework's), the app's CLI working on the copy).

## Run it yourself

```bash
python -m tests.reliability              # full size: chaos run + fuzzing (10,000 cases
                                         # per property) + abuse tests; rewrites this page
python -m tests.reliability --size ci    # the CI sizes, a few minutes
python -m tests.reliability.chaos --size ci   # only the chaos run, one line of counts
```

It needs the PostgreSQL server binaries (`initdb`, `pg_ctl`; Debian: `postgresql`), the
client tools (`pg_dump`, `pg_restore`) and the test PostgreSQL on 127.0.0.1:5432 that the
rest of the suite uses.
"""


def _rank(key: str) -> tuple[int, str]:
    for index, prefix in enumerate(ORDER):
        if key.startswith(prefix):
            return index, key
    return len(ORDER), key


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(
    rows: dict[str, list[Row]], *, command: str, ci_examples: int, when: dt.datetime
) -> str:
    """The page's Markdown."""
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        INTRO.format(
            command=command,
            date=when.strftime("%Y-%m-%d %H:%M UTC"),
            machine=machine,
            ci_examples=f"{ci_examples:,}",
        )
    ]
    for key in sorted(rows, key=_rank):
        for row in rows[key]:
            held = "yes" if row.passed else "**no**"
            lines.append(
                f"| {_cell(row.scenario)} | {_cell(row.injected)} | {_cell(row.load)} | "
                f"{_cell(row.observed)} | {held} |\n"
            )
    return "".join(lines) + INVARIANTS


def write(folder: Path, out: Path, *, command: str, ci_examples: int = 200) -> None:
    """Write ``out`` and ``reliability.json`` beside it from the rows in ``folder``."""
    rows = load_rows(folder)
    if not rows:
        raise SystemExit(f"no recorded rows in {folder}")
    now = dt.datetime.now(dt.UTC)
    out.write_text(render(rows, command=command, ci_examples=ci_examples, when=now))
    raw = {key: [asdict(r) for r in value] for key, value in sorted(rows.items())}
    (out.parent / "reliability.json").write_text(
        json.dumps({"generated": now.isoformat(timespec="seconds"), "rows": raw}, indent=2,
                   ensure_ascii=False) + "\n"
    )  # fmt: skip


def rerender(raw: Path, out: Path, *, command: str, ci_examples: int = 200) -> None:
    """Write the page again from a ``reliability.json`` (the same figures, new text)."""
    saved = json.loads(raw.read_text())
    rows = {key: [Row(**item) for item in value] for key, value in saved["rows"].items()}
    when = dt.datetime.fromisoformat(saved["generated"])
    out.write_text(render(rows, command=command, ci_examples=ci_examples, when=when))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.report")
    parser.add_argument(
        "results", type=Path, help="the folder the runs recorded rows in, or a reliability.json"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    parser.add_argument("--command", default="python -m tests.reliability")
    args = parser.parse_args(argv)
    if args.results.is_file():
        rerender(args.results, args.out, command=args.command)
    else:
        write(args.results, args.out, command=args.command)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
