"""SQLiteStore on real files: schema, batching, clean close, id reservation and every fault kind."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatsrv.sqlitefile import APPLICATION_ID, ID_BLOCK, SCHEMA_VERSION, read_events
from chatsrv.sqlitestore import SQLiteStore, open_store
from chatsrv.store import Event, MemoryStore, StoreError
from tests.helpers import wait_until


def message(number: int, room: str = "lobby", text: str | None = None) -> Event:
    return Event("message", 1000.0 + number, "alice", room, text or f"m{number}", number, transport="tcp")


def stored(path: Path) -> list[Event]:
    return list(read_events(str(path)))


def store_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("chatsrv") and r.levelno >= logging.ERROR]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "chat.sqlite3"


def test_new_file_gets_schema_version_wal_and_our_id(db: Path) -> None:
    """A new file is created in WAL mode, marked as lanchat's, with the current schema version."""
    SQLiteStore(str(db)).close()
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    connection.close()


def test_close_commits_everything_queued(db: Path) -> None:
    """10,000 events added with no commit due yet are all in the file after close()."""
    store = SQLiteStore(str(db), batch_interval=3600, batch_size=10**9)
    for number in range(1, 10_001):
        store.add(message(number))
    store.close()
    events = stored(db)
    assert [e.id for e in events] == list(range(1, 10_001))
    assert events[-1] == message(10_000)._replace(room_key="lobby")  # the writer fills in the key


def test_a_full_batch_is_committed_without_waiting_for_the_interval(db: Path) -> None:
    """With an hour-long interval, batch_size waiting events are committed at once."""
    store = SQLiteStore(str(db), batch_interval=3600, batch_size=50)
    try:
        for number in range(1, 51):
            store.add(message(number))
        wait_until(lambda: len(stored(db)) == 50)
    finally:
        store.close()


def test_commits_come_every_interval(db: Path) -> None:
    """A few events are committed within the batch interval, without close()."""
    store = SQLiteStore(str(db), batch_interval=0.05)
    try:
        for number in range(1, 4):
            store.add(message(number))
        wait_until(lambda: len(stored(db)) == 3, timeout=2)
    finally:
        store.close()


def test_ids_continue_after_clean_close_and_jump_after_a_crash(db: Path, tmp_path: Path) -> None:
    """A clean restart continues right after the last id; a crash copy starts above every id handed out."""
    store = SQLiteStore(str(db), batch_interval=0.02)
    assert store.next_message_id() == 1
    for number in range(1, 6):
        store.add(message(number))
    wait_until(lambda: len(stored(db)) == 5)
    # The file as a kill -9 would leave it now, while ids 6 and 7 were handed out but not yet saved.
    crashed = tmp_path / "crashed.sqlite3"
    for suffix in ("", "-wal"):
        if Path(f"{db}{suffix}").exists():
            shutil.copy(f"{db}{suffix}", f"{crashed}{suffix}")
    store.add(message(6))
    store.add(message(7))
    store.close()
    again = SQLiteStore(str(db))
    assert again.next_message_id() == 8
    again.close()
    after_crash = SQLiteStore(str(crashed))
    assert after_crash.next_message_id() > 7 and after_crash.next_message_id() <= 5 + ID_BLOCK + 1
    after_crash.close()


def test_recent_messages_per_room(db: Path) -> None:
    """recent_messages gives each room's latest messages, oldest first, and skips other events."""
    store = SQLiteStore(str(db))
    for number in range(1, 11):
        store.add(message(number, room="Physics" if number % 2 else "lobby"))
    store.add(Event("joined", 2000.0, "bob", "lobby", transport="tcp"))
    store.close()
    reopened = SQLiteStore(str(db))
    try:
        recent = reopened.recent_messages(2)
    finally:
        reopened.close()
    assert sorted((e.room, e.id) for e in recent) == [("Physics", 7), ("Physics", 9), ("lobby", 8), ("lobby", 10)]


def test_reading_filters_by_room_and_time(db: Path) -> None:
    """read_events filters case-insensitively by room and from a time on, and leaves no -wal file behind."""
    store = SQLiteStore(str(db))
    for number in range(1, 7):
        store.add(message(number, room="Physics" if number <= 3 else "lobby"))
    store.close()
    assert [e.id for e in read_events(str(db), room="PHYSICS")] == [1, 2, 3]
    assert [e.id for e in read_events(str(db), since=1005.0)] == [5, 6]
    assert not Path(f"{db}-wal").exists()


def test_messages_and_events_come_back_in_the_order_they_happened(db: Path) -> None:
    """Events interleave with messages exactly as added, even with equal time stamps and across batches."""
    added = [
        Event("joined", 1000.0, "alice", "lobby", transport="tcp"),
        message(1),
        Event("renamed", 1001.0, "alice", "lobby", transport="tcp", new="alicia"),  # same ts as message 1
        Event("whisper", 1001.0, "alicia", text="psst", to="bob"),
        message(2),
        message(3),
        Event("left", 1003.0, "alicia", "lobby", reason="quit"),
    ]
    store = SQLiteStore(str(db), batch_interval=0.01)
    for event in added[:3]:
        store.add(event)
    wait_until(lambda: len(stored(db)) == 3)
    for event in added[3:]:
        store.add(event)
    store.close()
    assert [e._replace(room_key=None) for e in stored(db)] == added


