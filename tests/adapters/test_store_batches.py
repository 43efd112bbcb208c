"""SQLiteStore's batched writer: every row in order whatever the statement sizes, nothing lost on close, the window."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from chatsrv.sqlitefile import ROWS_PER_INSERT, _message_parameters, read_events
from chatsrv.sqlitestore import SQLiteStore
from chatsrv.store import Event
from tests.helpers import wait_until


def message(number: int) -> Event:
    # Every third message is an action, every fifth an operator's: the flags must come back as they went in.
    return Event(
        "message", 1000.0 + number / 8, f"n{number % 7}", "Lobby", f"m{number}", number, number % 3 == 0, "tcp",
        room_key="lobby", operator=number % 5 == 0,
    )


@pytest.mark.parametrize("count", [1, 3, ROWS_PER_INSERT[0] + 1, 1100, 2047, 4097])
def test_every_message_is_written_once_in_order_across_statement_sizes(tmp_path: Path, count: int) -> None:
    """Counts that fill no statement, one exactly, one and a bit, and two full ones and one more all come back."""
    db = tmp_path / "chat.sqlite3"
    store = SQLiteStore(str(db), batch_interval=3600, batch_size=10**9)  # nothing is due before close()
    added = [message(number) for number in range(1, count + 1)]
    added.insert(count // 2, Event("joined", 1000.0, "late", "Lobby", transport="udp", room_key="lobby"))
    for event in added:
        store.add(event)
    store.close()
    assert list(read_events(str(db))) == added


@pytest.mark.parametrize(
    ("count", "statements"),
    [(1, [(1, 16)]), (16, [(16, 16)]), (17, [(16, 16), (1, 16)]), (1100, [(1024, 1024), (76, 128)]),
     (2048, [(2048, 2048)])],
)
def test_a_batch_takes_at_most_two_statements_and_little_padding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, statements: list[tuple[int, int]]
) -> None:
    """The largest statement the batch fills, then the rest padded to the next size (1100 rows: 1024 + 128)."""
    store = SQLiteStore(str(tmp_path / "chat.sqlite3"), batch_interval=3600, batch_size=10**9)
    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(store, "_insert_padded", lambda statement, messages, rows: seen.append((len(messages), rows)))
    try:
        store._insert([message(number) for number in range(1, count + 1)])
    finally:
        monkeypatch.undo()
        store.close()
    assert seen == statements


def test_message_flags_are_bound_as_plain_ints() -> None:
    """sqlite3 binds an exact int without looking for an adapter, which a bool costs (about 1 us a row)."""
    parameters = _message_parameters([message(3), message(5)], 4)
    assert len(parameters) == 4 * 9
    flags = parameters[6::9] + parameters[8::9]
    assert all(type(flag) is int for flag in flags)
    assert parameters[6::9] == [1, 0, 0, 0] and parameters[8::9] == [0, 1, 1, 1]  # padded with copies of the last


class RecordingWake(threading.Event):
    """The writer's wake-up event, recording how long each wait may last."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        return super().wait(0 if timeout else timeout)  # a batch window ends at once: no test waits 50 ms


def test_the_batch_window_is_the_crash_window(tmp_path: Path) -> None:
    """The writer sleeps idle without a deadline, and a queued event waits at most batch_interval (50 ms)."""
    db = tmp_path / "chat.sqlite3"
    store = SQLiteStore(str(db), wake=RecordingWake())
    wake = store._wake
    assert isinstance(wake, RecordingWake)
    try:
        store.add(message(1))
        wait_until(lambda: bool(list(read_events(str(db)))))  # no close(): the window's end commits it
        assert list(read_events(str(db))) == [message(1)]
    finally:
        store.close()
    windows = [timeout for timeout in wake.timeouts if timeout is not None]
    assert windows and set(windows) == {0.05}


def test_every_message_insert_is_compiled_at_open_and_writes_nothing(tmp_path: Path) -> None:
    """The INSERTs are prepared before the first batch (sqlite3's statement cache keeps them), with no row left."""
    db = tmp_path / "chat.sqlite3"
    store = SQLiteStore(str(db), batch_interval=3600, batch_size=10**9)
    try:
        connection = store._connection  # the writer is idle: nothing was added
        try:
            prepared = [sql for (sql,) in connection.execute("SELECT sql FROM sqlite_stmt")]
        except sqlite3.OperationalError:
            pytest.skip("this SQLite has no sqlite_stmt table (SQLITE_ENABLE_STMTVTAB)")
        inserts = sorted(len(sql.split("), (")) for sql in prepared if sql.startswith("INSERT OR IGNORE INTO messages"))
        assert inserts == [rows for rows, _statement in store._inserts] == list(ROWS_PER_INSERT)
        assert connection.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
        assert not connection.in_transaction
    finally:
        store.close()
    added = [message(number) for number in range(1, 40)]
    store = SQLiteStore(str(db), batch_interval=3600, batch_size=10**9)
    for event in added:
        store.add(event)
    store.close()
    assert list(read_events(str(db))) == added
