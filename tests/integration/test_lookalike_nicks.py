"""End to end over TCP: while `teacher` is online, no look-alike of it can join; other scripts can."""

from __future__ import annotations

from tests.unit.test_lookalike import LOOKALIKES, SINGLE_SCRIPT


def test_lookalikes_refused_and_single_script_nicks_join(clients) -> None:
    """Every look-alike of the issue gets its error over TCP; nicks in one script each join."""
    teacher = clients()
    teacher.join("teacher")
    student = clients()
    for nick, code in LOOKALIKES:
        student.send({"type": "hello", "nick": nick})
        assert student.expect("error")["code"] == code, ascii(nick)
    for nick in SINGLE_SCRIPT:
        member = clients()
        assert member.join(nick)["nick"] == nick
    assert student.join("student")["nick"] == "student"
