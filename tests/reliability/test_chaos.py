"""The chaos run in its CI size: nothing lost, nothing duplicated, nobody stuck."""

from __future__ import annotations

import os

import pytest

from tests.reliability.chaos import SIZES, run
from tests.reliability.cluster import ClusterError, postgres_bindir
from tests.reliability.results import record


@pytest.fixture
def postgres_binaries() -> None:
    try:
        postgres_bindir()
    except ClusterError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.mark.usefixtures("postgres_binaries")
@pytest.mark.slow
async def test_the_chaos_run_loses_and_duplicates_nothing() -> None:
    result = await run("ci", SIZES["ci"])
    record("chaos", *result.rows())
    assert result.problems == [], result.line()
    assert result.postgres_restarts == 1
    assert result.servers_killed == 1
    assert result.inbound_done == result.messages
    assert result.unexplained_duplicates == 0
    assert result.duplicates_after_timeout == result.faults_injected.get("timeout_after", 0)
    assert result.stuck_sessions == 0
