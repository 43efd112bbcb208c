"""Teacher controls in the real terminal UI: a teacher (TCP) and a student (UDP) in pseudo-terminals."""

from __future__ import annotations

import pytest

from tests.integration.test_ui_terminal import free_port, join_args, servers, terminals

__all__ = ["servers", "terminals"]  # fixtures used below


@pytest.mark.timeout(60)
def test_password_prompt_op_mute_lock_kick_in_the_terminal(servers, terminals) -> None:
    """The student is asked for the password; the toolbars mark the operator, the student's mute and the lock; a kick
    is explained."""
    port = free_port()
    servers(port, "--password", "class101", "--op-secret", "chalk-42")
    teacher = terminals(*join_args(port, "teacher", "--password", "class101"))
    teacher.wait_for(lambda: "teacher@lobby" in teacher.toolbar and "connected" in teacher.toolbar)

    student = terminals(*join_args(port, "sam", "--udp"))
    student.wait_for(lambda: student.prompt_row.startswith("password:"))
    student.type("class101\r")
    student.wait_for(
        lambda: "sam@lobby" in student.toolbar and "UDP" in student.toolbar and "connected" in student.toolbar
    )
    assert "class101" not in student.raw.decode("utf-8", "replace")

    teacher.type("/op chalk-42\r")
    teacher.wait_for(lambda: "teacher@lobby │ operator" in teacher.toolbar)
    student.wait_for(lambda: "│ @teacher │" in student.toolbar)

    teacher.type("/mute sam 5\r")
    student.wait_for(lambda: "muted 5 min" in student.toolbar)
    student.wait_for("teacher muted you for 5 minute(s).")
    student.type("hello?\r")
    student.wait_for("you are muted by teacher")

    teacher.type("/unmute sam\r")
    student.wait_for(lambda: "muted" not in student.toolbar)
    teacher.type("/mute sam 0.03\r")  # 1.8 s: ends on the student's clock, the server says nothing
    student.wait_for(lambda: "muted 1 min" in student.toolbar)
    student.wait_for(lambda: "muted" not in student.toolbar and "your mute has ended" in student.text(), timeout=10)
    student.type("free again\r")
    teacher.wait_for("sam │ free again")
    teacher.type("/lock\r")
    student.wait_for(lambda: "room locked" in student.toolbar and "muted" not in student.toolbar)

    teacher.type("/kick sam that is all for today\r")
    student.wait_for("teacher kicked you out of the chat: that is all for today.")
    student.wait_for(lambda: "disconnected" in student.toolbar)
    # The session is over: no operator names or room marks from it stay in the bar.
    assert "@teacher" not in student.toolbar and "room locked" not in student.toolbar
    teacher.wait_for("sam was kicked by teacher")
