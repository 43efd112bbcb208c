"""Saved history with real servers: restarts, 10,000 messages, kill -9, faults, whispers."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatsrv.sqlitefile import read_events
from chatsrv.store import Event
from lanchat.wire import encode_frame, encode_payload
from tests.helpers import Client

ROOT = Path(__file__).resolve().parents[2]


def without_seq(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != "seq"}


def saved(path: Path, kind: str | None = None) -> list[Event]:
    return [event for event in read_events(str(path)) if kind is None or event.kind == kind]


def test_restart_keeps_history_ids_and_rooms(make_server, tmp_path: Path) -> None:
    """After a restart the welcome shows the same history, ids go on, and rooms with history are listed."""
    db = str(tmp_path / "lesson.sqlite3")
    first = make_server("--rate", "0", "--db", db)
    with Client(first.port) as alice, Client(first.port) as bob:
        alice.join("alice", room="Physics")
        bob.join("bob")
        said = []
        for text in ("F = m a", "energy is conserved", "any questions?"):
            alice.send({"type": "say", "text": text})
            said.append(without_seq(alice.expect("message", text=text)))
        bob.send({"type": "say", "text": "hello lobby"})
        said.append(without_seq(bob.expect("message", text="hello lobby")))
    first.stop()

    second = make_server("--rate", "0", "--db", db)
    with Client(second.port) as carol:
        welcome = carol.join("carol", room="physics")
        assert welcome["room"] == "Physics"
        assert [without_seq(item) for item in welcome["history"]] == said[:3]
        carol.send({"type": "say", "text": "back again"})
        assert carol.expect("message", text="back again")["id"] == said[-1]["id"] + 1
        carol.send({"type": "rooms"})
        assert carol.expect("rooms")["rooms"] == [{"name": "Physics", "users": 1}, {"name": "lobby", "users": 0}]


def test_joins_leaves_and_renames_are_saved(make_server, tmp_path: Path) -> None:
    """joined, left (with its reason; for a move, the room) and renamed events are in the file after a stop.

    The stop itself is no `left` per member (the next start records one `restarted` event per room).
    """
    db = tmp_path / "events.sqlite3"
    server = make_server("--rate", "0", "--db", str(db))
    with Client(server.port) as alice, Client(server.port) as bob:
        alice.join("alice")
        bob.join("bob")
        alice.send({"type": "nick", "nick": "alicia"})
        alice.expect("renamed")
        alice.send({"type": "join", "room": "lab"})
        alice.expect("welcome", room="lab")
        bob.send({"type": "bye"})
        bob.wait_closed()
        server.stop()
    events = [(e.kind, e.nick, e.room, e.new, e.reason) for e in saved(db)]
    assert events == [
        ("joined", "alice", "lobby", None, None),
        ("joined", "bob", "lobby", None, None),
        ("renamed", "alice", "lobby", "alicia", None),
        ("left", "alicia", "lobby", None, "moved"),
        ("joined", "alicia", "lab", None, None),
        ("left", "bob", "lobby", None, "quit"),
    ]
    assert [e.to for e in saved(db) if e.reason == "moved"] == ["lab"]


@pytest.mark.timeout(60)
def test_ten_thousand_messages_all_saved_after_clean_shutdown(make_server, tmp_path: Path) -> None:
    """10,000 messages sent as fast as possible are all in the file once stop() returns."""
    db = tmp_path / "many.sqlite3"
    server = make_server("--rate", "0", "--outbox", "0", "--db", str(db))
    total = 10_000
    with Client(server.port) as alice:
        alice.join("alice")
        for start in range(0, total, 500):
            frames = (encode_frame(encode_payload({"type": "say", "text": f"n{n}"})) for n in range(start, start + 500))
            alice.send_raw(b"".join(frames))
        last = alice.expect("message", timeout=30, text=f"n{total - 1}")
        server.stop()  # at once: the last batches are still queued for the writer
    messages = saved(db, "message")
    assert len(messages) == total
    assert [m.text for m in messages] == [f"n{n}" for n in range(total)]
    assert [m.id for m in messages] == list(range(1, total + 1)) and messages[-1].id == last["id"]


def test_whispers_saved_only_with_store_whispers(make_server, tmp_path: Path) -> None:
    """Whispers never reach the file unless the server runs with --store-whispers."""
    for flags, expected in (((), []), (("--store-whispers",), [("alice", "bob", "meet me after class")])):
        db = tmp_path / f"whispers{len(flags)}.sqlite3"
        server = make_server("--rate", "0", "--db", str(db), *flags)
        with Client(server.port) as alice, Client(server.port) as bob:
            alice.join("alice")
            bob.join("bob")
            alice.send({"type": "whisper", "to": "bob", "text": "meet me after class"})
            bob.expect("whisper")
            alice.send({"type": "say", "text": "public"})
            alice.expect("message", text="public")
        server.stop()
        assert [(w.nick, w.to, w.text) for w in saved(db, "whisper")] == expected
        assert [m.text for m in saved(db, "message")] == ["public"]
        if not expected:
            assert b"meet me after class" not in db.read_bytes()


def chat_works(port: int) -> None:
    with Client(port) as alice, Client(port) as bob:
        alice.join("alice")
        bob.join("bob")
        alice.send({"type": "say", "text": "still here"})
        assert bob.expect("message")["text"] == "still here"
        bob.send({"type": "say", "text": "me too"})
        assert alice.expect("message", text="me too")["from"] == "bob"


def database_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "database" in r.getMessage()]


def test_corrupt_database_does_not_stop_the_chat(make_server, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A damaged file: one log line, the chat works in memory, the file is left as it was."""
    db = tmp_path / "damaged.sqlite3"
    garbage = os.urandom(8192)
    db.write_bytes(garbage)
    server = make_server("--rate", "0", "--db", str(db))
    chat_works(server.port)
    server.stop()
    errors = database_errors(caplog)
    assert len(errors) == 1 and str(db) in errors[0] and "memory" in errors[0]
    assert db.read_bytes() == garbage


