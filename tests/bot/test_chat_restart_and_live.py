"""``nyala chat`` shows what was sent from elsewhere as it arrives, and picks up where it
left off: an operator's reply while the chat waits for input is printed at once; one sent
while the chat was closed, and the question a flow waits on, are shown on start."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from pathlib import Path

from sqlalchemy import func, select

from bot.cli.chat import TerminalChat
from flows import App, Engine
from flows.messages import Text, reply_to_payload
from storage import Contact, Database, OutboundMessage, OutboundStatus, StoredFile

PHONE = "263770000777"


class Screen(io.StringIO):
    """What the chat printed, with a way to wait until a line appears."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        self.changed.set()
        return written

    async def shows(self, line: str, within: float = 15.0) -> None:
        async with asyncio.timeout(within):
            while line not in self.getvalue().splitlines():
                self.changed.clear()
                await asyncio.to_thread(self.changed.wait, 0.2)


async def operator_reply(db: Database, text: str) -> None:
    """What the console's reply does in sandbox mode: a row outside any answer."""
    async with db.transaction() as session:
        contact = await session.scalar(select(Contact).where(Contact.wa_id == PHONE))
        assert contact is not None
        session.add(
            OutboundMessage(
                contact_id=contact.id,
                kind="text",
                payload=reply_to_payload(Text(text)),
                status=OutboundStatus.SANDBOX,
            )
        )


async def test_an_operator_reply_shows_while_the_chat_waits_for_input(
    db: Database, cafe: App, tmp_path: Path
) -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "r") as stdin, os.fdopen(write_end, "w") as keyboard:
        screen = Screen()
        chat = TerminalChat(
            Engine(db, cafe), PHONE, stdin=stdin, stdout=screen, files_dir=tmp_path
        )
        running = asyncio.create_task(chat.run())
        keyboard.write("order\n")
        keyboard.flush()
        await screen.shows("bot> Your name?")
        # Nothing typed: the chat is waiting for the next line when the operator writes.
        await operator_reply(db, "Hi, this is Rudo from the café. Anything I can help with?")
        await screen.shows("bot> Hi, this is Rudo from the café. Anything I can help with?")
        keyboard.write("/quit\n")
        keyboard.flush()
        await asyncio.wait_for(running, 15)


async def test_a_restarted_chat_repeats_the_question_and_what_came_meanwhile(
    db: Database, cafe: App, tmp_path: Path
) -> None:
    first = io.StringIO()
    engine = Engine(db, cafe)
    await TerminalChat(
        engine, PHONE, stdin=io.StringIO("order\n"), stdout=first, files_dir=tmp_path
    ).run()
    assert "bot> Your name?" in first.getvalue().splitlines()
    await operator_reply(db, "We open at 8 tomorrow.")

    again = io.StringIO()
    await TerminalChat(
        engine, PHONE, stdin=io.StringIO("Ada Lovelace\n"), stdout=again, files_dir=tmp_path
    ).run()
    lines = again.getvalue().splitlines()
    start = lines.index("     (where we left off)")
    assert lines[start + 1 : start + 3] == ["bot> Your name?", "bot> We open at 8 tomorrow."]
    # The answer continues the flow, and what was shown is not shown twice.
    assert "bot> Which size, Ada Lovelace?" in lines
    assert lines.count("bot> We open at 8 tomorrow.") == 1


async def test_a_chat_with_nothing_pending_starts_quietly(
    db: Database, cafe: App, tmp_path: Path
) -> None:
    out = io.StringIO()
    await TerminalChat(
        Engine(db, cafe), PHONE, stdin=io.StringIO(""), stdout=out, files_dir=tmp_path
    ).run()
    assert "(where we left off)" not in out.getvalue()


async def test_a_file_that_is_not_what_its_name_says_is_refused_and_not_stored(
    db: Database, cafe: App, tmp_path: Path
) -> None:
    fake = tmp_path / "passport.png"
    fake.write_text("<html><script>alert(1)</script></html>")
    out = io.StringIO()
    await TerminalChat(
        Engine(db, cafe), PHONE, stdin=io.StringIO(f"/file {fake}\n"), stdout=out,
        files_dir=tmp_path,
    ).run()  # fmt: skip
    assert "cannot send passport.png: it contains a web page or a program" in out.getvalue()
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(StoredFile)) == 0
