"""Fuzzing: the webhook (parser and endpoint) and the flow-file loader never crash.

Property-based tests (Hypothesis). Each property generates ``NYALA_FUZZ_EXAMPLES`` cases
(200 by default, as in CI; ``python -m tests.reliability`` runs 10,000 per property).

* The webhook parser turns any JSON, and mutations of every example in Meta's spec, into a
  batch without raising, and what it keeps can be stored as JSON.
* ``POST /webhook`` on a real server (both backends) answers random bodies and signatures
  with exactly the status its contract names: 401 unsigned, 403 wrongly signed, 400 signed
  but not JSON, 200 signed JSON of any shape, never a 500; afterwards every stored message
  was processed and nothing was logged as an error.
* The flow loader turns random text and random flow documents into a flow or a
  :class:`FlowDefinitionError` naming the file, never another exception.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from apps.safari import app as safari
from apps.safari.omari import CALLBACK_PATH
from apps.safari.omari_callback import SIGNATURE_HEADER as OMARI_HEADER
from apps.safari.omari_callback import signature as omari_signature
from bot.settings import Settings
from bot.whatsapp.payloads import WebhookBatch, parse_webhook
from bot.whatsapp.webhook import SIGNATURE_HEADER, signature
from flows import App, FlowContext, FlowDefinitionError, load_flow_text
from flows.app import Registry
from storage import Database, InboundMessage, InboundStatus
from tests.bot.test_payloads import documents, json_values, spec_examples
from tests.bot.webhooks import APP_SECRET, VERIFY_TOKEN
from tests.cafe import ORDER_FLOW, build_app
from tests.conftest import empty_tables
from tests.reliability.chaos_app import SURVEY_FLOW
from tests.reliability.results import Row, fuzz_examples, record
from tests.reliability.threaded import ThreadedServer

EXAMPLES = fuzz_examples()
OMARI_SECRET = "fuzz-omari-secret"
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_fresh = itertools.count(1)


class Counter(dict[str, int]):
    """Counts that start at zero."""

    def __missing__(self, key: str) -> int:
        return 0


# --- strategies ------------------------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _fresh_ids(node: Any) -> Any:
    """Give every message id a new value, so mutations reach processing, not dedup."""
    if isinstance(node, dict):
        return {
            k: (f"wamid.FUZZ{next(_fresh)}" if k == "id" and isinstance(v, str) and
                v.startswith("wamid.") else _fresh_ids(v))
            for k, v in node.items()
        }  # fmt: skip
    if isinstance(node, list):
        return [_fresh_ids(v) for v in node]
    return node


@st.composite
def mutated_examples(draw: st.DrawFn) -> Any:
    """One of Meta's spec examples with a few nodes replaced, deleted or duplicated."""
    examples = spec_examples()
    document = copy.deepcopy(examples[draw(st.sampled_from(sorted(examples)))])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(_paths(document))[1:] or [()]))
        if not path:
            break
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "duplicate", "wrap"]))
        if action == "replace":
            parent[last] = draw(json_values)
        elif action == "delete":
            del parent[last]
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        else:
            parent[last] = [parent[last]]
    return _fresh_ids(document) if draw(st.booleans()) else document


webhook_documents = st.one_of(documents, mutated_examples())


# --- the parser ------------------------------------------------------------------------


def test_the_parser_never_raises_and_keeps_only_storable_json() -> None:
    cases = Counter()

    @FUZZ
    @given(webhook_documents)
    def check(document: Any) -> None:
        cases["all"] += 1
        batch = parse_webhook(document)
        assert isinstance(batch, WebhookBatch)
        for incoming in batch.messages:
            cases["messages"] += 1
            # What is stored must be strict JSON (PostgreSQL's jsonb refuses NaN).
            json.dumps(incoming.message.to_payload(), allow_nan=False)
        cases["statuses"] += len(batch.statuses)
        cases["ignored"] += len(batch.ignored)

    check()
    record(
        "fuzz-parser",
        Row(
            scenario="Fuzzed webhook payloads (parser)",
            injected="random JSON and mutations of Meta's 16 spec examples "
            "(nodes replaced, deleted, duplicated, wrapped)",
            load=f"{cases['all']:,} generated payloads",
            observed=f"0 exceptions; {cases['messages']:,} messages, {cases['statuses']:,} "
            f"statuses and {cases['ignored']:,} ignored updates parsed, all storable as "
            "strict JSON",
        ),
    )


