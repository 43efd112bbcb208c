"""The store keeps the server's state across restarts: SQLite in the file, MemoryStore only in the process."""

from __future__ import annotations

from pathlib import Path

from chatsrv.sqlitefile import read_events
from chatsrv.sqlitestore import SQLiteStore
from chatsrv.store import MemoryStore


def test_sqlite_state_survives_a_reopen_and_the_latest_value_wins(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite3")
    store = SQLiteStore(path)
    assert store.load_state() == {}
    store.save_state("moderation", '{"a": 1}')
    store.save_state("moderation", '{"a": 2}')
    store.save_state("op_secret", "s3cret \ud800")  # a lone surrogate is stored as U+FFFD, not refused
    store.close()
    again = SQLiteStore(path)
    try:
        assert again.load_state() == {"moderation": '{"a": 2}', "op_secret": "s3cret \ufffd"}
    finally:
        again.close()
    assert list(read_events(path)) == []  # state is not an event: transcripts do not show it


def test_state_is_saved_without_any_event(tmp_path: Path) -> None:
    """An operator action with no chat at all still reaches the file (the writer wakes for state alone)."""
    path = str(tmp_path / "quiet.sqlite3")
    store = SQLiteStore(path, batch_interval=0.01)
    store.save_state("moderation", "x")
    store.close()
    reopened = SQLiteStore(path)
    try:
        assert reopened.load_state()["moderation"] == "x"
    finally:
        reopened.close()


def test_memory_store_state_lives_only_in_the_object() -> None:
    store = MemoryStore()
    store.save_state("op_secret", "abc")
    assert store.load_state() == {"op_secret": "abc"}
    assert MemoryStore().load_state() == {}
