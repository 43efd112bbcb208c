"""An operator's messages carry a mark no nick can contain (issue 15, item 2; docs/protocol.md §9.4).

The server puts `"operator": true` on an operator's `message`, the store keeps
it, and every place a person reads a line shows `@teacher`: line mode, the
terminal UI, and the text, JSON lines and HTML exports. A look-alike nick
(one the skeleton misses, a capital I for an l) gets no mark.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from chatclient.render import fragments, fragments_text, plain
from chatclient.state import ClientState
from chatsrv.export import main as export_main
from chatsrv.sqlitefile import MIGRATIONS, read_events
from chatsrv.sqlitestore import SQLiteStore
from chatsrv.store import Event
from tests.helpers import Client
from tests.integration.test_cli import client as chatclient_process
from tests.integration.test_cli import finish, read_until, start_server
from tests.integration.test_ui_terminal import free_port, join_args, servers, terminals

__all__ = ["servers", "terminals"]  # fixtures used below

OP_SECRET = "chalk-42"


def test_only_an_operators_messages_are_marked_also_in_history(make_server) -> None:
    """`operator: true` on the teacher's messages (live and in a newcomer's history), never on a student's."""
    server = make_server("--rate", "0", "--op-secret", OP_SECRET)
    with Client(server.port) as teacher, Client(server.port) as student, Client(server.port) as newcomer:
        teacher.join("teacher")
        student.join("teacher_lookalike")
        teacher.send({"type": "say", "text": "before op"})
        assert "operator" not in student.expect("message")
        teacher.send({"type": "op", "secret": OP_SECRET})
        teacher.expect("notice", event="op")
        teacher.send({"type": "say", "text": "hello class"})
        teacher.send({"type": "say", "text": "waves", "action": True})
        assert student.expect("message", text="hello class")["operator"] is True
        assert student.expect("message", text="waves")["operator"] is True
        student.send({"type": "say", "text": "me too"})
        assert "operator" not in teacher.expect("message", text="me too")
        history = newcomer.join("newcomer")["history"]
        assert [m.get("operator") for m in history] == [None, True, True, None]


def test_the_store_keeps_the_mark_and_reads_files_from_before_it(tmp_path: Path) -> None:
    """An operator's message comes back from SQLite marked; a version 1 file (no column) is read and migrated."""
    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as connection:
        for statement in MIGRATIONS[1]:
            connection.execute(statement)
        connection.execute("INSERT INTO messages VALUES (1, 1.5, 'lobby', 'lobby', 'teacher', 'old', 0, 'tcp')")
        connection.execute("PRAGMA user_version = 1")
        connection.execute("PRAGMA application_id = 1279348291")
    connection.close()
    assert [(e.text, e.operator) for e in read_events(str(old))] == [("old", False)]
    store = SQLiteStore(str(old))
    try:
        store.add(Event("message", 2.5, "teacher", "lobby", "new", 2, transport="tcp", operator=True))
    finally:
        store.close()
    assert [(e.text, e.operator) for e in read_events(str(old))] == [("old", False), ("new", True)]
    assert read_events(str(old)).__next__().payload().get("operator") is None
    assert list(read_events(str(old)))[1].payload()["operator"] is True


@pytest.fixture
def lesson(tmp_path: Path) -> Path:
    """A lesson saved by a real chatsrv process: the teacher (operator) speaks and acts, a student speaks."""
    db = tmp_path / "lesson.sqlite3"
    process, port = start_server("--rate", "0", "--op-secret", OP_SECRET, "--db", str(db))
    teacher = chatclient_process(port, "teacher")
    student = chatclient_process(port, "sam")
    try:
        read_until(teacher, r"you are teacher in lobby")
        read_until(student, r"you are sam in lobby")
        assert teacher.stdin and student.stdin
        teacher.stdin.write(f"/op {OP_SECRET}\nhello class\n/me waves\n")
        teacher.stdin.flush()
        # Line mode: the student sees the mark on the teacher's lines.
        read_until(student, r"^\[\d\d:\d\d\] <@teacher> hello class$")
        read_until(student, r"^\[\d\d:\d\d\] \* @teacher waves$")
        read_until(teacher, r"^\[\d\d:\d\d\] <@teacher> hello class$")  # its own line too
        student.stdin.write("hi teacher\n")
        student.stdin.flush()
        read_until(teacher, r"^\[\d\d:\d\d\] <sam> hi teacher$")
    finally:
        finish(teacher, student)
        process.terminate()
        process.wait(5)
        finish(process)
    return db