# --- the endpoint ----------------------------------------------------------------------


def _settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY_TOKEN,
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
def server(database_url: str, db: Database, tmp_path: Path) -> Iterator[ThreadedServer]:
    """A sandboxed server of the test café (replies stored, not sent) on both backends."""
    del db  # emptied the PostgreSQL tables
    with ThreadedServer(_settings(database_url), build_app(tmp_path / "flows")) as running:
        yield running


async def _emptied(database_url: str) -> None:
    database = Database(database_url)
    try:
        await empty_tables(database)
    finally:
        await database.dispose()


@pytest.fixture
def safari_server(
    safari_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ThreadedServer]:
    """A sandboxed server of the safari app (its Omari callback route, whose secret the
    app reads from ``OMARI_CALLBACK_SECRET``) on both backends, its tables empty."""
    asyncio.run(_emptied(safari_database_url))
    for name in ("OMARI_API_BASE", "OMARI_MERCHANT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMARI_CALLBACK_SECRET", OMARI_SECRET)
    with ThreadedServer(_settings(safari_database_url), safari) as running:
        yield running


def _expected(signing: str, header: str, body: bytes) -> int:
    if signing == "none" or (signing == "garbage" and not header.strip()):
        return 401
    if signing in ("wrong", "garbage"):
        return 403
    try:
        json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return 400
    return 200


bodies = st.one_of(
    st.binary(max_size=400),
    webhook_documents.map(lambda d: json.dumps(d).encode()),
    st.text(max_size=200).map(str.encode),
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


def _inbound(server: ThreadedServer, database_url: str) -> list[InboundStatus]:
    async def statuses() -> list[InboundStatus]:
        db = Database(database_url)
        try:
            async with db.read() as session:
                return list((await session.scalars(select(InboundMessage.status))).all())
        finally:
            await db.dispose()

    result = server.run(statuses())
    assert isinstance(result, list)
    return result


def test_the_webhook_answers_every_body_as_its_contract_says(
    server: ThreadedServer, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    answers = Counter()

    @FUZZ
    @given(bodies, st.sampled_from(["none", "wrong", "garbage", "right"]), header_text)
    def check(body: bytes, signing: str, garbage: str) -> None:
        headers = {"Content-Type": "application/json"}
        if signing == "right":
            headers[SIGNATURE_HEADER] = signature(APP_SECRET, body)
        elif signing == "wrong":
            headers[SIGNATURE_HEADER] = signature("not-the-secret", body)
        elif signing == "garbage":
            headers[SIGNATURE_HEADER] = garbage
        answer = server.request("POST", "/webhook", body, headers)
        answers[str(answer.status)] += 1
        assert answer.status == _expected(signing, garbage, body), (answer.status, body[:200])

    check()
    # Everything stored was processed (the cafe bot answers anything), and no handler or
    # worker logged an error.
    deadline = time.monotonic() + 60
    while pending := [s for s in _inbound(server, database_url) if s is InboundStatus.PENDING]:
        assert time.monotonic() < deadline, f"{len(pending)} messages never processed"
        time.sleep(0.2)
    statuses = _inbound(server, database_url)
    assert InboundStatus.FAILED not in statuses
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors[0].getMessage()
    backend = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    record(
        f"fuzz-webhook-{backend.lower()}",
        Row(
            scenario=f"Fuzzed `POST /webhook` ({backend})",
            injected="random bytes, text and JSON (random and mutated spec examples), "
            "unsigned, wrongly signed, garbage or correctly signed",
            load=f"{sum(answers.values()):,} requests to a running server",
            observed=", ".join(f"{k}: {v:,}" for k, v in sorted(answers.items()))
            + f"; 0 × 500; {len(statuses):,} messages stored, all processed, "
            "0 errors logged",
        ),
    )


OMARI_KEYS = ["event_id", "reference", "merchant_reference", "amount", "currency", "status",
              "timestamp", "reason"]  # fmt: skip
omari_values = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["success", "failed", "USD", "1", "50.00", "-1", "1e999", "NaN"])
    | st.integers(1_700_000_000, 1_900_000_000) | json_values
)  # fmt: skip
VALID_EVENT = {
    "event_id": "evt_1", "reference": "OM-1", "merchant_reference": "1", "amount": "10.00",
    "currency": "USD", "status": "success", "timestamp": 0,
}  # fmt: skip