def test_read_only_database_does_not_stop_the_chat(
    make_server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only file (chattr +i as root, chmod otherwise): one log line, the chat works in memory."""
    db = tmp_path / "readonly.sqlite3"
    make_server("--db", str(db)).stop()  # a real, empty lanchat database
    if os.geteuid() == 0:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(db)], check=False).returncode:
            pytest.skip("chattr +i is not available here")
    else:
        db.chmod(0o444)
    try:
        server = make_server("--rate", "0", "--db", str(db))
        chat_works(server.port)
        server.stop()
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(db)], check=False)
    errors = database_errors(caplog)
    assert len(errors) == 1 and "read-only" in errors[0]


# --- a real process, killed with SIGKILL -------------------------------------------


@pytest.fixture
def chatsrv_process(tmp_path: Path) -> Iterator[Any]:
    """Start `python -m chatsrv` (this tree's code) in tmp_path; returns start(*flags) -> (process, port, banner)."""
    processes: list[subprocess.Popen[str]] = []

    def start(*flags: str) -> tuple[subprocess.Popen[str], int, list[str]]:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatsrv", "--host", "127.0.0.1", "--port", "0", "--rate", "0", *flags],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        banner: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(line.startswith("Ctrl-C") for line in banner):
            line = process.stdout.readline()
            if not line:
                break
            banner.append(line.strip())
        ports = [int(m.group(1)) for line in banner if (m := re.search(r"listening on \S+ port (\d+)", line))]
        assert ports, f"chatsrv did not start: {banner}"
        return process, ports[0], banner

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(5)
        if process.stdout:
            process.stdout.close()


@pytest.mark.timeout(60)
def test_kill_9_loses_at_most_the_last_batch_window(chatsrv_process, tmp_path: Path) -> None:
    """After SIGKILL every message older than one batch window (plus slack) is saved; no id is ever reused."""
    process, port, banner = chatsrv_process()  # the default --db: lanchat.sqlite3 in the working directory
    assert any("lanchat.sqlite3" in line for line in banner)
    db = tmp_path / "lanchat.sqlite3"
    window = 0.05 + 0.45  # the 50 ms batch window, plus generous slack for a busy CI machine
    received_at: dict[int, float] = {}
    with Client(port) as alice:
        alice.join("alice")
        # Over about 1.5 s, one message every 5 ms: older ones must be on disk when the kill comes.
        for number in range(300):
            alice.send({"type": "say", "text": f"m{number}"})
            echo = alice.expect("message", text=f"m{number}")
            received_at[echo["id"]] = time.monotonic()
            time.sleep(0.005)
        killed_at = time.monotonic()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(5)
    messages = saved(db, "message")
    ids = [m.id for m in messages]
    assert ids == list(range(1, len(ids) + 1)), "what is saved is everything up to some point, with no hole"
    assert [m.text for m in messages] == [f"m{n}" for n in range(len(ids))]
    lost = [message_id for message_id in received_at if message_id not in set(ids)]
    assert all(killed_at - received_at[message_id] <= window for message_id in lost), (len(lost), window)
    assert len(ids) >= 100

    # The restarted server shows what was saved and never hands out an id seen before the kill.
    _, port, _ = chatsrv_process()
    with Client(port) as bob:
        welcome = bob.join("bob")
        assert [item["id"] for item in welcome["history"]] == ids[-len(welcome["history"]) :]
        bob.send({"type": "say", "text": "after the crash"})
        assert bob.expect("message", text="after the crash")["id"] > max(received_at)


def test_memory_flag_keeps_nothing(chatsrv_process, tmp_path: Path) -> None:
    """--db :memory: says so at start and writes no file."""
    process, port, banner = chatsrv_process("--db", ":memory:")
    assert any("memory only" in line for line in banner)
    with Client(port) as alice:
        alice.join("alice")
        alice.send({"type": "say", "text": "gone tomorrow"})
        alice.expect("message")
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 0
    assert list(tmp_path.iterdir()) == []
