"""History in one SQLite file: `SQLiteStore`, its writer thread, and `open_store`.

`SQLiteStore` is the `Store` of `chatsrv.store` kept on disk; the file's format and reading it
back are `chatsrv.sqlitefile`'s. `open_store` is the store `--db PATH` asks for.

The broadcast path never waits for the disk: `add` only appends to a queue.
One writer thread owns the database connection: the first queued event
opens a batch window, and the batch is committed `batch_interval` (50 ms)
later, or as soon as `batch_size` (4096) events wait, whichever comes first
(an idle server's writer sleeps; it wakes once a window, not per event). So
a `kill -9` loses at most the events of the last batch window, 50 ms: the
crash window. `close` commits everything still queued (Ctrl-C included).

Besides events the store keeps the server's state across restarts
(`save_state`/`load_state`: the operator secret, moderation, bans, who was
here at a clean stop), as JSON text under `state.NAME` keys of the `meta`
table. The latest value of a key wins; it is written with the next batch.
`MemoryStore` keeps it only for the life of the process, so `--db :memory:`
keeps nothing across a restart.
Why 4096 and not 200: a commit has a fixed cost (waking the writer, winning
Python's GIL back from the busy chat threads, writing the last pages again).
In a flood, 200-message batches cost the writer about 30% more CPU per
message than 1000-message ones (measured on a 2-core machine); at 4096 the
50 ms window ends a flood's batches (up to 80,000 messages/s), so the crash
window is the same 50 ms as in a normal lesson, where the window closes long
before any count is reached. The writer's Python work per message is small:
the rows are bound as exact ints, floats and strings (see
`chatsrv.sqlitefile._message_parameters`) in a few multi-row INSERTs,
compiled when the file is opened (`_compile_inserts`), not by the first flood.

A database fault while running (locked by another program, read-only,
disk full, I/O error) is not the end of saving: the writer keeps the unsaved
events queued and tries again with back-off (0.1 s doubling to 2 s),
reopening the connection from the second failure on. Only a failure that
lasts (`give_up_after`, 10 s) is reported as an error: the chat goes on in
memory, the writer tries again every `recheck_interval` (30 s), and it says
in the log when saving works again. The queue is bounded (`max_backlog`):
past it new events are dropped and counted. A fault while opening the file
at start-up still means memory only for that run (open_store). A damaged
file is never modified or replaced.

The database is created readable and writable by its owner only (0600):
it may hold whispers. SQLite gives its `-wal` and `-shm` files the mode of
the database file. An existing file keeps its mode.

Imports: chatsrv.store and chatsrv.sqlitefile (and the standard library).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from chatsrv.sqlitefile import (
    _INSERT_EVENTS,
    _LATEST_OF_ROOM,
    APPLICATION_ID,
    ID_BLOCK,
    MAX_MESSAGE_ID,
    MIGRATIONS,
    ROWS_PER_INSERT,
    SCHEMA_VERSION,
    _connect_for_reading,
    _create_private,
    _good_events,
    _insert_messages,
    _message_parameters,
    _stored_int,
    _without_surrogates,
    read_events,
)
from chatsrv.store import MEMORY, Event, MemoryStore, Store, StoreError, _forgotten, _room_key, describe_error
from lanchat.i18n import _

log = logging.getLogger("chatsrv.store")  # one logger for all of history on disk: the teacher's log filter knows it


class SQLiteStore:
    """History in one SQLite file, written by a single background thread.

    Opening does all the checks at once (the file is a lanchat database of
    a known schema version, writable, WAL mode) and raises StoreError when
    any fails, so the caller can fall back to memory before the chat starts.
    Faults after that are retried (see the module docstring).
    """

    def __init__(
        self,
        path: str,
        *,
        batch_interval: float = 0.05,
        batch_size: int = 4096,
        busy_timeout: float = 2.0,
        max_backlog: int = 200_000,
        retry_first: float = 0.1,
        retry_max: float = 2.0,
        give_up_after: float = 10.0,
        recheck_interval: float = 30.0,
        wake: threading.Event | None = None,
    ) -> None:
        self.path = path
        self.description = _(
            "history is saved in {path} (SQLite; --db PATH for another file, --db :memory: for none)"
        ).format(path=path)
        self.batch_interval = batch_interval
        self.batch_size = batch_size
        self.max_backlog = max_backlog
        self.busy_timeout = busy_timeout
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.give_up_after = give_up_after
        self.recheck_interval = recheck_interval
        self._queue: deque[Event] = deque()
        # State values waiting for the writer; `_state_lock` guards the dict (set by chat threads, taken by the writer).
        self._pending_state: dict[str, str] = {}
        self._state_lock = threading.Lock()
        self._state: dict[str, str] = {}  # what the file held at start
        # Rooms (name, look-alike key function) whose history the writer deletes after the queue.
        self._forget: deque[tuple[str, Callable[[str], str] | None]] = deque()
        # Set to commit before the interval is over; a test may pass one that records the writer's waits.
        self._wake = wake if wake is not None else threading.Event()
        self._stopping = False
        self._accepting = True  # False after close() or a bug in the writer: add() drops events
        self._fault_lock = threading.Lock()
        self._failed = False  # only a bug in the writer sets it: saving stops for good
        self._dropped = 0  # events add() refused because the queue was full; written by add() only
        # The writer's retry state: when the current failure began (None: saving works),
        # how many attempts failed in a row, and whether it was reported as lasting.
        self._failing_since: float | None = None
        self._failed_attempts = 0
        self._reported_lasting = False
        try:
            self._connection = self._connect()
        except sqlite3.Error as error:
            raise StoreError(describe_error(error)) from None
        try:
            self._prepare(first=True)
        except sqlite3.Error as error:
            self._connection.close()
            raise StoreError(describe_error(error)) from None
        except StoreError:
            self._connection.close()
            raise
        self._writer = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._writer.start()

    # --- opening ---------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        _create_private(self.path)
        return sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)

    def _prepare(self, first: bool) -> None:
        """Check and migrate the file, reserve message ids.

        `first`: before the writer starts, when the ids are read from the
        file. On a reopen (writer thread) the ids handed out meanwhile stay
        as they are and only the reservation is raised above them.
        """
        connection = self._connection
        # The file must be ours (or new) before anything is written to it.
        application = connection.execute("PRAGMA application_id").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if application not in (0, APPLICATION_ID):
            raise StoreError("this SQLite file belongs to another program; the file was left untouched")
        if version > SCHEMA_VERSION:
            raise StoreError(f"made by a newer lanchat (schema {version}, this one knows {SCHEMA_VERSION})")
        if application == 0:
            tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise StoreError("this SQLite file belongs to another program; the file was left untouched")
        # Rows per message INSERT, within SQLite's limit on ? parameters (999
        # before SQLite 3.32; Python 3.11 can ask).
        limit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if hasattr(connection, "getlimit") else 999
        sizes = sorted({max(1, min(rows, limit // 9)) for rows in ROWS_PER_INSERT})  # 9 columns a message
        self._rows = sizes[-1]  # the most events one statement takes
        self._inserts = [(rows, _insert_messages(rows)) for rows in sizes]
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot switch the file to WAL mode (it stays in {mode} mode)")
        # In WAL mode NORMAL keeps every commit safe from a crash of this
        # process (kill -9); only a power cut may lose the last commits.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {step}")
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            # Ids above MAX_MESSAGE_ID (a crafted 2**63-1) would overflow the next one: they are skipped.
            highest = connection.execute(
                "SELECT max(id) FROM messages WHERE typeof(id) = 'integer' AND id <= ?", (MAX_MESSAGE_ID,)
            ).fetchone()[0] or 0
            reserved = _stored_int(self._meta("ids_reserved_through"), MAX_MESSAGE_ID)
            if first:
                self._next_id = max(highest, reserved) + 1
                self._newest_id = self._next_id - 1  # the highest id handed out, kept up to date by add()
            self._last_saved_id = highest  # events record the message they came after
            self._reserved = max(reserved, highest, self._newest_id) + ID_BLOCK
            self._set_meta("ids_reserved_through", self._reserved)
            if first:
                rows = connection.execute("SELECT key, value FROM meta WHERE key LIKE 'state.%'").fetchall()
                self._state = {key.removeprefix("state."): str(value) for key, value in rows}
            self._compile_inserts()
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _compile_inserts(self) -> None:
        """Compile every message INSERT now (in `_prepare`'s transaction), not in the first flood.

        sqlite3 keeps a connection's statements compiled (its statement cache), and compiling the
        larger ones costs (about 10 ms of CPU for all sizes, 7 ms of it the 2048-row one): paid at
        open, it is not taken from the chat's first burst (the writer's CPU in the first 10,000
        messages of a flood fell by a third, measured). The rows are all NULL, which OR IGNORE
        skips (ts is NOT NULL), and a savepoint undoes the statements anyway.
        """
        connection = self._connection
        connection.execute("SAVEPOINT compile")
        try:
            for rows, statement in self._inserts:
                connection.execute(statement, (None,) * (9 * rows))
        finally:
            connection.execute("ROLLBACK TO compile")
            connection.execute("RELEASE compile")

    def _meta(self, key: str) -> Any:
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: Any) -> None:
        self._connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # --- the Store interface --------------------------------------------

    def next_message_id(self) -> int:
        return self._next_id

    def recent_messages(self, per_room: int) -> list[Event]:
        if per_room <= 0 or self._failed:
            return []
        try:
            connection = _connect_for_reading(self.path)
            try:
                keys = [
                    row[0] for row in connection.execute("SELECT DISTINCT room_key FROM messages ORDER BY room_key")
                ]
                rows: list[tuple[Any, ...]] = []
                for key in keys:
                    rows.extend(reversed(connection.execute(_LATEST_OF_ROOM, (key, per_room)).fetchall()))
                return list(_good_events(rows, self.path))
            finally:
                connection.close()
        except sqlite3.Error as error:
            # Reading is not saving: the writer goes on, only this history is missing.
            log.warning("database %s: cannot read the recent history: %s", self.path, describe_error(error))
            return []

    def add(self, event: Event) -> None:
        # Called with the chat's lock held: only appends, never touches the disk or the log.
        if not self._accepting:
            return
        queue = self._queue
        if len(queue) >= self.max_backlog:
            self._dropped += 1  # the writer reports it; the queue's memory stays bounded
            return
        queue.append(event)
        if event.id is not None:
            self._newest_id = event.id
        waiting = len(queue)
        # The first event starts a batch window; a full batch ends it early.
        if (waiting == 1 or waiting >= self.batch_size) and not self._wake.is_set():
            self._wake.set()

    def events(self, room: str | None = None, since: float | None = None) -> Iterator[Event]:
        return read_events(self.path, room, since)

    def save_state(self, name: str, value: str) -> None:
        # Called with the chat's lock held, like add(): only records, the writer saves.
        if not self._accepting:
            return
        with self._state_lock:
            self._pending_state[name] = value
        if not self._wake.is_set():
            self._wake.set()

    def load_state(self) -> dict[str, str]:
        return dict(self._state)

    def room_messages(self, room: str, count: int) -> list[Event]:
        # One indexed query (messages_by_room): the service may call it with its lock held.
        if count <= 0 or self._failed:
            return []
        try:
            connection = _connect_for_reading(self.path)
            try:
                rows = connection.execute(_LATEST_OF_ROOM, (_room_key(room), count)).fetchall()
            finally:
                connection.close()
        except sqlite3.Error as error:
            log.warning("database %s: cannot read the history of %s: %s", self.path, room, describe_error(error))
            return []
        return list(_good_events(reversed(rows), self.path))

    def forget_room(self, room: str, key_of: Callable[[str], str] | None = None) -> None:
        # Called with the chat's lock held: an append; the writer deletes once the queue before it is saved.
        if self._accepting:
            self._forget.append((room, key_of))
            self._wake.set()

    def close(self) -> None:
        """Commit everything queued, then stop the writer and close the file."""
        self._accepting = False
        self._stopping = True
        self._wake.set()
        self._writer.join(30)
        if self._writer.is_alive():
            log.error("database %s: the last %d events could not be saved in time", self.path, len(self._queue))

    # --- the writer thread ----------------------------------------------

    def _run(self) -> None:
        try:
            while not self._failed:
                if self._failing_since is not None:
                    self._wait_before_retrying()
                else:
                    if not self._queue and not self._stopping:
                        self._wake.wait()  # idle: sleep until the first event is added (or close())
                    self._wake.clear()
                    if not self._stopping and len(self._queue) < self.batch_size:
                        self._wake.wait(self.batch_interval)  # the batch window; a full batch or close() ends it
                        self._wake.clear()
                stopping = self._stopping  # read first: everything added before close() is queued now
                try:
                    if self._failed_attempts >= 1:
                        self._reopen()
                    self._write_queued()
                    self._write_state()
                    if stopping:
                        self._write_final_reservation()
                except (sqlite3.Error, StoreError) as error:
                    if stopping:
                        self._give_up_at_close(error)
                        break
                    self._attempt_failed(error)
                    continue
                if self._failing_since is not None or self._dropped:
                    self._report_saving_again()
                if stopping:
                    break
        except Exception as error:  # noqa: BLE001 - a bug, not a database fault: one line with the traceback
            self._fault(error)
        finally:
            self._connection.close()

    # --- faults: retry with back-off, reopen, report a lasting one -----

    def _wait_before_retrying(self) -> None:
        """Sleep the back-off (or the recheck interval once the failure is lasting); close() cuts it short."""
        if self._reported_lasting:
            delay = self.recheck_interval
        else:
            delay = min(self.retry_max, self.retry_first * 2 ** (self._failed_attempts - 1))
        deadline = time.monotonic() + delay
        # add() sets the event when a batch fills up: only close() may end the wait early.
        while not self._stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake.wait(left)
            self._wake.clear()

    def _reopen(self) -> None:
        """A fresh connection: clears a stuck one, and finds a file that was replaced or restored."""
        try:
            self._connection.close()
        except sqlite3.Error:
            pass  # the old connection is dropped either way
        self._connection = self._connect()
        self._prepare(first=False)

    def _attempt_failed(self, error: BaseException) -> None:
        """Count a failed attempt; log the first one, and once when the failure turns lasting."""
        now = time.monotonic()
        self._failed_attempts += 1
        if self._failing_since is None:
            self._failing_since = now
            log.warning(
                "database %s: cannot save (%s); %d events wait in memory, retrying",
                self.path,
                describe_error(error),
                len(self._queue),
            )
        elif not self._reported_lasting and now - self._failing_since >= self.give_up_after:
            self._reported_lasting = True
            log.error(
                "database %s: %s; chat history is not saved for now and the chat goes on in memory"
                " (up to %d events wait); retrying every %g s",
                self.path,
                describe_error(error),
                self.max_backlog,
                self.recheck_interval,
            )

    def _report_saving_again(self) -> None:
        """Say that saving works again, with what waited and what was dropped meanwhile."""
        dropped, self._dropped = self._dropped, 0  # a race with add() at worst miscounts one event
        if self._failing_since is not None:
            log.warning(
                "database %s: saving works again after %.1f s; the events that waited are saved%s",
                self.path,
                time.monotonic() - self._failing_since,
                f", {dropped} could not wait and were dropped" if dropped else "",
            )
        else:
            log.warning(
                "database %s: %d events were dropped, more than %d waited", self.path, dropped, self.max_backlog
            )
        self._failing_since = None
        self._failed_attempts = 0
        self._reported_lasting = False

    def _give_up_at_close(self, error: BaseException) -> None:
        log.error(
            "database %s: %s; the last %d events could not be saved",
            self.path,
            describe_error(error),
            len(self._queue),
        )
        self._queue.clear()

    def _write_queued(self) -> None:
        """Commit everything queued: messages with multi-row INSERTs, then the other events."""
        queue = self._queue
        connection = self._connection
        while queue and not self._failed:
            batch = [queue.popleft() for _ in range(min(len(queue), self._rows))]
            try:
                newest = self._newest_id
                if newest + ID_BLOCK // 2 > self._reserved:
                    self._set_meta("ids_reserved_through", newest + ID_BLOCK)
                    self._reserved = newest + ID_BLOCK
                messages = [event for event in batch if event.kind == "message"]
                if len(messages) == len(batch):
                    # The common case: one statement, which is a transaction of its own.
                    self._insert(messages)
                else:
                    connection.execute("BEGIN")
                    if messages:
                        self._insert(messages)
                    connection.executemany(_INSERT_EVENTS, self._event_rows(batch))
                    connection.execute("COMMIT")
                if messages:
                    self._last_saved_id = messages[-1].id or self._last_saved_id
            except BaseException:
                queue.extendleft(reversed(batch))  # still unsaved: the writer tries again
                self._roll_back()
                raise
        while self._forget and not self._failed:
            room, key_of = self._forget[0]
            gone = _forgotten(room, key_of)
            try:
                connection.execute("BEGIN")
                stored = connection.execute("SELECT room_key FROM messages UNION SELECT room_key FROM events")
                keys = {_room_key(room) or ""} | {key for (key,) in stored if isinstance(key, str) and gone(key)}
                for key in keys:
                    connection.execute("DELETE FROM messages WHERE room_key = ?", (key,))
                    connection.execute("DELETE FROM events WHERE room_key = ?", (key,))
                connection.execute("COMMIT")
            except BaseException:
                self._roll_back()  # the room stays queued: the writer tries again
                raise
            self._forget.popleft()

    def _roll_back(self) -> None:
        if self._connection.in_transaction:
            try:
                self._connection.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the connection is reopened before the next attempt

    def _write_state(self) -> None:
        """Save the state values set since the last batch (the latest value of each)."""
        with self._state_lock:
            pending, self._pending_state = self._pending_state, {}
        if not pending:
            return
        try:
            self._connection.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(f"state.{name}", _without_surrogates(value)) for name, value in pending.items()],
            )
        except BaseException:
            # Still unsaved: kept for the next attempt unless a newer value came meanwhile.
            with self._state_lock:
                self._pending_state = {**pending, **self._pending_state}
            raise

    def _insert(self, messages: list[Event]) -> None:
        """The largest INSERT that `messages` fill, then the rest in the smallest one that holds it."""
        inserts = self._inserts
        if len(messages) > inserts[0][0]:
            rows, statement = next(
                (rows, sql) for rows, sql in reversed(inserts) if rows <= len(messages)
            )
            self._insert_padded(statement, messages[:rows], rows)
            messages = messages[rows:]
            if not messages:
                return
        rows, statement = next((rows, sql) for rows, sql in inserts if rows >= len(messages))
        self._insert_padded(statement, messages, rows)

    def _insert_padded(self, statement: str, messages: list[Event], rows: int) -> None:
        parameters = _message_parameters(messages, rows)
        try:
            self._connection.execute(statement, parameters)
        except UnicodeEncodeError:
            self._connection.execute(statement, [_without_surrogates(value) for value in parameters])

    def _event_rows(self, batch: list[Event]) -> list[tuple[Any, ...]]:
        """Rows for the events table, each with the id of the message just before it.

        Events are few, so their texts are cleaned of lone surrogates right
        away (a failed executemany would have written part of its rows).
        """
        rows = []
        last = self._last_saved_id
        for event in batch:
            if event.kind == "message":
                last = event.id or last
            else:
                key = event.room_key or _room_key(event.room)
                row = (last, event.kind, event.ts, event.room, key, event.nick, event.new, event.to, event.text)
                rows.append(tuple(map(_without_surrogates, row)) + (event.reason, event.transport))
        return rows

    def _write_final_reservation(self) -> None:
        """After a clean stop the next start continues right after the last id."""
        self._set_meta("ids_reserved_through", self._newest_id)

    def _fault(self, error: BaseException) -> None:
        """Report a bug in the writer once; from now on nothing more is saved."""
        with self._fault_lock:
            if self._failed:
                return
            self._failed = True
            self._accepting = False
        lost = len(self._queue)
        self._queue.clear()
        log.error(
            "database %s: %s; chat history is no longer saved (unsaved events dropped: %d), the chat goes on in memory",
            self.path,
            describe_error(error),
            lost,
            exc_info=error,
        )


def open_store(path: str, **settings: Any) -> Store:
    """The store `--db PATH` asks for; after a fault one log line and a MemoryStore."""
    if path == MEMORY:
        return MemoryStore()
    try:
        return SQLiteStore(path, **settings)
    except StoreError as error:
        log.error("database %s: %s; chat history is kept in memory only", path, error)
        store = MemoryStore()
        store.description = _("history is kept in memory only: {path} cannot be used (see the error above)").format(
            path=path
        )
        return store
