# ruff: noqa: F811 - the console fixture is imported by name, and tests take it by name
"""The operator console under attack, found by crawling rather than from a list.

An admin crawls the console from its home page, following every link and collecting every
form, so a page added later is attacked without anyone listing it. Then every URL found is
tried without a session (only the login page and static files answer), every form is
posted by a viewer (nothing changes in the database), without a CSRF token (refused,
nothing changes), and with SQL and HTML in every text field (never a 500, nothing
executed, every page escapes it afterwards); downloads are tried with path traversal.
It crawls the safari app's console (the framework's pages and the app's bookings, payments
and summaries pages). (``tests/console`` and ``tests/apps/safari/test_console_*.py`` check
each route by hand; this is the sweep over what a browser sees.)
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from sqlalchemy import select, text

from apps.safari import app as safari
from bot.console import sessions
from storage import AuditEntry, Contact, Database
from storage.models import Base
from storage.operators import ConsoleSession, LoginAttempt, OperatorRole
from tests.apps.safari.test_console_operations import (  # noqa: F401 - the fixture `console`
    SafariConsole,
    console,
)
from tests.console.conftest import Browser
from tests.reliability.results import Row, record

ATTACKS = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "' OR '1'='1' --",
    "1; DROP TABLE payments; --",
    "%' UNION SELECT password_hash FROM operators --",
]
# Tables a request may write without changing anything that matters: who logged in and
# the audit trail (a refused action is audited too).
BOOKKEEPING = {
    ConsoleSession.__tablename__,
    LoginAttempt.__tablename__,
    AuditEntry.__tablename__,
}


@pytest.fixture
def database_url(safari_database_url: str) -> str:
    """The safari app's console (the richest there is): its tables too."""
    return safari_database_url


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    text_fields: list[str] = field(default_factory=list)


