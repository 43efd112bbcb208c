"""Moderation that ends visibly, end to end with a real chatsrv process.

`/lock all` is typed by the teacher in a line-mode chatclient; students are raw protocol clients.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import Client
from tests.integration.test_cli import client, finish, read_until, start_server

SECRET = "lock-all-secret"


@pytest.mark.timeout(60)
def test_lock_all_blocks_join_and_speaking_everywhere_for_students() -> None:
    server, port = start_server("--no-udp", "--rate", "0", "--op-secret", SECRET)
    teacher: subprocess.Popen[str] | None = None
    try:
        with Client(port) as bob, Client(port) as carol:
            bob.join("bob", room="lobby")
            carol.join("carol", room="maths")
            teacher = client(port, "teacher")
            assert teacher.stdin is not None
            read_until(teacher, r"you are teacher in lobby")
            bob.expect("joined", nick="teacher")
            teacher.stdin.write(f"/op {SECRET}\n/lock all\n")
            teacher.stdin.flush()
            read_until(teacher, r"locked every room")
            for student in (bob, carol):
                notice = student.expect("notice", event="lock")
                assert notice["all"] is True and "only operators may speak or change rooms" in notice["text"]
                student.send({"type": "say", "text": "anyone?"})
                assert student.expect("error")["code"] == "not_allowed"
            bob.send({"type": "join", "room": "recess"})
            refused = bob.expect("error")
            assert refused["code"] == "not_allowed" and "stay where you are" in refused["message"]
            carol.send({"type": "join", "room": "lobby"})
            assert carol.expect("error")["code"] == "not_allowed"
            teacher.stdin.write("/join maths\nstill my lesson\n")
            teacher.stdin.flush()
            assert carol.expect("message", text="still my lesson")["from"] == "teacher"
            teacher.stdin.write("/unlock all\n")
            teacher.stdin.flush()
            assert "everyone may speak" in carol.expect("notice", event="unlock")["text"]
            bob.expect("notice", event="unlock")
            bob.send({"type": "join", "room": "recess"})
            assert bob.expect("welcome")["room"] == "recess"
            carol.send({"type": "say", "text": "free again"})
            assert carol.expect("message", text="free again")["from"] == "carol"
    finally:
        if teacher is not None:
            finish(teacher)
        finish(server)


@pytest.mark.timeout(60)
def test_a_timed_mute_ends_with_a_notice_while_nobody_speaks() -> None:
    """A real chatsrv ends a timed mute on time by itself (its tick) and tells the member, who may speak again."""
    server, port = start_server("--no-udp", "--rate", "0", "--op-secret", SECRET)
    try:
        with Client(port) as teacher, Client(port) as bob:
            teacher.join("teacher")
            bob.join("bob")
            teacher.send({"type": "op", "secret": SECRET})
            teacher.expect("notice", event="op")
            teacher.send({"type": "mute", "nick": "bob", "minutes": 0.02})  # 1.2 s
            assert bob.expect("notice", event="mute")["minutes"] == 0.02
            ended = bob.expect("notice", event="unmute", timeout=10)
            assert ended["expired"] is True and ended["nick"] == "bob" and "hears you again" in ended["text"]
            bob.send({"type": "say", "text": "back"})
            assert teacher.expect("message", text="back")["from"] == "bob"
    finally:
        finish(server)
