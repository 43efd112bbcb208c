"""The exports tell the lesson: every kind of lesson event, in text, JSON lines and HTML, marked as what it is.

Two servers in this process share one SQLite file (a restart); `chatsrv export` reads it afterwards.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from chatsrv import export
from tests.helpers import Client

SECRET = "transcript-secret"
KINDS = ("announce", "topic", "mute", "unmute", "lock", "unlock", "slow", "kick", "ban", "restarted")


def exported(db: Path, fmt: str) -> str:
    out = io.StringIO()
    assert export.main(["--db", str(db), "--format", fmt], out=out) == 0
    return out.getvalue()


@pytest.mark.timeout(60)
def test_exports_contain_every_lesson_event(make_server, tmp_path: Path) -> None:
    db = tmp_path / "lesson.sqlite3"
    first = make_server("--rate", "0", "--db", str(db), "--op-secret", SECRET, "--no-udp")
    with Client(first.port) as teacher, Client(first.port) as bob, Client(first.port, source="127.0.0.2") as eve:
        teacher.join("teacher", room="maths")
        bob.join("bob", room="maths")
        eve.join("eve", room="maths")
        teacher.send({"type": "op", "secret": SECRET})
        for payload in (
            {"type": "announce", "text": "exam on friday"},
            {"type": "topic", "text": "fractions"},
            {"type": "mute", "nick": "bob", "minutes": 5},
            {"type": "unmute", "nick": "bob"},
            {"type": "lock"},
            {"type": "unlock"},
            {"type": "slow", "seconds": 3},
            {"type": "kick", "nick": "bob", "reason": "shouting"},
            {"type": "kick", "nick": "eve", "reason": "spam", "ban": True},
        ):
            teacher.send(payload)
        teacher.expect("notice", event="ban")
        first.stop()  # while the teacher is still connected: a restart, not a leave (closing first races it)
    second = make_server("--rate", "0", "--db", str(tmp_path / "lesson.sqlite3"), "--no-udp")
    with Client(second.port) as teacher:
        teacher.join("teacher", room="maths")
    second.stop()

    text = exported(db, "text")
    for kind in KINDS:
        assert f"!! [{kind}]" in text, (kind, text)
    assert "announcement from teacher: exam on friday" in text
    assert "teacher kicked bob: shouting" in text and "teacher banned eve: spam" in text
    assert "server restarted after" in text and "1 back within" in text
    assert "teacher is back" not in text and "(shutdown)" not in text

    records = [json.loads(line) for line in exported(db, "jsonl").splitlines()]
    events = {record.get("event") for record in records if record["type"] == "notice"}
    assert events == set(KINDS)
    kick = next(record for record in records if record.get("event") == "kick")
    assert kick["by"] == "teacher" and kick["nick"] == "bob" and kick["text"] == "shouting"

    page = exported(db, "html")
    for kind in KINDS:
        assert f'class="notice {kind}"' in page, kind
