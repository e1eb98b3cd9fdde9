"""Nyala's benchmarks: ``python -m bench [--quick]``.

Each figure is measured beside a ceiling in the same run, on the same machine:

- webhook acknowledgement (requests/s, p50/p99 latency) of ``nyala serve`` in its own
  process, against a bare aiohttp handler that only checks the HMAC and parses the JSON;
- end-to-end processed messages/s (inbound → state transition → step events → reply row)
  by the :class:`flows.Engine`, against a bare asyncpg transaction doing four statements;
- webhook → reply row through the server (a flood of signed POSTs until the last inbound
  row is processed);
- the python-statemachine machine alone: rebuild at a stored state plus one event.

The run creates its own PostgreSQL database (``nyala_bench_<random>``) and drops it at the
end, writes ``docs/benchmarks.md`` and ``docs/benchmarks.json`` and prints the table.
Performance is measured here only, never by timed assertions in tests.
"""