class _Links(HTMLParser):
    def __init__(self, page_url: str) -> None:
        super().__init__()
        self.page_url = page_url
        self.links: set[str] = set()
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.add(urljoin(self.page_url, a["href"]))
        elif tag == "form":
            action = urljoin(self.page_url, a.get("action") or self.page_url)
            self._form = Form(action, (a.get("method") or "get").lower())
            self.forms.append(self._form)
        elif self._form is not None and tag in ("input", "textarea") and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._form.fields[a["name"]] = a.get("value", "")
            if tag == "textarea" or kind in ("text", "search", "email", "tel", "password"):
                self._form.text_fields.append(a["name"])
        elif self._form is not None and tag == "select" and a.get("name"):
            self._select = a["name"]
            self._form.fields.setdefault(a["name"], "")
        elif (
            tag == "option"
            and self._form is not None
            and self._select is not None
            and not self._form.fields.get(self._select)
        ):
            self._form.fields[self._select] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def _local(url: str, base: str) -> str | None:
    """The console path of a same-origin URL (``None`` for elsewhere)."""
    parts = urlsplit(url)
    if parts.netloc and f"{parts.scheme}://{parts.netloc}" != base:
        return None
    if not parts.path.startswith("/console"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class Crawl:
    pages: dict[str, int] = field(default_factory=dict)  # path -> status
    forms: dict[tuple[str, str], Form] = field(default_factory=dict)


async def crawl(browser: Browser, base: str, limit: int = 120) -> Crawl:
    """Follow every console link from the home page (GET only), collecting forms."""
    found = Crawl()
    queue = ["/console/"]
    while queue and len(found.pages) < limit:
        path = queue.pop(0)
        if path in found.pages:
            continue
        page = await browser.get(path)
        found.pages[path] = page.status
        if "text/html" not in page.headers.get("Content-Type", ""):
            continue
        parser = _Links(base + path)
        parser.feed(page.text)
        for link in sorted(parser.links):
            local = _local(link, base)
            if local and local not in found.pages and "logout" not in local:
                queue.append(local)
        for form in parser.forms:
            action = _local(form.action, base)
            if action and form.method == "post" and "logout" not in action:
                found.forms.setdefault((action, ",".join(sorted(form.fields))), form)
    return found


async def fingerprint(db: Database) -> dict[str, str]:
    """A digest of every row of every table that matters (the framework's and the safari
    app's), per table."""
    digests: dict[str, str] = {}
    tables = [*Base.metadata.sorted_tables]
    for metadata in safari.metadata:
        tables += metadata.sorted_tables
    async with db.read() as session:
        for table in tables:
            if table.name in BOOKKEEPING:
                continue
            rows = (await session.execute(select(table))).all()
            digest = hashlib.sha256()
            for row in sorted(repr(tuple(r)) for r in rows):
                digest.update(row.encode())
            digests[table.name] = digest.hexdigest()
    return digests


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The tables whose rows differ."""
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


async def seeded_crawl(console: SafariConsole) -> tuple[Browser, Crawl]:
    """An admin's crawl of a console with a pending payment, a receipt and a proof."""
    await console.pending_payment(proof=b"\x89PNG\r\n\x1a\nproof")
    admin = await console.browser(OperatorRole.ADMIN, name="crawler")
    found = await crawl(admin, console.base)
    assert len(found.pages) > 15 and len(found.forms) > 3, (found.pages, found.forms)
    return admin, found


def _is_login_redirect(status: int, location: str) -> bool:
    return status in (302, 303) and location.startswith("/console/login")


async def test_without_a_session_only_login_and_static_files_answer(
    console: SafariConsole,
) -> None:
    _, found = await seeded_crawl(console)
    before = await fingerprint(console.db)
    stranger = await console.browser()
    leaks: list[str] = []
    for path in found.pages:
        page = await stranger.get(path, follow=False)
        public = path.startswith(("/console/login", "/console/static/"))
        if not public and not _is_login_redirect(page.status, page.headers.get("Location", "")):
            leaks.append(f"GET {path}: {page.status}")
    for (action, _), form in found.forms.items():
        page = await stranger.post(action, form.fields, csrf=False)
        if page.status not in (303, 403):
            leaks.append(f"POST {action}: {page.status}")
    assert leaks == []
    assert changed(before, await fingerprint(console.db)) == []
    record(
        "console-anonymous",
        Row(
            scenario="Console without logging in",
            injected="every URL and form an admin's crawl found, requested without a session",
            load=f"{len(found.pages)} pages, {len(found.forms)} forms",
            observed=f"{len(leaks)} answered with content; every page redirected to the login "
            "page, every form refused; 0 rows changed",
        ),
    )


async def test_a_viewer_can_read_but_never_write(console: SafariConsole) -> None:
    _, found = await seeded_crawl(console)
    viewer = await console.browser(OperatorRole.VIEWER, name="viewer")
    errors: list[str] = []
    for path in found.pages:
        page = await viewer.get(path, follow=False)
        if page.status >= 500:
            errors.append(f"GET {path}: {page.status}")
    before = await fingerprint(console.db)
    refused = 0
    for (action, _), form in found.forms.items():
        page = await viewer.post(action, form.fields)
        refused += page.status == 403
        if page.status >= 500:
            errors.append(f"POST {action}: {page.status}")
    assert errors == []
    assert changed(before, await fingerprint(console.db)) == []
    record(
        "console-viewer",
        Row(
            scenario="Console as a viewer",
            injected="every page opened and every form submitted (with a valid CSRF token) "
            "by a viewer account",
            load=f"{len(found.pages)} pages, {len(found.forms)} forms",
            observed=f"0 errors; {refused}/{len(found.forms)} forms refused with 403, "
            "0 rows changed in the database",
        ),
    )


async def test_no_form_works_without_its_csrf_token(console: SafariConsole) -> None:
    admin, found = await seeded_crawl(console)
    before = await fingerprint(console.db)
    answers: dict[int, int] = {}
    for (action, _), form in found.forms.items():
        fields = {k: v for k, v in form.fields.items() if k != "csrf_token"}
        for variant in (fields, {**fields, "csrf_token": "forged"}):
            page = await admin.post(action, variant, csrf=False)
            answers[page.status] = answers.get(page.status, 0) + 1
    assert set(answers) == {403}, answers
    assert changed(before, await fingerprint(console.db)) == []
    record(
        "console-csrf",
        Row(
            scenario="Console forms without a CSRF token",
            injected="every form posted by a logged-in admin without the token and with a "
            "forged one",
            load=f"{sum(answers.values())} requests ({len(found.forms)} forms)",
            observed=f"403 for all {answers.get(403, 0)}; 0 rows changed",
        ),
    )


async def test_sql_and_html_in_every_form_field_are_stored_as_text(console: SafariConsole) -> None:
    admin, found = await seeded_crawl(console)
    errors: list[str] = []
    posts = 0
    for (action, _), form in found.forms.items():
        if not form.text_fields:
            continue
        for attack in ATTACKS:
            fields = dict(form.fields)
            for name in form.text_fields:
                if name not in ("password", "csrf_token"):
                    fields[name] = attack
            page = await admin.post(action, fields)
            posts += 1
            if page.status >= 500:
                errors.append(f"POST {action} with {attack!r}: {page.status}")
    assert errors == []
    # Every table is still there, and every page shows the attacks as text.
    async with console.db.read() as session:
        assert await session.scalar(select(Contact.id).limit(1)) is not None
        await session.execute(text("SELECT count(*) FROM payments"))
    again = await crawl(admin, console.base)
    raw = []
    for path in again.pages:
        page = await admin.get(path)
        raw += [f"{path}: {a!r}" for a in ATTACKS[:2] if a in page.text]
    assert raw == []
    record(
        "console-injection",
        Row(
            scenario="SQL and HTML injection into console forms",
            injected=f"{len(ATTACKS)} attacks (script tag, attribute break-out, quote, "
            "stacked query, UNION) in every text field of every form",
            load=f"{posts} form posts, then {len(again.pages)} pages re-read",
            observed="0 server errors, every table intact, 0 pages with the markup unescaped",
        ),
    )


TRAVERSALS = [
    "/console/payments/..%2f..%2f..%2fetc%2fpasswd/receipt.pdf",
    "/console/payments/1%2f..%2f..%2fpyproject.toml/receipt.pdf",
    "/console/payments/%2e%2e/receipt.pdf",
    "/console/payments/1%00/receipt.pdf",
    "/console/payments/-1/receipt.pdf",
    "/console/payments/99999999999999999999999/receipt.pdf",
    "/console/payments/1/receipt.pdf/..%2f..%2f..%2fbot%2fsettings.py",
    "/console/payments/..%5c..%5cpyproject.toml/proof",
    "/console/bookings/..%2f..%2f/travelers/1/id",
    "/console/bookings/SAF-AAAAAA/travelers/..%2f1/id",
    "/console/static/..%2f..%2f..%2fpyproject.toml",
    "/console/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
    "/console/static/..%5c..%5cpyproject.toml",
    "/console/static//etc/passwd",
    "/console/static/../app.py",
]
LEAK_MARKERS = ("root:x:", "[project]", "SecretStr", "import ")


async def test_path_traversal_in_downloads_reaches_nothing(console: SafariConsole) -> None:
    admin = await console.browser(OperatorRole.ADMIN, name="traveller")
    leaks: list[str] = []
    statuses: dict[int, int] = {}
    for path in TRAVERSALS:
        async with admin.http.get(admin.base + path, allow_redirects=False) as response:
            body = await response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
            shown = body.decode("utf-8", "replace")
            if response.status == 200 or any(m in shown for m in LEAK_MARKERS):
                leaks.append(f"{path}: {response.status}")
    assert leaks == []
    record(
        "console-traversal",
        Row(
            scenario="Path traversal in console downloads",
            injected="encoded ../, backslashes, NUL, huge and negative ids in receipt, proof, "
            "ID-document and static URLs",
            load=f"{len(TRAVERSALS)} requests as an admin",
            observed="answers "
            + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
            + "; 0 files served",
        ),
    )


async def test_parallel_password_guessing_checks_exactly_the_limit(
    console: SafariConsole,
) -> None:
    await console.browser(OperatorRole.ADMIN, name="owner")
    guesses = 100

    async def guess(n: int) -> tuple[int, str | None]:
        browser = await console.browser()
        page = await browser.login("owner", f"guess number {n}")
        return page.status, page.headers.get("Retry-After")

    results = await asyncio.gather(*(guess(n) for n in range(guesses)))
    statuses = [status for status, _ in results]
    checked = [a for _, a in await _audit(console.db) if a == "login_failed"]
    assert statuses.count(401) == sessions.MAX_FAILURES_PER_PAIR, statuses
    assert statuses.count(429) == guesses - sessions.MAX_FAILURES_PER_PAIR
    assert len(checked) == sessions.MAX_FAILURES_PER_PAIR
    assert all(retry for status, retry in results if status == 429)
    record(
        "console-login-race",
        Row(
            scenario="Parallel password guessing",
            injected="wrong passwords for one operator, all sent at once from one address",
            load=f"{guesses} concurrent logins",
            observed=f"{len(checked)} passwords checked (the limit is "
            f"{sessions.MAX_FAILURES_PER_PAIR}), {statuses.count(429)} answered 429 with "
            "Retry-After",
        ),
    )


async def _audit(db: Database) -> list[tuple[str, str]]:
    async with db.read() as session:
        rows = await session.execute(select(AuditEntry.actor, AuditEntry.action))
        return [(actor, action) for actor, action in rows]