def export(db: Path, fmt: str) -> str:
    out = io.StringIO()
    assert export_main(["--db", str(db), "--format", fmt], out=out) == 0
    return out.getvalue()


def test_line_mode_and_all_three_exports_mark_the_operator(lesson: Path) -> None:
    """Line mode shows `<@teacher>` (in the fixture); text and HTML exports show `@teacher`, JSON lines `operator`."""
    text = export(lesson, "text")
    assert "#lobby <@teacher> hello class" in text
    assert "#lobby * @teacher waves" in text
    assert "#lobby <sam> hi teacher" in text and "@sam" not in text

    records = [json.loads(line) for line in export(lesson, "jsonl").splitlines()]
    messages = {r["text"]: r for r in records if r["type"] == "message"}
    assert messages["hello class"]["operator"] is True and messages["hello class"]["from"] == "teacher"
    assert messages["waves"]["operator"] is True
    assert "operator" not in messages["hi teacher"]

    page = export(lesson, "html")
    assert '<span class="nick operator" title="operator"' in page
    assert "@<bdi>teacher</bdi></span> <span class=\"text\"><bdi>hello class</bdi>" in page
    assert "* <span class=\"nick operator\"" in page
    assert "@<bdi>sam</bdi>" not in page


@pytest.mark.timeout(60)
def test_the_terminal_ui_marks_the_operators_lines(servers, terminals) -> None:
    """In the terminal UI the teacher's lines read `@teacher │ …`; a student's own and others' lines carry no @."""
    port = free_port()
    servers(port, "--op-secret", OP_SECRET)
    teacher = terminals(*join_args(port, "teacher"))
    teacher.wait_for(lambda: "teacher@lobby" in teacher.toolbar and "connected" in teacher.toolbar)
    student = terminals(*join_args(port, "sam"))
    student.wait_for(lambda: "sam@lobby" in student.toolbar and "connected" in student.toolbar)
    teacher.type("hi before op\r")
    student.wait_for("teacher │ hi before op")
    assert "@teacher │ hi before op" not in student.text()
    teacher.type(f"/op {OP_SECRET}\r")
    student.wait_for(lambda: "│ @teacher │" in student.toolbar)
    teacher.type("hello class\r")
    student.wait_for("@teacher │ hello class")
    teacher.type("/me waves\r")
    student.wait_for("* │ @teacher waves")
    student.type("thanks\r")
    teacher.wait_for("sam │ thanks")
    assert "@sam" not in teacher.text()
    teacher.wait_for("@teacher │ hello class")  # the operator's own lines carry the mark too


def test_render_puts_the_mark_only_where_the_server_put_it() -> None:
    """`<@teacher>` and `* @teacher` for a marked line in both faces; an unmarked nick never gets an @."""
    state = ClientState(nick="sam", operators=["teacher"])  # the user list alone does not mark a line
    marked = {"type": "message", "id": 1, "room": "lobby", "from": "teacher", "text": "hi", "ts": 0.0}
    lines = state.apply({**marked, "operator": True})
    lines += state.apply({**marked, "id": 2, "action": True, "operator": True})
    unmarked = state.apply({**marked, "id": 3, "from": "teacher"})
    assert plain(lines[0]).endswith("] <@teacher> hi") and plain(lines[1]).endswith("] * @teacher hi")
    assert plain(unmarked[0]).endswith("] <teacher> hi")
    assert "@teacher │ hi" in fragments_text(fragments(lines[0]))
    assert "* │ @teacher hi" in fragments_text(fragments(lines[1]))
    assert "@" not in fragments_text(fragments(unmarked[0]))
