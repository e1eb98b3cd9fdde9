"""HTML → PDF with xhtml2pdf, locked down, in worker processes owned by a renderer object.

:func:`html_to_pdf` converts under :data:`RESOURCE_POLICY_OPTIONS`, a resource policy
that allows no network access and no local file reads at all: whatever the markup asks
for (``<img src>``, ``@import``, ``@font-face``, backgrounds, ``<pdf:*>`` tags) is
refused and left out. ``data:`` URIs are part of the document (a logo is embedded that
way, see :mod:`documents.branding`).

xhtml2pdf is pure Python holding the GIL: in a thread it would stall the event loop for
the whole render. :class:`PdfRenderer` runs it in a process pool it creates on first use
(spawned, never forked from a process with an event loop) and shuts down on
:meth:`PdfRenderer.close`. An app makes one when it starts and puts it in its runtime's
services; no module holds a pool::

    renderer = runtime.services.provide(PdfRenderer, PdfRenderer(workers=2))
    pdf = await renderer.render(html)
    ...
    renderer.close()
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final

from documents.errors import DocumentError, RenderError

__all__ = ["PDF_MIME", "RESOURCE_POLICY_OPTIONS", "PdfRenderer", "html_to_pdf"]

PDF_MIME: Final = "application/pdf"

# What xhtml2pdf may fetch while rendering: nothing. ``allow_remote=False`` refuses every
# http(s) URL before any connection; ``base_dir=None`` (with no extra roots) names no
# directory a document may read, which refuses every local path and file: URL; other
# schemes are refused anyway. ``ResourceAccessPolicy.server`` also turns on its limits on
# size, depth and time.
RESOURCE_POLICY_OPTIONS: Final[dict[str, Any]] = {
    "base_dir": None,
    "allow_remote": False,
    "allow_private_networks": False,
    "extra_roots": (),
    "allow_local_outside_base": False,
    "max_render_seconds": 60,
}


def html_to_pdf(html: str) -> bytes:
    """Convert HTML to PDF with xhtml2pdf, allowed to fetch nothing (in this process).

    Raises:
        RenderError: xhtml2pdf reported errors.
    """
    from xhtml2pdf import pisa  # heavy: imported where PDFs are made (the workers)
    from xhtml2pdf.config.resources import ResourceAccessPolicy

    policy = ResourceAccessPolicy.server(**RESOURCE_POLICY_OPTIONS)
    out = io.BytesIO()
    status = pisa.pisaDocument(
        html, dest=out, encoding="utf-8", resource_policy=policy, raise_exception=True
    )
    if status.err:
        raise RenderError(f"the PDF could not be rendered ({status.err} errors)")
    return out.getvalue()


class PdfRenderer:
    """Renders HTML to PDF in worker processes, off the event loop.

    Args:
        workers: worker processes (at least 1), started on the first render.
    """

    def __init__(self, workers: int = 2) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._pool else "idle")
        return f"PdfRenderer(workers={self.workers}, {state})"

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RenderError("the PDF renderer is closed")
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
                )
            return self._pool

    async def render(self, html: str) -> bytes:
        """The PDF of ``html`` (:func:`html_to_pdf` in a worker process).

        Raises:
            RenderError: the render failed, its worker died, or the renderer is closed.
        """
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, html_to_pdf, html)
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:
                    self._pool = None  # the next render starts new workers
            raise RenderError(f"the render worker died: {exc}") from exc
        except DocumentError:
            raise
        except Exception as exc:
            raise RenderError(f"the PDF could not be rendered: {exc}") from exc

    def close(self) -> None:
        """Stop the worker processes; later renders raise :class:`RenderError`."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._closed = True
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
