"""The tour bot's promise, as a new customer meets it: ``nyala chat`` on a fresh database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.cli import nyala

PHONE = "263775550199"


def chat(cwd: Path, script: str) -> str:
    result = nyala("chat", "--as", PHONE, cwd=cwd, stdin=script)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_book_pay_upload_ids_and_reach_a_person(tmp_path: Path) -> None:
    # Book the first tour's first date for one traveler, pay with Omari (sandbox provider).
    out = chat(tmp_path, "hi\n1\n1\n1\n1\nRudo Chikwanha\nrudo@example.com\n1\n1\n1\n")
    assert "Please check your booking:" in out
    assert "You're booked! Your reference is" in out
    assert "approve the Omari payment" in out
    assert "✅ Payment of USD" in out and "received for booking SAF-" in out
    # Upload the traveler's ID as a PDF, then ask for a person.
    (tmp_path / "passport.pdf").write_bytes(b"%PDF-1.4\n% passport scan\n")
    out = chat(tmp_path, "upload id\n/file passport.pdf\nagent\nChange my dates please\nhi\n")
    assert "Thanks, I've got the ID of Rudo Chikwanha." in out
    assert "I've asked a member of our team to take over." in out
    assert "the bot stays quiet" in out

    db = sqlite3.connect(tmp_path / "nyala.db")
    sessions = db.execute(
        "select s.flow_name, s.status from flow_sessions s join contacts c on c.id = s.contact_id"
        " where c.wa_id = ? order by s.id", (PHONE,),
    ).fetchall()  # fmt: skip
    assert sessions == [
        ("booking_flow", "completed"), ("payment_flow", "completed"),
        ("id_upload_flow", "completed"), ("support_flow", "completed"),
    ]  # fmt: skip
    steps = {
        (flow, step, action)
        for flow, step, action in db.execute(
            "select s.flow_name, e.step_name, e.action from flow_step_events e"
            " join flow_sessions s on s.id = e.session_id"
            " join contacts c on c.id = s.contact_id where c.wa_id = ?", (PHONE,),
        )
    }  # fmt: skip
    for expected in [
        ("booking_flow", "choose_tour", "completed"),
        ("booking_flow", "traveler_count", "completed"),
        ("booking_flow", "review_booking", "completed"),
        ("payment_flow", "omari_number", "completed"),
        ("id_upload_flow", "traveler_id", "completed"),
        ("support_flow", "support_topic", "completed"),
    ]:
        assert expected in steps
    payment = db.execute(
        "select p.method, p.status from payments p join bookings b on b.id = p.booking_id"
        " join customers cu on cu.id = b.customer_id join contacts c on c.id = cu.contact_id"
        " where c.wa_id = ?", (PHONE,),
    ).fetchone()  # fmt: skip
    assert payment == ("omari", "confirmed")
    (id_status,) = db.execute(
        "select t.id_status from travelers t join bookings b on b.id = t.booking_id"
        " join customers cu on cu.id = b.customer_id join contacts c on c.id = cu.contact_id"
        " where c.wa_id = ?", (PHONE,),
    ).fetchone()  # fmt: skip
    assert id_status == "received"
    (handed_off,) = db.execute(
        "select handed_off_at is not null from conversations cv join contacts c"
        " on c.id = cv.contact_id where c.wa_id = ?", (PHONE,),
    ).fetchone()  # fmt: skip
    assert handed_off == 1