@st.composite
def near_valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed event (fresh, for a payment that may exist) with a field or two off."""
    event: dict[str, Any] = {**VALID_EVENT, "timestamp": int(time.time()),
                             "event_id": f"evt_{next(_fresh)}",
                             "merchant_reference": str(draw(st.integers(0, 5)))}  # fmt: skip
    for key in draw(st.lists(st.sampled_from(OMARI_KEYS), max_size=2)):
        if draw(st.booleans()):
            event[key] = draw(omari_values)
        else:
            event.pop(key, None)
    return event


omari_events = (
    st.dictionaries(st.sampled_from(OMARI_KEYS), omari_values, max_size=8)
    | json_values
    | near_valid_events()
)


def test_the_omari_callback_answers_every_signed_body_without_crashing(
    safari_server: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = safari_server
    caplog.set_level(logging.WARNING)
    answers = Counter()

    @FUZZ
    @given(omari_events.map(lambda d: json.dumps(d).encode()) | st.binary(max_size=200))
    def check(body: bytes) -> None:
        headers = {OMARI_HEADER: omari_signature(OMARI_SECRET, body)}
        answer = server.request("POST", CALLBACK_PATH, body, headers)
        answers[str(answer.status)] += 1
        assert answer.status in (400, 404, 409), (answer.status, body[:200], answer.body)

    check()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors[0].getMessage()
    record(
        "fuzz-omari",
        Row(
            scenario="Fuzzed Omari callbacks",
            injected="correctly signed random bytes, random JSON and random events built from "
            "the callback's fields (types, amounts, timestamps, statuses)",
            load=f"{sum(answers.values()):,} requests (per backend)",
            observed=", ".join(f"{k}: {v:,}" for k, v in sorted(answers.items()))
            + "; 0 × 500, 0 errors logged",
        ),
    )


# --- the flow loader ----------------------------------------------------------------


def _registry() -> Registry:
    app = App("fuzz")

    @app.action()
    def save_it(ctx: FlowContext) -> None: ...

    @app.condition()
    def known(ctx: FlowContext) -> bool:
        return True

    @app.query()
    def rows(ctx: FlowContext) -> list[tuple[str, str]]:
        return []

    return app.registry


REGISTRY = _registry()
FLOW_KEYS = [
    "flow", "description", "timeout", "triggers", "menu", "start", "steps", "ask", "expect",
    "save", "do", "skip_if", "buttons", "choices", "list", "on", "next", "final", "say",
    "repeat", "if", "from", "integer", "min", "max", "person_name", "email", "date", "text",
]  # fmt: skip
FLOW_WORDS = ["save_it", "known", "rows", "done", "ask_it", "yes", "no", "30m", "{n}", "1"]
yaml_scalars = (
    st.none() | st.booleans() | st.integers(-5, 50) | st.sampled_from(FLOW_WORDS)
    | st.text(max_size=12)
)  # fmt: skip
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(FLOW_KEYS + FLOW_WORDS) | st.text(max_size=6), children, max_size=4
        )
    ),
    max_leaves=20,
)
flow_documents = st.builds(
    lambda name, steps, extra: {"flow": name, "steps": steps, **extra},
    st.sampled_from(["tiny", "x", "", "flow name", "order_flow"]) | st.text(max_size=8),
    st.dictionaries(st.sampled_from(FLOW_WORDS) | st.text(max_size=6), yaml_values, max_size=4),
    st.dictionaries(st.sampled_from(FLOW_KEYS), yaml_values, max_size=3),
)


@st.composite
def mutated_flows(draw: st.DrawFn) -> str:
    """A valid flow file with one line dropped, duplicated or altered."""
    lines = draw(st.sampled_from([ORDER_FLOW, SURVEY_FLOW])).splitlines()
    index = draw(st.integers(0, len(lines) - 1))
    action = draw(st.sampled_from(["drop", "duplicate", "indent", "replace", "truncate"]))
    if action == "drop":
        del lines[index]
    elif action == "duplicate":
        lines.insert(index, lines[index])
    elif action == "indent":
        lines[index] = " " * draw(st.integers(1, 5)) + lines[index]
    elif action == "replace":
        key, _, _ = lines[index].partition(":")
        value = draw(yaml_scalars)
        lines[index] = f"{key}: {json.dumps(value)}"
    else:
        lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
    return "\n".join(lines)


flow_texts = st.one_of(
    st.text(max_size=300),
    flow_documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    mutated_flows(),
)


def test_the_flow_loader_fails_only_with_a_clear_error() -> None:
    outcomes = Counter()

    @FUZZ
    @given(flow_texts)
    def check(text: str) -> None:
        try:
            spec = load_flow_text(text, REGISTRY, path="flows/fuzzed.yaml")
        except FlowDefinitionError as exc:
            outcomes["rejected"] += 1
            message = str(exc)
            assert message.startswith("flows/fuzzed.yaml"), message
            assert "\n" not in message.strip(), message
            assert "Traceback" not in message
        else:
            outcomes["loaded"] += 1
            assert spec.name and spec.initial in spec.state_ids
            assert math.isfinite(spec.timeout.total_seconds())

    check()
    record(
        "fuzz-loader",
        Row(
            scenario="Fuzzed flow files (loader)",
            injected="random text, random flow documents from the flow-file vocabulary, "
            "valid flows with a line dropped, duplicated, re-indented, replaced or cut",
            load=f"{sum(outcomes.values()):,} generated files",
            observed=f"{outcomes['rejected']:,} rejected with a one-line FlowDefinitionError "
            f"naming the file, {outcomes['loaded']:,} loaded; 0 other exceptions",
        ),
    )


def test_the_fuzz_size_reaches_hypothesis() -> None:
    """The examples setting is honoured (CI: 200 per property; full run: 10,000)."""
    seen = 0

    @FUZZ
    @given(st.integers())
    def check(_: int) -> None:
        nonlocal seen
        seen += 1

    check()
    assert seen == EXAMPLES


def test_a_flow_file_broken_under_a_running_app_keeps_the_last_good_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the chaos run: a server restarting beside another rewrote a flow file, and
    a message processed while it was half written failed. A file that changes into
    something unreadable now leaves the loaded version in use, with one error logged."""
    app = build_app(tmp_path / "flows")
    before = app.flow("order_flow")
    flow_file = tmp_path / "flows" / "order_flow.yaml"
    flow_file.write_text("")  # truncated, as while being rewritten
    assert app.flow("order_flow") is before
    assert app.flow("order_flow") is before
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "still using the version loaded before" in errors[0]
    flow_file.write_text(ORDER_FLOW.replace("How many?", "How many cups?"))
    assert app.flow("order_flow").step("ask_count").ask == "How many cups?"
    with pytest.raises(FlowDefinitionError):  # a fresh app still refuses a broken file
        flow_file.write_text("")
        build_app_without_rewrite = App("x", flows_dir=tmp_path / "flows")
        build_app_without_rewrite.flows  # noqa: B018 - loading is the point
