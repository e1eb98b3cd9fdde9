"""The database: URL handling, engine set-up per backend, transactions and locks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.errors import DatabaseUnavailableError, StorageError

log = logging.getLogger("nyala.storage")

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///nyala.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# How long a cancelled operation may take to give its connection back once no lock holds
# it: SQLAlchemy closes the connection (asyncpg's close waits up to 2 s).
CANCEL_PATIENCE_SECONDS = 5.0
# Set to 1 to let SQL logs show statement parameters (personal data: off by default).
LOG_PARAMETERS_VARIABLE = "NYALA_LOG_SQL_PARAMETERS"
# The logging name of engines that keep parameters and rows out of the logs: their logger
# is "sqlalchemy.engine.Engine.private", which carries a :class:`_HideRows` filter.
_PRIVATE_LOGGING_NAME = "private"
# Namespace of Nyala's advisory locks ("Ny"), so they never meet another app's.
_LOCK_NAMESPACE = 0x4E79
_NAME_LOCK_NAMESPACE = 0x4E7A
_LOCK_CONTACT = text("SELECT pg_advisory_xact_lock(:ns, :key)")
# The keys of those contacts whose lock was free and is now held (no waiting: a worker
# never stalls a whole batch behind one contact another worker holds).
_TRY_LOCK_CONTACTS = text(
    "SELECT k FROM unnest(CAST(:keys AS integer[])) AS k WHERE pg_try_advisory_xact_lock(:ns, k)"
)
_LOCK_KEY_MODULUS = 2_147_483_647
# Contact locks taken one after another, waiting, in the sorted order given.
_LOCK_CONTACTS = text(
    "SELECT count(pg_advisory_xact_lock(:ns, k.key)) FROM ("
    "SELECT key FROM unnest(CAST(:keys AS integer[])) WITH ORDINALITY AS u(key, i) "
    "ORDER BY i) AS k"
)
# Named locks taken one after another in the order given (a sorted array; the ordinality
# keeps that order through the scan).
_LOCK_NAMES = text(
    "SELECT count(pg_advisory_xact_lock(:ns, hashtext(n.name))) FROM ("
    "SELECT name FROM unnest(CAST(:names AS text[])) WITH ORDINALITY AS u(name, i) "
    "ORDER BY i) AS n"
)


def normalize_url(url: str) -> URL:
    """Parse a database URL, mapping the plain spellings to Nyala's async drivers.

    ``postgresql://`` and ``postgres://`` mean asyncpg; ``sqlite://`` means aiosqlite.

    Raises:
        StorageError: the URL cannot be parsed or names an unsupported backend.
    """
    raw = url.strip()
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw.removeprefix("postgres://")
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise StorageError(f"invalid DATABASE_URL {raw!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise StorageError(
        f"unsupported database {backend!r} in DATABASE_URL: use sqlite or postgresql"
    )


def display_url(url: URL | str) -> str:
    """Render a URL for messages and logs, with the password hidden."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def _private_files(database: str | None) -> list[Path]:
    """The SQLite file and its WAL companions, for a file database."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return []
    return [Path(database + suffix) for suffix in ("", "-wal", "-shm")]


def _make_private(paths: list[Path]) -> None:
    """Owner-only modes (0600): the database holds ID documents and payment proofs."""
    for path in paths:
        with contextlib.suppress(OSError):  # absent, or someone else's file
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(0o600)


def _check_on_checkout(engine: AsyncEngine) -> None:
    """Hand out no pooled PostgreSQL connection that is known to be closed.

    SQLAlchemy's ``pool_pre_ping`` costs three round trips per checkout with asyncpg
    (BEGIN, ``;``, ROLLBACK), more than many of our transactions' own statements. A
    restarted or stopped server closes its connections, and asyncpg notices the closed
    socket at once, so asking the driver (no round trip) finds them: such a connection
    is thrown away and a new one made (``DisconnectionError`` makes the pool retry the
    checkout). A connection found dead during use is handled by SQLAlchemy's disconnect
    detection: it and every older pooled connection are dropped, and the work fails
    once (the callers retry: pending messages stay pending, the outbox's claims lapse).
    """

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _closed_is_gone(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None and driver.is_closed():
            raise DisconnectionError("the PostgreSQL connection was closed")


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """Make SQLite fit for a server and CLI commands sharing one file.

    WAL lets readers work while one writer writes; the busy timeout makes a second writer
    wait instead of failing; write transactions start with ``BEGIN IMMEDIATE`` so they
    take the write lock up front instead of failing half-way on an upgrade. The file and
    its WAL companions are kept owner-only (0600): they hold ID documents and payment
    proofs.
    """

    private = _private_files(engine.url.database)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        _make_private(private)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("nyala_write", True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class _HideRows(logging.Filter):
    """Blanks the result rows SQLAlchemy logs at DEBUG: they hold the same names, numbers
    and token hashes as the parameters that ``hide_parameters`` hides."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Row %r":
            record.msg = "Row [hidden: NYALA_LOG_SQL_PARAMETERS=1 shows rows]"
            record.args = ()
        return True


def _private_logger() -> str:
    """The logging name of engines whose parameters and rows stay out of the logs (the
    filter is put on its logger once per process)."""
    logger = logging.getLogger(f"sqlalchemy.engine.Engine.{_PRIVATE_LOGGING_NAME}")
    if not any(isinstance(found, _HideRows) for found in logger.filters):
        logger.addFilter(_HideRows())
    return _PRIVATE_LOGGING_NAME


class Database:
    """An async engine with its session factories.

    Use :meth:`transaction` for work that writes and :meth:`read` for read-only work.
    """

    def __init__(
        self,
        url: str = DEFAULT_DATABASE_URL,
        *,
        echo: bool = False,
        log_parameters: bool | None = None,
        sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    ) -> None:
        """Open an engine on ``url`` (nothing connects until first use).

        Args:
            url: the database URL (see :func:`normalize_url`).
            echo: log every statement (SQLAlchemy's ``echo``).
            log_parameters: let SQLAlchemy's logs and error messages show the statements'
                parameters and (at DEBUG) the result rows. They hold names, phone numbers
                and token hashes, so they are hidden unless asked for explicitly
                (``None``: the environment variable ``NYALA_LOG_SQL_PARAMETERS=1``).
            sqlite_busy_timeout_ms: on SQLite, how long a writer waits for another's
                write lock before failing ("database is locked").
        """
        self.url = normalize_url(url)
        self.sqlite_busy_timeout_ms = sqlite_busy_timeout_ms
        if log_parameters is None:
            wanted = os.environ.get(LOG_PARAMETERS_VARIABLE, "").strip().lower()
            log_parameters = wanted in {"1", "true", "yes", "on"}
        self.log_parameters = log_parameters
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": not log_parameters}
        if not log_parameters:
            kwargs["logging_name"] = _private_logger()
        if self.is_postgresql:
            kwargs.update(pool_size=10, max_overflow=10)
        self.engine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine, sqlite_busy_timeout_ms)
        else:
            _check_on_checkout(self.engine)
        self._writer = async_sessionmaker(
            self.engine.execution_options(nyala_write=True), expire_on_commit=False
        )
        self._reader = async_sessionmaker(
            self.engine.execution_options(nyala_write=False), expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        """Whether this is the embedded SQLite backend."""
        return self.url.get_backend_name() == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        """Whether this is PostgreSQL."""
        return self.url.get_backend_name() == "postgresql"

    @property
    def cancel_patience(self) -> float:
        """Seconds a cancelled task may need to give its connection back, which
        shutdown waits before cancelling it again.

        On SQLite a statement cancelled while it waits for the write lock keeps its
        connection's thread busy until the busy timeout ends; SQLAlchemy closes the
        connection behind it, shielded from the cancellation. A second cancellation then
        would leave that close waiting forever (aiosqlite 0.22's ``close`` awaits a stop
        its thread never runs) and hang the event loop's shutdown: so wait longer than
        the busy timeout.
        """
        if self.is_sqlite:
            return self.sqlite_busy_timeout_ms / 1000 + CANCEL_PATIENCE_SECONDS
        return CANCEL_PATIENCE_SECONDS

    @property
    def display_url(self) -> str:
        """The URL with its password hidden."""
        return display_url(self.url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back on error."""
        async with self._writer() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction (on SQLite it does not take the write lock)."""
        async with self._reader() as session, session.begin():
            yield session

    async def check(self) -> None:
        """Connect once, turning any failure into a one-line DatabaseUnavailableError."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (OSError, OperationalError, DBAPIError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise DatabaseUnavailableError(
                f"cannot reach the database at {self.display_url}: {reason}"
            ) from exc

    async def wait_ready(self, *, within: float = 60.0) -> None:
        """:meth:`check`, waiting up to ``within`` seconds while PostgreSQL says it is
        starting up, shutting down or recovering ("the database system is …"): a server
        started beside its database, or during a restart, waits instead of exiting. Any
        other failure (wrong address, refused, bad password) is raised at once."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            try:
                await self.check()
                return
            except DatabaseUnavailableError as exc:
                transient = "the database system is" in str(exc)
                if not transient or asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("waiting for the database: %s", exc)
                await asyncio.sleep(1.0)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


async def lock_name(session: AsyncSession, name: str) -> None:
    """Serialise work on a named thing (e.g. one WhatsApp message id) until commit.

    PostgreSQL: a transaction-scoped advisory lock on the name's hash; SQLite: nothing
    more is needed (one writer at a time).
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, hashtext(:name))"),
            {"ns": _NAME_LOCK_NAMESPACE, "name": name},
        )


async def lock_names(session: AsyncSession, names: list[str]) -> None:
    """:func:`lock_name` for many names in one statement, in sorted order (the order
    every caller takes several in, so two transactions never wait on each other crosswise)."""
    if session.get_bind().dialect.name == "postgresql" and names:
        await session.execute(
            _LOCK_NAMES, {"ns": _NAME_LOCK_NAMESPACE, "names": sorted(set(names))}
        )


async def lock_contact(session: AsyncSession, contact_id: int) -> None:
    """Serialise work on one contact until the transaction ends.

    PostgreSQL takes a transaction-scoped advisory lock; SQLite needs nothing more, as
    its write transactions already hold the database's single write lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            _LOCK_CONTACT, {"ns": _LOCK_NAMESPACE, "key": contact_id % _LOCK_KEY_MODULUS}
        )


async def lock_contacts(session: AsyncSession, contact_ids: list[int]) -> None:
    """:func:`lock_contact` for many contacts in one statement, waiting for each, in
    sorted order (as every caller takes several: no two transactions wait crosswise)."""
    if session.get_bind().dialect.name == "postgresql" and contact_ids:
        keys = sorted({contact_id % _LOCK_KEY_MODULUS for contact_id in contact_ids})
        await session.execute(_LOCK_CONTACTS, {"ns": _LOCK_NAMESPACE, "keys": keys})


async def try_lock_contacts(session: AsyncSession, contact_ids: list[int]) -> list[int]:
    """Take the locks of :func:`lock_contact` for those of ``contact_ids`` that nobody
    else holds, in one statement, without waiting; returns the contacts now held (in the
    order given). SQLite holds them all: its write transaction is the only writer."""
    if session.get_bind().dialect.name != "postgresql" or not contact_ids:
        return list(contact_ids)
    keys = {contact_id: contact_id % _LOCK_KEY_MODULUS for contact_id in contact_ids}
    held = set(
        (
            await session.scalars(
                _TRY_LOCK_CONTACTS, {"ns": _LOCK_NAMESPACE, "keys": sorted(set(keys.values()))}
            )
        ).all()
    )
    return [contact_id for contact_id in contact_ids if keys[contact_id] in held]
