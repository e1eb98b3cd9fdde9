"""Fixtures of the safari app's tests: a database with the framework's and the safari
branch (each backend), the running app (its services) and a chat harness using them.

One PDF renderer serves the whole run (its worker processes start once); each test's
runtime uses it instead of starting its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from apps.safari import app
from apps.safari.documents import SafariDocuments
from apps.safari.payments import PaymentProviders
from documents import PdfRenderer
from flows.engine import Engine
from flows.runtime import Runtime, Services
from flows.testing import ChatFactory, ChatTester, Clock
from storage import Database, utcnow
from tests.conftest import BACKENDS, Databases


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, databases: Databases) -> str:
    """An empty database with the framework's and the safari app's tables."""
    return databases.url(str(request.param), tmp_path, app.migration_locations)


@pytest.fixture(scope="session")
def renderer() -> Iterator[PdfRenderer]:
    """The run's PDF renderer (one worker process)."""
    shared = PdfRenderer(workers=1)
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
def documents(renderer: PdfRenderer) -> SafariDocuments:
    """What the safari documents are made with: the shared renderer, the app's timezone
    and the shipped branding."""
    return SafariDocuments(renderer, app.timezone)


@pytest_asyncio.fixture
async def runtime(db: Database, renderer: PdfRenderer) -> AsyncIterator[Runtime]:
    """The safari app running on ``db`` (sandboxed): its lifespans ran, its services are
    ready (the sandbox Omari, the receipt hook, the Omari callback)."""
    services = Services()
    services.provide(PdfRenderer, renderer)
    async with Runtime.start(app, db, sandbox=True, services=services) as running:
        yield running


@pytest.fixture
def providers(runtime: Runtime) -> PaymentProviders:
    """The running app's payment providers (tests install their own)."""
    return runtime.services.get(PaymentProviders)


@pytest.fixture
def nyala_chat(runtime: Runtime) -> ChatFactory:
    """``await nyala_chat(app, phone=..., clock=...)``: a chat with the running app's
    services (the shipped fixture's engine has none)."""

    async def make(
        chat_app: Any, phone: str = "263770000001", clock: Clock | None = None, **kw: Any
    ) -> ChatTester:
        kw.setdefault("services", runtime.services)
        engine = Engine(runtime.db, chat_app, clock=clock or utcnow, **kw)
        return ChatTester(engine, phone, clock)

    return make
