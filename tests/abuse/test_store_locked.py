"""Attack: another program locks the history database for a while (issue 14, item 7).

Before, any SQLite error (even a 3 s `BEGIN EXCLUSIVE` by another program)
stopped saving for the rest of the run. Now the writer retries with back-off
and everything said during and after the lock is saved. The file is also
created readable by its owner only, since it may hold whispers.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from chatsrv.sqlitefile import read_events
from tests.helpers import Client, wait_until

LOCK_SECONDS = 3.0  # longer than the store's busy timeout (2 s), shorter than its give_up_after (10 s)


def saved_texts(path: Path) -> list[str]:
    return [event.text or "" for event in read_events(str(path)) if event.kind == "message"]


def test_messages_said_during_and_after_a_3_s_lock_are_saved(
    make_server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another connection holds BEGIN EXCLUSIVE for 3 s: what was said meanwhile and after is in the file."""
    db = tmp_path / "lesson.sqlite3"
    server = make_server("--db", str(db), "--rate", "0")
    with Client(server.port) as alice:
        alice.join("alice")
        alice.send({"type": "say", "text": "before"})
        wait_until(lambda: saved_texts(db) == ["before"])
        other = sqlite3.connect(db, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            held_until = time.monotonic() + LOCK_SECONDS
            for number in range(5):
                alice.send({"type": "say", "text": f"during {number}"})
                alice.expect("message", text=f"during {number}")  # the chat never waits for the disk
            # The attacker's program holds its lock for the whole 3 s (a scenario, not a wait for an event).
            time.sleep(max(0.0, held_until - time.monotonic()))
            other.execute("COMMIT")
        finally:
            other.close()
        alice.send({"type": "say", "text": "after"})
        expected = ["before", *(f"during {number}" for number in range(5)), "after"]
        wait_until(lambda: saved_texts(db) == expected, timeout=15)
    # The lock did stop a write (so this test saw the retry at work), and it never counted as lasting. The
    # writer logs that saving works again after its commit, so the rows can be seen a moment before the line.
    wait_until(lambda: any("saving works again" in r.getMessage() for r in caplog.records))
    store_lines = [r for r in caplog.records if r.name.startswith("chatsrv.store")]
    assert not [r for r in store_lines if r.levelno >= logging.ERROR]


def test_new_database_and_its_wal_files_are_private(make_server, tmp_path: Path) -> None:
    """The database, its -wal and its -shm are created with mode 0600 (readable by the owner only)."""
    db = tmp_path / "lesson.sqlite3"
    server = make_server("--db", str(db), "--rate", "0")
    with Client(server.port) as alice:
        alice.join("alice")
        alice.send({"type": "say", "text": "hello"})
        wait_until(lambda: saved_texts(db) == ["hello"])
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert path.stat().st_mode & 0o777 == 0o600, path
