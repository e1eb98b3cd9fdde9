"""``nyala chat``: talk to the bot in the terminal, always in sandbox mode.

Plain, line-based output that reads well when piped: each bot message on its own lines,
options as numbered lines (``1. Title``), answered by number or text; documents are saved
to a folder and named in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import mimetypes
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

from sqlalchemy import and_, func, or_, select

from bot.files import FileLimits, FileRefusedError, check_file
from flows import ContactRef, Engine, UserMessage
from flows.messages import (
    Document,
    Location,
    LocationPin,
    Media,
    MessageKind,
    Option,
    Reply,
    Template,
    reply_from_payload,
    reply_options,
    reply_text,
)
from storage import Contact, Conversation, InboundMessage, OutboundMessage, StoredFile

# How long the chat waits for the app's background work (e.g. a sandbox payment provider
# confirming a payment itself) before the next line.
SETTLE_SECONDS = 10.0
# While it waits for the next line, how often the chat looks for messages sent to this
# contact from elsewhere (an operator's reply in the console, a reminder command).
POLL_SECONDS = 1.0

CHAT_HELP = (
    "Type a message, or the number of an option. Commands: /file PATH (send a photo or "
    "document), /location LAT,LON, /quit."
)


@runtime_checkable
class Settles(Protocol):
    """A service doing work in the background whose messages the chat waits for (a
    sandbox payment provider confirming payments itself a moment later)."""

    @property
    def pending(self) -> int:
        """How many pieces of work are still running."""
        ...

    async def settle(self) -> None:
        """Wait until they are done."""
        ...


class TerminalChat:
    """A chat session between the terminal and an engine, as one contact."""

    def __init__(
        self,
        engine: Engine,
        phone: str,
        *,
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
        files_dir: Path = Path("nyala-chat-files"),
        background: Sequence[Settles] | None = None,
        file_limits: FileLimits | None = None,
    ) -> None:
        self.engine = engine
        self.contact = ContactRef(wa_id=phone, profile_name=None)
        self.stdin = stdin
        self.stdout = stdout
        self.files_dir = files_dir
        self.file_limits = file_limits or FileLimits()
        self.options: list[Option] = []
        self.interactive = stdin.isatty()
        self._ids = itertools.count(1)
        self._session = f"{int(time.time() * 1000):x}"
        # By default the engine's services that work in the background.
        self.background: Sequence[Settles] = (
            background
            if background is not None
            else [s for s in engine.services.values() if isinstance(s, Settles)]
        )
        self._shown_up_to = 0  # the last outbound row shown that was not a reply

    def _print(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    async def run(self) -> None:
        """Read lines until end of input or ``/quit``; answer each."""
        self._print(
            f"Chatting with {self.engine.app.name} as +{self.contact.wa_id} "
            "(sandbox: nothing is sent to WhatsApp). Type /quit to leave."
        )
        await self._converse()

    async def _converse(self) -> None:
        self._shown_up_to = await self._last_outbound_id()
        await self._show_where_we_left_off()
        while True:
            await self._show_later_messages()
            self._prompt()
            line = await self._read_line()
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit", "/q"):
                break
            if not self.interactive:
                self._print(f"you> {text}")
            message = await self._message(text)
            if message is None:
                continue
            replies = await self.engine.handle(self.contact, message)
            # Numbers answer the options of this batch only; older options are stale.
            self.options = []
            for reply in replies:
                await self._show(reply)
            if not replies and await self._handed_off():
                self._print(
                    "     (a person has this conversation, so the bot stays quiet; give it "
                    f"back with: nyala handoff release +{self.contact.wa_id})"
                )

    def _prompt(self) -> None:
        if self.interactive:
            self.stdout.write("you> ")
            self.stdout.flush()

    async def _read_line(self) -> str:
        """The next line of input; meanwhile, messages sent to this contact from
        elsewhere (an operator's reply, a reminder) are shown as they arrive."""
        reading = asyncio.ensure_future(asyncio.to_thread(self.stdin.readline))
        while True:
            done, _ = await asyncio.wait({reading}, timeout=POLL_SECONDS)
            if done:
                return reading.result()
            if self.interactive:
                self.stdout.write("\r")
            if await self._show_later_messages(settle=False):
                self._prompt()

    async def _show_where_we_left_off(self) -> None:
        """On start: the question a flow is waiting on, and what was sent since the
        customer's last message (an operator's reply while the chat was closed)."""
        async with self.engine.db.read() as session:
            contact = await session.scalar(
                select(Contact).where(Contact.wa_id == self.contact.wa_id)
            )
            if contact is None:
                return
            conversation = await session.get(Conversation, contact.id)
            last_in = (
                await session.execute(
                    select(InboundMessage.id, InboundMessage.received_at)
                    .where(InboundMessage.contact_id == contact.id)
                    .order_by(InboundMessage.id.desc())
                    .limit(1)
                )
            ).first()
            if last_in is None:
                return
            mid_flow = conversation is not None and conversation.flow_name is not None
            answers = OutboundMessage.inbound_id == last_in.id
            since = and_(
                OutboundMessage.inbound_id.is_(None),
                OutboundMessage.created_at >= last_in.received_at,
            )
            rows = (
                await session.scalars(
                    select(OutboundMessage)
                    .where(
                        OutboundMessage.contact_id == contact.id,
                        or_(answers, since) if mid_flow else since,
                    )
                    .order_by(OutboundMessage.id)
                )
            ).all()
        if not rows:
            return
        self._print("     (where we left off)")
        for row in rows:
            await self._show(reply_from_payload(row.kind, row.payload))

    def _next_id(self) -> str:
        return f"wamid.chat.{self._session}.{next(self._ids)}"

    async def _message(self, text: str) -> UserMessage | None:
        if text == "/help":
            self._print(CHAT_HELP)
            return None
        if text.startswith("/file "):
            return await self._file_message(text.removeprefix("/file ").strip())
        if text.startswith("/location "):
            try:
                lat, lon = (float(v) for v in text.removeprefix("/location ").split(","))
            except ValueError:
                self._print("usage: /location LATITUDE,LONGITUDE (e.g. /location -17.83,31.05)")
                return None
            return UserMessage(
                id=self._next_id(), kind="location", location=Location(latitude=lat, longitude=lon)
            )
        if text.startswith("/"):
            self._print(f"unknown command {text.split(maxsplit=1)[0]}. {CHAT_HELP}")
            return None
        if text.isdigit() and 1 <= int(text) <= len(self.options):
            option = self.options[int(text) - 1]
            return UserMessage(
                id=self._next_id(), kind="reply", reply_id=option.id, text=option.title
            )
        for option in self.options:
            if text.casefold() == option.title.casefold():
                return UserMessage(
                    id=self._next_id(), kind="reply", reply_id=option.id, text=option.title
                )
        return UserMessage(id=self._next_id(), kind="text", text=text)

    async def _file_message(self, name: str) -> UserMessage | None:
        path = await asyncio.to_thread(lambda: Path(name).expanduser())
        try:
            content = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            self._print(f"cannot read {path}: {exc.strerror}")
            return None
        claimed = mimetypes.guess_type(path.name)[0]
        # The same checks as a file a customer sends on WhatsApp (bot.files): a file
        # that is not what its name says, or too large, is refused and not stored.
        try:
            checked = await asyncio.to_thread(
                check_file, content, kind=None, claimed_mime=claimed, limits=self.file_limits
            )
        except FileRefusedError as exc:
            self._print(f"cannot send {path.name}: {exc.reason}")
            return None
        mime = checked.mime_type
        async with self.engine.db.transaction() as session:
            row = StoredFile.from_bytes(path.name, mime, content)
            session.add(row)
            await session.flush()
            file_id = row.id
        kind: MessageKind = "image" if checked.kind == "image" else "document"
        media = Media(
            id=f"stored:{file_id}", mime_type=mime, sha256=row.sha256,
            filename=path.name, size=len(content),
        )  # fmt: skip
        return UserMessage(id=self._next_id(), kind=kind, media=media)

    async def _show(self, reply: Reply) -> None:
        if isinstance(reply, Document):
            await self._save_document(reply)
            return
        if isinstance(reply, LocationPin):
            label = reply.name or "Location"
            url = f"https://maps.google.com/?q={reply.latitude},{reply.longitude}"
            self._print(f"bot> 📍 {label} ({reply.latitude}, {reply.longitude}) {url}")
            return
        body = reply.fallback or reply.name if isinstance(reply, Template) else reply_text(reply)
        lines = body.splitlines() or [""]
        self._print(f"bot> {lines[0]}")
        for line in lines[1:]:
            self._print(f"     {line}")
        options = reply_options(reply)
        if options:
            self.options = list(options)
            for number, option in enumerate(options, 1):
                extra = f" ({option.description})" if option.description else ""
                self._print(f"     {number}. {option.title}{extra}")

    async def _handed_off(self) -> bool:
        async with self.engine.db.read() as session:
            contact_id = await session.scalar(
                select(Contact.id).where(Contact.wa_id == self.contact.wa_id)
            )
            conversation = await session.get(Conversation, contact_id) if contact_id else None
        return conversation is not None and conversation.handed_off_at is not None

    async def _last_outbound_id(self) -> int:
        async with self.engine.db.read() as session:
            last = await session.scalar(
                select(func.max(OutboundMessage.id))
                .join(Contact, Contact.id == OutboundMessage.contact_id)
                .where(Contact.wa_id == self.contact.wa_id)
            )
        return int(last or 0)

    async def _show_later_messages(self, *, settle: bool = True) -> int:
        """Show messages queued for this contact outside a reply and not shown yet (e.g. a
        sandbox payment confirming itself a moment after the bot asked for it, an
        operator's reply); with ``settle``, first wait for the app's background work.
        Returns how many were shown."""
        busy = [service for service in self.background if service.pending] if settle else []
        if busy:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETTLE_SECONDS):
                    await asyncio.gather(*(service.settle() for service in busy))
        async with self.engine.db.read() as session:
            rows = (
                await session.scalars(
                    select(OutboundMessage)
                    .join(Contact, Contact.id == OutboundMessage.contact_id)
                    .where(
                        Contact.wa_id == self.contact.wa_id,
                        OutboundMessage.id > self._shown_up_to,
                        # Replies to a message carry its id and were shown as its answer.
                        OutboundMessage.inbound_id.is_(None),
                    )
                    .order_by(OutboundMessage.id)
                )
            ).all()
        for row in rows:
            await self._show(reply_from_payload(row.kind, row.payload))
            self._shown_up_to = row.id
        return len(rows)

    async def _save_document(self, reply: Document) -> None:
        async with self.engine.db.read() as session:
            row = await session.get(StoredFile, reply.file_id)
        if row is None:
            self._print(f"bot> 📄 {reply.filename} (file missing)")
            return
        # Documents may carry personal data: only the user running the chat reads
        # them (a new folder 0700, each file 0600, whatever the umask).
        self.files_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.files_dir / Path(reply.filename).name
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
        with os.fdopen(descriptor, "wb") as file:
            file.write(row.data)
        caption = f" — {reply.caption}" if reply.caption else ""
        self._print(f"bot> 📄 {reply.filename} saved to {target}{caption}")
