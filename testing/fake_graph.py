"""A local fake of the Graph API endpoints Nyala uses: the only stand-in for Meta's servers.

It serves, on loopback, what :mod:`bot.whatsapp.graph` calls:

- ``POST /{version}/{phone_number_id}/messages``: a message (checked against Meta's OpenAPI
  spec by :class:`testing.meta_spec.MetaSpec`) or a mark-as-read body;
- ``POST /{version}/{phone_number_id}/media``: a multipart upload;
- ``GET /{version}/{media_id}``: the media's metadata and download URL;
- ``GET /media-download/{media_id}``: the bytes.

Inbound media (a file a customer sends) is registered with :meth:`FakeGraph.add_inbound_media`,
which gives the media id and checksum a webhook would carry; the bot then downloads it the
way it downloads from Meta. An expired download URL is the ``url_expired`` fault on the
``download`` route.

Every request needs ``Authorization: Bearer <token>``. Whatever arrives is recorded in
:attr:`FakeGraph.requests` and accepted messages in :attr:`FakeGraph.sent`, so tests can
assert exactly-once delivery. Faults (Meta's error codes, timeouts) are injected with
:meth:`FakeGraph.fail_next` and :meth:`FakeGraph.fault_rate`; a request is checked (token,
body) before a fault is drawn, so faults only ever hit requests Meta would have accepted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import itertools
import logging
import random
import re
import secrets
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal

from aiohttp import BodyPartReader, web
from aiohttp.typedefs import Handler

from testing.meta_spec import MetaSpec

__all__ = [
    "FAULTS",
    "FakeGraph",
    "FaultKind",
    "FaultSpec",
    "RecordedRequest",
    "Route",
    "SentMessage",
    "StoredMedia",
    "run_fake_graph",
]

log = logging.getLogger("nyala.fake_graph")

DEFAULT_VERSION: Final = "v23.0"
MAX_UPLOAD_BYTES: Final = 100 * 1024 * 1024  # Meta's largest media (documents)
_MIME: Final = re.compile(r"[\w.+-]+/[\w.+-]+(\s*;.*)?")

Route = Literal["send", "mark_read", "upload", "media", "download", "any"]
"""Which requests a fault may hit: message sends, mark-as-read, media uploads, media
metadata (``GET /{media-id}``), media downloads (the URL it gives), or all."""


class FaultKind(StrEnum):
    """A failure the fake can inject, named for what Meta does."""

    RATE_LIMIT = "rate_limit"
    """HTTP 429, code 130429: throughput reached."""
    SERVER_ERROR = "server_error"
    """HTTP 500, code 131000: something went wrong."""
    UNAVAILABLE = "unavailable"
    """HTTP 503, code 2: service temporarily unavailable."""
    PAIR_RATE_LIMIT = "pair_rate_limit"
    """HTTP 400, code 131056: too many messages to one user."""
    OUTSIDE_WINDOW = "outside_window"
    """HTTP 400, code 131047: the 24-hour window is closed ("Re-engagement message")."""
    UNDELIVERABLE = "undeliverable"
    """HTTP 400, code 131026: the recipient cannot receive it."""
    TIMEOUT_BEFORE = "timeout_before"
    """No answer in time, and nothing accepted."""
    TIMEOUT_AFTER = "timeout_after"
    """Accepted (recorded in ``sent``), but the answer comes too late."""
    URL_EXPIRED = "url_expired"
    """HTTP 404 from a media download URL: it expired (they live 5 minutes)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSpec:
    """The Graph error an HTTP fault answers with."""

    status: int
    code: int
    message: str
    details: str


