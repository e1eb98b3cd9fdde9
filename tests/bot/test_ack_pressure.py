"""Acknowledgements first across processes: under a flood of webhooks, processing and
sending (other processes of the same ``nyala serve``) make way, never for longer than
``max_hold`` at a time, and lose or reorder nothing."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from multiprocessing.queues import Queue

import pytest
from aiohttp import ClientSession

from bot.metrics import Metrics
from bot.settings import Settings
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.outbox import Outbox
from bot.whatsapp.pressure import AckPressure
from bot.whatsapp.processing import Announcer, Processor
from flows import App, Engine
from storage import Database, InboundStatus
from tests.bot.test_inbox_priority import pending_for, statuses


def _pressed(pressure: AckPressure) -> bool:
    """``pressure.pressed`` (a call, so that mypy does not narrow it between looks)."""
    return pressure.pressed


def test_requests_in_flight_press_the_webhook_from_the_threshold_on() -> None:
    pressure = AckPressure(requests=3, window=0.05)
    assert not _pressed(pressure)
    with pressure.acknowledging(), pressure.acknowledging():
        assert not _pressed(pressure)  # two in flight: below the threshold
        with pressure.acknowledging():
            assert _pressed(pressure)
    assert _pressed(pressure)  # for ``window`` after the last of three ended
    time.sleep(0.08)
    assert not _pressed(pressure)


def test_zero_requests_never_press() -> None:
    pressure = AckPressure(requests=0)
    with pressure.acknowledging(), pressure.acknowledging():
        assert not _pressed(pressure)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        AckPressure(requests=-1)
    with pytest.raises(ValueError, match="negative"):
        AckPressure(max_hold=-0.1)


def test_the_settings_default_to_eight_requests_and_a_quarter_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NYALA_ACK_PRESSURE", raising=False)
    monkeypatch.delenv("NYALA_ACK_MAX_HOLD", raising=False)
    settings = Settings()
    assert (settings.ack_pressure, settings.ack_max_hold) == (8, 0.25)
    monkeypatch.setenv("NYALA_ACK_PRESSURE", "0")
    monkeypatch.setenv("NYALA_ACK_MAX_HOLD", "1.5")
    tuned = Settings()
    assert (tuned.ack_pressure, tuned.ack_max_hold) == (0, 1.5)


async def test_making_way_costs_nothing_when_the_webhook_is_not_pressed() -> None:
    pressure = AckPressure(requests=1)
    assert await pressure.make_way() == 0.0
    assert pressure.holds == 0


async def test_making_way_waits_until_the_pressure_ends() -> None:
    pressure = AckPressure(requests=1, window=0.3, max_hold=5.0)
    with pressure.acknowledging():
        pass
    waited = await pressure.make_way()
    assert 0.2 <= waited < 2.0
    assert not _pressed(pressure)
    assert (pressure.holds, pressure.held_seconds) == (1, waited)


async def test_a_flood_that_never_ends_holds_each_round_for_max_hold_at_most() -> None:
    pressure = AckPressure(requests=1, window=0.5, max_hold=0.15)
    stop = asyncio.Event()

    async def flood() -> None:
        while not stop.is_set():
            with pressure.acknowledging():
                await asyncio.sleep(0.005)

    flooding = asyncio.create_task(flood())
    await asyncio.sleep(0.01)  # the flood has begun
    try:
        rounds = [await pressure.make_way() for _ in range(3)]
        assert _pressed(pressure)
    finally:
        stop.set()
        await flooding
    assert all(0.1 <= waited < 1.0 for waited in rounds), rounds


def _press_in_a_child(pressure: AckPressure, said: Queue[bool]) -> None:
    with pressure.acknowledging():
        said.put(pressure.pressed)


async def _wait_in_a_child(pressure: AckPressure) -> float:
    return await pressure.make_way()


def _make_way_in_a_child(pressure: AckPressure, said: Queue[float]) -> None:
    said.put(asyncio.run(_wait_in_a_child(pressure)))


def test_the_pressure_is_shared_with_the_processes_serve_starts() -> None:
    """The webhook's process (here a child) presses; another process holds: the double
    is in shared memory, handed over as a ``Process`` argument as ``serve`` does."""
    spawn = multiprocessing.get_context("spawn")
    pressure = AckPressure.shared(spawn, requests=1, max_hold=0.3)
    pressure.window = 3600.0  # pressed for as long as this test runs
    said: Queue[bool] = spawn.Queue()
    child = spawn.Process(target=_press_in_a_child, args=(pressure, said))
    child.start()
    assert said.get(timeout=60) is True
    child.join(timeout=60)
    assert _pressed(pressure)  # seen here, pressed there
    waits: Queue[float] = spawn.Queue()
    holder = spawn.Process(target=_make_way_in_a_child, args=(pressure, waits))
    holder.start()
    waited = waits.get(timeout=60)
    holder.join(timeout=60)
    assert 0.25 <= waited < 5.0  # it held, for ``max_hold``
    unpressed = AckPressure.shared(spawn, requests=1, max_hold=0.3)
    waits = spawn.Queue()
    holder = spawn.Process(target=_make_way_in_a_child, args=(unpressed, waits))
    holder.start()
    assert waits.get(timeout=60) == 0.0  # no one pressed this one: no wait
    holder.join(timeout=60)


async def test_processing_holds_while_pressed_then_processes_everything(
    db: Database, cafe: App
) -> None:
    engine = Engine(db, cafe, sandbox=True)
    pressure = AckPressure(requests=1, window=0.6, max_hold=30.0)
    processor = Processor(engine, Metrics(), batch_size=2, busy_window=0.0, pressure=pressure)
    contact_ids = await pending_for(engine, 4)
    with pressure.acknowledging():  # a flood's request, as the webhook's process sees it
        pass
    processor.kick(contact_ids)
    await asyncio.sleep(0.3)
    assert await statuses(db) == [InboundStatus.PENDING] * 4  # made way
    await asyncio.wait_for(processor.drain(), timeout=60)
    assert await statuses(db) == [InboundStatus.DONE] * 4  # nothing lost
    assert pressure.holds >= 1
    assert pressure.held_seconds >= 0.3


async def test_processing_never_starves_under_a_flood_that_never_ends(
    db: Database, cafe: App
) -> None:
    engine = Engine(db, cafe, sandbox=True)
    pressure = AckPressure(requests=1, window=3600.0, max_hold=0.2)
    processor = Processor(engine, Metrics(), batch_size=1, busy_window=0.0, pressure=pressure)
    contact_ids = await pending_for(engine, 3)
    with pressure.acknowledging():
        pass
    processor.kick(contact_ids)
    await asyncio.wait_for(processor.drain(), timeout=60)
    assert _pressed(pressure)
    assert await statuses(db) == [InboundStatus.DONE] * 3
    assert pressure.holds >= 3  # one batch per ``max_hold`` at most


async def test_the_sender_makes_way_before_each_round(db: Database) -> None:
    pressure = AckPressure(requests=1, window=0.3, max_hold=30.0)
    async with ClientSession() as http:
        client = GraphClient(
            http, base_url="http://127.0.0.1:9/v23.0", access_token="t", phone_number_id="1"
        )
        outbox = Outbox(db, client, Metrics(), pressure=pressure)
        assert await outbox.send_due() == 0
        assert pressure.holds == 0  # not pressed: no wait
        with pressure.acknowledging():
            pass
        started = time.monotonic()
        assert await outbox.send_due() == 0
    assert time.monotonic() - started >= 0.25
    assert pressure.holds == 1


async def test_the_announcing_webhook_presses(db: Database) -> None:
    pressure = AckPressure(requests=2, window=0.05)
    announcer = Announcer(db, pressure=pressure)
    with announcer.acknowledging():
        assert not _pressed(pressure)
        with announcer.acknowledging():
            assert _pressed(pressure)
    without = Announcer(db)
    with without.acknowledging():  # no pressure to tell: nothing happens
        pass