def test_a_lone_surrogate_does_not_break_saving(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Text with a lone surrogate (valid JSON on the wire, not UTF-8) is saved with U+FFFD; saving goes on."""
    store = SQLiteStore(str(db), batch_interval=0.01)
    store.add(message(1, text="bad \ud800 text"))
    store.add(Event("message", 1002.0, "Ünïcode", "Ärzte", "emoji 😀 and 中文", 2, room_key="ärzte"))
    store.add(Event("whisper", 1003.0, "alice", text="\udfff", to="bob"))
    store.close()
    assert [(e.text, e.room_key) for e in stored(db)] == [
        ("bad \ufffd text", "lobby"),
        ("emoji 😀 and 中文", "ärzte"),
        ("\ufffd", None),
    ]
    assert store_errors(caplog) == []


# --- faults: at start memory only, while running retried; one error line; the file left alone ---


def test_corrupt_file_falls_back_to_memory(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file that is not a database: one error line, a MemoryStore, the file untouched."""
    garbage = b"this is not a database, just some words " * 200
    db.write_bytes(garbage)
    store = open_store(str(db))
    assert isinstance(store, MemoryStore)
    errors = store_errors(caplog)
    assert len(errors) == 1 and str(db) in errors[0] and "not a database" in errors[0]
    assert db.read_bytes() == garbage


def test_other_programs_database_is_refused(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Some other program's SQLite file is neither used nor changed."""
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE grades (student TEXT, mark INTEGER)")
    connection.close()
    before = db.read_bytes()
    assert isinstance(open_store(str(db)), MemoryStore)
    assert len(store_errors(caplog)) == 1 and "another program" in store_errors(caplog)[0]
    assert db.read_bytes() == before


def test_newer_schema_is_refused(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file written by a newer lanchat is not touched by this one."""
    SQLiteStore(str(db)).close()
    with sqlite3.connect(db) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(StoreError, match="newer lanchat"):
        SQLiteStore(str(db))


@pytest.fixture
def read_only(db: Path) -> Iterator[Path]:
    """`db` made read-only: chattr +i as root (root ignores file modes), chmod otherwise."""
    SQLiteStore(str(db)).close()
    if os.geteuid() == 0:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(db)], check=False).returncode:
            pytest.skip("chattr +i is not available here")
        try:
            yield db
        finally:
            subprocess.run(["chattr", "-i", str(db)], check=False)
    else:
        db.chmod(0o444)
        yield db


def test_read_only_file_falls_back_to_memory(read_only: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A read-only file: one error line that says so, and a MemoryStore."""
    store = open_store(str(read_only))
    assert isinstance(store, MemoryStore)
    errors = store_errors(caplog)
    assert len(errors) == 1 and "read-only" in errors[0]


def test_locked_file_falls_back_to_memory(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file another program holds locked: one error line after the busy timeout, a MemoryStore."""
    SQLiteStore(str(db)).close()
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("PRAGMA locking_mode = EXCLUSIVE")
        other.execute("BEGIN EXCLUSIVE")
        store = open_store(str(db), busy_timeout=0.1)
    finally:
        other.close()
    assert isinstance(store, MemoryStore)
    errors = store_errors(caplog)
    assert len(errors) == 1 and "locked" in errors[0]


def test_a_lasting_lock_is_reported_once_and_saving_resumes_after_it(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock held past give_up_after: one error line, events wait in memory, and all are saved after it ends."""
    store = SQLiteStore(
        str(db), batch_interval=0.02, busy_timeout=0.05, retry_first=0.01, give_up_after=0.3, recheck_interval=0.1
    )
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        store.add(message(1))
        wait_until(lambda: store_errors(caplog))
        for number in range(2, 500):
            store.add(message(number))
        other.execute("COMMIT")
        wait_until(lambda: len(stored(db)) == 499)
    finally:
        other.close()
        store.close()
    errors = store_errors(caplog)
    assert len(errors) == 1 and "locked" in errors[0] and "goes on in memory" in errors[0]
    assert [event.id for event in stored(db)] == list(range(1, 500))
    assert any("saving works again" in record.getMessage() for record in caplog.records)


def test_a_full_queue_drops_new_events_and_says_how_many(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    """While the file is locked at most max_backlog events wait; the rest are counted in the recovery line."""
    store = SQLiteStore(str(db), busy_timeout=0.05, retry_first=0.01, retry_max=0.05, max_backlog=10)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        store.add(message(1))
        wait_until(lambda: any("cannot save" in record.getMessage() for record in caplog.records))
        for number in range(2, 16):
            store.add(message(number))
        other.execute("COMMIT")
        wait_until(lambda: any("saving works again" in record.getMessage() for record in caplog.records))
    finally:
        other.close()
        store.close()
    assert [event.id for event in stored(db)] == list(range(1, 11))
    assert any("5 could not wait" in record.getMessage() for record in caplog.records)


def test_new_database_is_readable_by_its_owner_only(db: Path) -> None:
    """The file and SQLite's -wal and -shm beside it are created with mode 0600 (they may hold whispers)."""
    store = SQLiteStore(str(db))
    try:
        store.add(message(1))
        wait_until(lambda: stored(db))
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert path.stat().st_mode & 0o777 == 0o600, path
    finally:
        store.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 300 KiB tmpfs of our own (root only), unmounted afterwards."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount_point)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_full_disk_stops_saving_with_one_line(tiny_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    """When the disk fills up: one error line that says so; adding goes on without an exception."""
    store = SQLiteStore(str(tiny_disk / "chat.sqlite3"), batch_interval=0.01, retry_first=0.01, give_up_after=0.3)
    try:
        for number in range(1, 2001):
            store.add(message(number, text="x" * 2000))
            if store_errors(caplog):
                break
        wait_until(lambda: store_errors(caplog))
        store.add(message(5000))
        errors = store_errors(caplog)
    finally:
        store.close()
    assert len(errors) == 1 and "full" in errors[0]