FAULTS: Final[Mapping[FaultKind, FaultSpec]] = {
    FaultKind.RATE_LIMIT: FaultSpec(
        status=429,
        code=130429,
        message="(#130429) Rate limit hit",
        details="Cloud API message throughput has been reached.",
    ),
    FaultKind.SERVER_ERROR: FaultSpec(
        status=500,
        code=131000,
        message="(#131000) Something went wrong",
        details="Message failed to send due to an unknown error.",
    ),
    FaultKind.UNAVAILABLE: FaultSpec(
        status=503,
        code=2,
        message="(#2) Service temporarily unavailable",
        details="Temporary due to downtime or due to being overloaded.",
    ),
    FaultKind.PAIR_RATE_LIMIT: FaultSpec(
        status=400,
        code=131056,
        message="(#131056) (Business Account, Consumer Account) pair rate limit hit",
        details="Too many messages sent from the sender phone number to the same recipient "
        "phone number in a short period of time.",
    ),
    FaultKind.OUTSIDE_WINDOW: FaultSpec(
        status=400,
        code=131047,
        message="(#131047) Re-engagement message",
        details="Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number.",
    ),
    FaultKind.UNDELIVERABLE: FaultSpec(
        status=400,
        code=131026,
        message="(#131026) Message Undeliverable",
        details="Unable to deliver message.",
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """One request the fake received, and what it did with it.

    Attributes:
        method: ``GET`` or ``POST``.
        path: the URL path, e.g. ``/v23.0/1234/messages``.
        body: the JSON body (a copy), when there was one.
        form: the multipart fields but ``file``, plus ``filename``, ``content_type`` and
            ``size`` of the file, for uploads.
        status: the HTTP status answered; ``None`` for ``timeout_before``, which never
            answers in time.
        fault: the fault injected, if any.
        wamid: the message id, when a message was accepted (also under ``timeout_after``).
        media_id: the media id uploaded or asked for.
        at: when it arrived (UTC).
    """

    method: str
    path: str
    body: Mapping[str, Any] | None = None
    form: Mapping[str, str] | None = None
    status: int | None
    fault: FaultKind | None = None
    wamid: str | None = None
    media_id: str | None = None
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SentMessage:
    """A message the fake accepted, as Meta would have.

    Attributes:
        wamid: the id it was given.
        to: the recipient as sent.
        body: the JSON body (a copy).
        at: when it was accepted (UTC).
    """

    wamid: str
    to: str
    body: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMedia:
    """An uploaded file.

    Attributes:
        media_id: its id.
        content: the bytes.
        mime_type: the file part's content type.
        filename: the file part's name.
        sha256: hex digest of the bytes.
    """

    media_id: str
    content: bytes = field(repr=False)
    mime_type: str
    filename: str
    sha256: str

    @property
    def sha256_base64(self) -> str:
        """The checksum as Meta's webhooks carry it (base64 of the digest)."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()


@dataclass(frozen=True, slots=True)
class _QueuedFault:
    kind: FaultKind
    route: Route


@dataclass(slots=True)
class _RandomFaults:
    rate: float
    kinds: tuple[FaultKind, ...]
    route: Route
    rng: random.Random


def _now() -> datetime:
    return datetime.now(UTC)


def _graph_error(
    status: int,
    message: str,
    code: int,
    *,
    details: str | None = None,
    error_type: str = "OAuthException",
) -> web.Response:
    """A response in Meta's error shape."""
    error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
    return web.json_response({"error": error}, status=status)


def _invalid(details: str) -> web.Response:
    return _graph_error(400, "(#100) Invalid parameter", 100, details=details)


class FakeGraph:
    """An in-process Graph API on loopback that validates, records and misbehaves on cue.

    Args:
        token: the access token every request must carry as ``Bearer``.
        phone_number_id: when given, the only phone number id that exists.
        spec: the validators (default: :meth:`MetaSpec.load`).
        hang: seconds a timeout fault holds the answer back; choose it longer than the
            client's timeout. :meth:`stop` releases held answers at once.
        version: the Graph version in the base URL :meth:`start` returns.
        lean: a fast stand-in for load tests: bodies are neither checked against the spec
            nor recorded (only counted in :attr:`accepted`), so the fake's own CPU does
            not limit the sender it measures. Tests keep the default.
    """

    def __init__(
        self,
        *,
        token: str,
        phone_number_id: str | None = None,
        spec: MetaSpec | None = None,
        hang: float = 30.0,
        version: str = DEFAULT_VERSION,
        lean: bool = False,
    ) -> None:
        self.token = token
        self.lean = lean
        self.accepted = 0  # messages and read receipts answered 200
        self.phone_number_id = phone_number_id
        self.spec = spec or MetaSpec.load()
        self.hang = hang
        self.version = version
        self.requests: list[RecordedRequest] = []
        self.sent: list[SentMessage] = []
        self.marked_read: list[str] = []
        self.media: dict[str, StoredMedia] = {}
        self.injected: Counter[FaultKind] = Counter()
        self._faults: deque[_QueuedFault] = deque()
        self._random: _RandomFaults | None = None
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._recorded = asyncio.Event()
        self._base_url: str | None = None

    # --- life cycle -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """Where the fake listens (``WHATSAPP_API_BASE``); only once it started."""
        if self._base_url is None:
            raise RuntimeError("the fake Graph API is not started (await start() first)")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port).

        Returns:
            The base URL to give the client, e.g. ``http://127.0.0.1:41234/v23.0``.
        """
        if self._runner is not None:
            raise RuntimeError("the fake Graph API is already running")
        self._closing.clear()
        runner = web.AppRunner(self._app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._base_url = f"http://{shown}:{bound_port}/{self.version}"
        log.info("fake Graph API listening on %s", self._base_url)
        return self._base_url

    async def stop(self) -> None:
        """Stop serving; answers held back by timeout faults are released first."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("fake Graph API stopped")

    async def __aenter__(self) -> FakeGraph:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def wait_for_requests(self, count: int) -> list[RecordedRequest]:
        """Wait until ``count`` requests have arrived (for clients that send in the
        background); bound it with :func:`asyncio.timeout`.

        Returns:
            The first ``count`` recorded requests.
        """
        while len(self.requests) < count:
            self._recorded.clear()
            await self._recorded.wait()
        return self.requests[:count]

    # --- fault injection --------------------------------------------------------------

    def fail_next(self, n: int, kind: FaultKind | str, *, route: Route = "send") -> None:
        """Make the next ``n`` valid requests on ``route`` fail with ``kind``.

        Queued faults are used in order, before any random ones.
        """
        fault = _QueuedFault(FaultKind(kind), route)
        self._faults.extend(itertools.repeat(fault, n))

    def fault_rate(
        self,
        rate: float,
        kinds: Iterable[FaultKind | str],
        seed: int | None = None,
        *,
        route: Route = "send",
    ) -> None:
        """Fail a share ``rate`` (0 to 1) of valid requests on ``route``, with a kind drawn
        uniformly from ``kinds``; the same ``seed`` gives the same faults. A rate of 0 ends
        random faults.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        chosen = tuple(FaultKind(kind) for kind in kinds)
        if rate and not chosen:
            raise ValueError("fault_rate needs at least one kind")
        self._random = (
            _RandomFaults(rate, chosen, route, random.Random(seed))  # noqa: S311 - not crypto
            if rate
            else None
        )

    def add_inbound_media(
        self, content: bytes, mime_type: str, *, filename: str = ""
    ) -> StoredMedia:
        """Keep a file as if a customer had sent it on WhatsApp; the returned media id and
        checksum go into the webhook (``image.id``, ``image.sha256``)."""
        media = StoredMedia(
            media_id=str(10**15 + next(self._ids)),
            content=content,
            mime_type=mime_type,
            filename=filename,
            sha256=hashlib.sha256(content).hexdigest(),
        )
        self.media[media.media_id] = media
        return media

    def clear_faults(self) -> None:
        """Forget queued and random faults (the counts in ``injected`` stay)."""
        self._faults.clear()
        self._random = None

    def _draw_fault(self, route: Route) -> FaultKind | None:
        for queued in self._faults:
            if queued.route in (route, "any"):
                self._faults.remove(queued)
                return self._count(queued.kind)
        chance = self._random
        if (
            chance is not None
            and chance.route in (route, "any")
            and chance.rng.random() < chance.rate
        ):
            return self._count(chance.rng.choice(chance.kinds))
        return None

    def _count(self, kind: FaultKind) -> FaultKind:
        self.injected[kind] += 1
        log.debug("injecting %s", kind)
        return kind

    async def _forced(
        self, request: web.Request, fault: FaultKind | None, **record: Any
    ) -> web.Response | None:
        """The answer a fault forces, or ``None`` to go on (no fault, or ``timeout_after``,
        which accepts first and holds the answer back afterwards)."""
        if fault is None or fault is FaultKind.TIMEOUT_AFTER:
            return None
        if fault is FaultKind.TIMEOUT_BEFORE:
            self._record(request, None, fault=fault, **record)
            await self._hold()
            # Only a client more patient than ``hang`` (or one still waiting at stop) sees it.
            return _graph_error(503, "(#2) Service temporarily unavailable", 2)
        if fault is FaultKind.URL_EXPIRED:
            self._record(request, 404, fault=fault, **record)
            return web.Response(status=404, text="Not Found")
        spec = FAULTS[fault]
        self._record(request, spec.status, fault=fault, **record)
        return _graph_error(spec.status, spec.message, spec.code, details=spec.details)

    async def _hold(self) -> None:
        """Wait ``hang`` seconds, or until :meth:`stop`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self.hang)

    # --- HTTP -------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_get("/media-download/{media_id}", self._download)
        app.router.add_post("/{version}/{phone_number_id}/messages", self._messages)
        app.router.add_post("/{version}/{phone_number_id}/media", self._upload)
        app.router.add_get("/{version}/{media_id}", self._media_info)
        return app

    def _record(self, request: web.Request, status: int | None, **fields: Any) -> None:
        self.requests.append(
            RecordedRequest(
                method=request.method, path=request.path, status=status, at=_now(), **fields
            )
        )
        self._recorded.set()

    @web.middleware
    async def _auth(
        self,
        request: web.Request,
        handler: Handler,
    ) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self._record(request, 401)
            log.debug("401 for %s %s", request.method, request.path)
            return _graph_error(401, "Invalid OAuth access token - Cannot parse access token", 190)
        return await handler(request)

    def _unknown_phone(self, request: web.Request) -> web.Response | None:
        phone = request.match_info["phone_number_id"]
        if self.phone_number_id is None or phone == self.phone_number_id:
            return None
        self._record(request, 400)
        return _graph_error(
            400,
            f"Unsupported post request. Object with ID '{phone}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation.",
            100,
        )

    async def _messages(self, request: web.Request) -> web.Response:
        if (refused := self._unknown_phone(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            self._record(request, 400)
            return _invalid("The request body is not valid JSON.")
        if not isinstance(body, dict):
            self._record(request, 400)
            return _invalid("The request body must be a JSON object.")
        mark_read = body.get("status") == "read"
        if self.lean:
            return self._lean_answer(body, mark_read=mark_read)
        problems = (
            self.spec.validate_mark_read(body) if mark_read else self.spec.validate_message(body)
        )
        if problems:
            self._record(request, 400, body=copy.deepcopy(body))
            log.debug("400 for %s: %s", request.path, problems)
            return _invalid("; ".join(problems))
        fault = self._draw_fault("mark_read" if mark_read else "send")
        if (forced := await self._forced(request, fault, body=copy.deepcopy(body))) is not None:
            return forced
        if mark_read:
            self.marked_read.append(str(body["message_id"]))
            self._record(request, 200, body=copy.deepcopy(body), fault=fault)
            answer: dict[str, Any] = {"success": True}
        else:
            answer = self._accept(request, body, fault)
        if fault is FaultKind.TIMEOUT_AFTER:
            await self._hold()
        return web.json_response(answer)

    def _lean_answer(self, body: dict[str, Any], *, mark_read: bool) -> web.Response:
        """Meta's answer without checking or recording anything (``lean``)."""
        self.accepted += 1
        if mark_read:
            return web.json_response({"success": True})
        to = str(body.get("to", ""))
        wamid = f"wamid.FAKE{next(self._ids):06d}{secrets.token_hex(8).upper()}"
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": re.sub(r"\D", "", to) or to}],
                "messages": [{"id": wamid}],
            }
        )

    def _accept(
        self, request: web.Request, body: dict[str, Any], fault: FaultKind | None
    ) -> dict[str, Any]:
        to = str(body["to"])
        wamid = f"wamid.FAKE{next(self._ids):06d}{secrets.token_hex(8).upper()}"
        self.sent.append(SentMessage(wamid=wamid, to=to, body=copy.deepcopy(body), at=_now()))
        self._record(request, 200, body=copy.deepcopy(body), fault=fault, wamid=wamid)
        log.debug("accepted %s", wamid)
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": re.sub(r"\D", "", to) or to}],
            "messages": [{"id": wamid}],
        }

    async def _upload(self, request: web.Request) -> web.Response:
        if (refused := self._unknown_phone(request)) is not None:
            return refused
        fields: dict[str, str] = {}
        media: StoredMedia | None = None
        problems: list[str] = []
        try:
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.name == "file":
                    content = bytes(await part.read())
                    mime = part.headers.get("Content-Type", "")
                    media = StoredMedia(
                        media_id=str(10**15 + next(self._ids)),
                        content=content,
                        mime_type=mime,
                        filename=part.filename or "",
                        sha256=hashlib.sha256(content).hexdigest(),
                    )
                    fields |= {"filename": media.filename, "content_type": mime}
                    fields["size"] = str(len(content))
                else:
                    fields[part.name] = await part.text()
        except (ValueError, AssertionError, KeyError) as exc:
            problems.append(f"the body is not multipart/form-data ({type(exc).__name__})")
        if fields.get("messaging_product") != "whatsapp":
            problems.append("messaging_product must be 'whatsapp'")
        if not fields.get("type"):
            problems.append("type (the file's MIME type) is required")
        if media is None:
            problems.append("file is required")
        elif not _MIME.fullmatch(media.mime_type):
            problems.append("file needs a MIME content type")
        if problems or media is None:
            self._record(request, 400, form=fields)
            return _invalid("; ".join(problems))
        fault = self._draw_fault("upload")
        if (forced := await self._forced(request, fault, form=fields)) is not None:
            return forced
        self.media[media.media_id] = media
        self._record(request, 200, form=fields, fault=fault, media_id=media.media_id)
        if fault is FaultKind.TIMEOUT_AFTER:
            await self._hold()
        return web.json_response({"id": media.media_id})

    async def _media_info(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        media = self.media.get(media_id)
        if media is None:
            self._record(request, 400, media_id=media_id)
            return _graph_error(
                400,
                f"Unsupported get request. Object with ID '{media_id}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this "
                "operation.",
                100,
                error_type="GraphMethodException",
            )
        fault = self._draw_fault("media")
        if (forced := await self._forced(request, fault, media_id=media_id)) is not None:
            return forced
        self._record(request, 200, media_id=media_id, fault=fault)
        url = request.url.origin().with_path(f"/media-download/{media_id}")
        return web.json_response(
            {
                "url": str(url),
                "mime_type": media.mime_type,
                "sha256": media.sha256,
                "file_size": str(len(media.content)),
                "id": media_id,
                "messaging_product": "whatsapp",
            }
        )

    async def _download(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        media = self.media.get(media_id)
        if media is None:
            self._record(request, 404, media_id=media_id)
            return web.Response(status=404, text="Not Found")
        fault = self._draw_fault("download")
        if (forced := await self._forced(request, fault, media_id=media_id)) is not None:
            return forced
        self._record(request, 200, media_id=media_id, fault=fault)
        if fault is FaultKind.TIMEOUT_AFTER:
            await self._hold()
        return web.Response(body=media.content, headers={"Content-Type": media.mime_type})


async def run_fake_graph(
    host: str,
    port: int,
    token: str,
    *,
    on_ready: Callable[[str], object] | None = None,
    lean: bool = False,
) -> None:
    """Serve a :class:`FakeGraph` until cancelled (the ``nyala fake-graph`` command).

    Args:
        host: the address to listen on; keep it on loopback.
        port: the port (0 picks a free one).
        token: the access token clients must send.
        on_ready: called with the base URL once it listens.
        lean: the fast stand-in (no spec checks, nothing recorded) for load tests.
    """
    fake = FakeGraph(token=token, lean=lean)
    try:
        url = await fake.start(host, port)
        if on_ready is not None:
            on_ready(url)
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m testing.fake_graph --port P --token T [--lean]``: the benchmarks' way to
    run the fake (``nyala fake-graph`` always checks every body against the spec)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m testing.fake_graph")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--token", required=True)
    parser.add_argument("--lean", action="store_true", help="no spec checks, nothing recorded")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_fake_graph(args.host, args.port, args.token, lean=args.lean))


if __name__ == "__main__":
    main()
