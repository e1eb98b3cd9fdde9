"""Receipt rendering: issuing a receipt end to end beside a bare xhtml2pdf render.

Nyala: the safari app's :func:`apps.safari.documents.receipts.generate_receipt` for a
paid payment that has no receipt yet, one at a time, with the documents service the
running app made (its lifespan: the PDF renderer's worker processes, the timezone, the
branding): it locks the payment, takes the next number, loads the data, renders the PDF
in the render worker processes (off the event loop) and stores it with its SHA-256, in
one transaction. **Ceiling**: ``xhtml2pdf.pisa.pisaDocument`` on the same HTML
(the receipt template rendered for the same payment), in this process, nothing else.

While Nyala renders, a ticker in the same event loop sleeps 1 ms at a time and records
how late each wake-up is: the event-loop lag a server would see while receipts render.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import time
from dataclasses import dataclass, field

from apps.safari.documents import SafariDocuments
from apps.safari.documents.receipts import (
    generate_receipt,
    load_receipt_data,
    render_receipt_html,
)
from storage import Database


@dataclass
class LagTicker:
    """Event-loop lag: how late ``asyncio.sleep(interval)`` wakes up, in milliseconds."""

    interval: float = 0.001
    lags_ms: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags_ms.append(max(0.0, (time.perf_counter() - before - self.interval) * 1000))

    async def __aenter__(self) -> LagTicker:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def receipt_html(db: Database, documents: SafariDocuments, payment_id: int) -> str:
    """The receipt HTML of ``payment_id`` as Nyala would render it (nothing stored)."""
    async with db.read() as session:
        data = await load_receipt_data(
            session,
            payment_id,
            number="RCT-2026-999999",
            issued_at=dt.datetime.now(dt.UTC),
            tz=documents.tz,
        )
    return render_receipt_html(data, documents.branding())


def bare_render_ms(html: str) -> float:
    """One bare xhtml2pdf render of ``html`` in this process, in milliseconds."""
    from xhtml2pdf import pisa

    started = time.perf_counter()
    out = io.BytesIO()
    status = pisa.pisaDocument(html, dest=out, encoding="utf-8")
    elapsed = (time.perf_counter() - started) * 1000
    if status.err:
        raise RuntimeError("xhtml2pdf failed on the receipt HTML")
    return elapsed


async def nyala_render_ms(
    db: Database, documents: SafariDocuments, payment_ids: list[int]
) -> tuple[list[float], list[float]]:
    """Issue each payment's receipt in turn; (latencies ms, event-loop lags ms)."""
    latencies: list[float] = []
    async with LagTicker() as ticker:
        for payment_id in payment_ids:
            started = time.perf_counter()
            pdf = await generate_receipt(db, payment_id, documents)
            latencies.append((time.perf_counter() - started) * 1000)
            if not pdf.startswith(b"%PDF"):
                raise RuntimeError(f"receipt of payment {payment_id} is not a PDF")
    return latencies, ticker.lags_ms
