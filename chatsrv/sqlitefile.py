"""The lanchat SQLite file: its schema, its statements, and reading it back row by row.

Owns the file's format (`SCHEMA_VERSION`, `APPLICATION_ID`, the `MIGRATIONS`
that bring an older file up to date, the id ceiling `ID_BLOCK`), the SQL
statements the writer and the readers use, `read_events` (a file opened
read-only, for `chatsrv export`), and the checks on rows read from a file:
a file is not trusted, so a row this server could not have written is
skipped with one warning line. `chatsrv.sqlitestore` writes the file.

Imports: chatsrv.store only (and the standard library).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from chatsrv.store import MEMORY, Event, StoreError, _room_key, describe_error

log = logging.getLogger("chatsrv.store")  # one logger for all of history on disk: the teacher's log filter knows it


SCHEMA_VERSION = 2  # kept in PRAGMA user_version
APPLICATION_ID = 0x4C414E43  # "LANC" in PRAGMA application_id: marks the file as ours

# Message ids must never be reused, even after a kill -9 lost the last batch
# (clients may know those ids). So the file records a ceiling of ids handed
# out ("hi/lo" allocation): a restart after a crash starts above it, and the
# writer raises it well ahead of the live counter. A clean stop writes the
# exact last id, so ids go on without a gap.
ID_BLOCK = 10_000

# The statements that bring a file from version N-1 to N; a file at version
# N gets steps N+1.. run in one transaction.
#
# Messages have a table of their own, keyed by their id (SQLite's rowid: the
# id needs no index of its own): writing them is the work that must stay cheap. Everything
# else (joins, leaves, renames, whispers) goes to `events`, which records
# after which message it happened, so a transcript can interleave the two
# exactly, even when both carry the same time stamp.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE messages (
            id         INTEGER PRIMARY KEY,  -- the message id of docs/protocol.md section 5
            ts         REAL NOT NULL,        -- seconds since the Unix epoch (docs/protocol.md section 1)
            room       TEXT NOT NULL,        -- as first spelled
            room_key   TEXT NOT NULL,        -- casefolded, for lookups (docs/protocol.md section 6)
            nick       TEXT NOT NULL,
            text       TEXT NOT NULL,
            action     INTEGER NOT NULL,     -- 1 for /me
            transport  TEXT                  -- tcp or udp
        )""",
        "CREATE INDEX messages_by_room ON messages (room_key, id)",
        """CREATE TABLE events (
            number        INTEGER PRIMARY KEY,
            after_message INTEGER NOT NULL,  -- the id of the last message before it
            kind          TEXT NOT NULL,     -- joined, left, renamed, whisper, or a lesson event (MODERATION_KINDS)
            ts            REAL NOT NULL,
            room          TEXT,              -- NULL for whispers
            room_key      TEXT,
            nick          TEXT NOT NULL,     -- who joined or left, the old nick, the whisperer, the operator
            new_nick      TEXT,              -- renamed: the new nick
            to_nick       TEXT,              -- whisper: the receiver; left (moved): the room; mute, kick: the member
            text          TEXT,              -- whisper: the text; announce, topic, kick: the text or reason
            reason        TEXT,              -- left: quit, lost, moved ...; joined: back (after a restart); details
            transport     TEXT
        )""",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
        "INSERT INTO meta VALUES ('ids_reserved_through', 0)",
    ),
    # docs/protocol.md §9.4: whether the sender was an operator when it spoke.
    2: ("ALTER TABLE messages ADD COLUMN operator INTEGER NOT NULL DEFAULT 0",),
}

# Messages go in with one multi-row INSERT per `rows` messages, not with
# executemany: that releases Python's GIL around every row and must win it
# back each time, and while the chat threads are busy that takes milliseconds
# per row (the writer would fall far behind). One statement for many rows needs the
# GIL once, and in autocommit mode it is a transaction of its own. Statement
# sizes are powers of two (16 to 2048 rows), so sqlite3's statement cache keeps
# each prepared: a batch goes in as the largest size it fills plus the rest
# padded up to the next size with copies of its last row, which OR IGNORE skips
# because their id is already taken (ids are unique by construction). At most
# two statements a batch, and at most half the rest (or 15 rows) padding: each
# padded row costs SQLite about half a real one (1100 rows padded to 2048 cost
# 40% more CPU than 1100 exact ones).
ROWS_PER_INSERT = tuple(2**power for power in range(4, 12))  # 16 ... 2048
_MESSAGE_COLUMNS = "id, ts, room, room_key, nick, text, action, transport, operator"


def _insert_messages(rows: int) -> str:
    row = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
    return f"INSERT OR IGNORE INTO messages ({_MESSAGE_COLUMNS}) VALUES " + ", ".join([row] * rows)


_INSERT_EVENTS = (
    "INSERT INTO events (after_message, kind, ts, room, room_key, nick, new_nick, to_nick, text, reason, transport)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# Both tables as Event fields, in the order things happened (a message sorts
# before the events that came after it). {where} takes the filters, {operator}
# the operator column (a constant 0 in a version 1 file, which has none).
_READ = """
    SELECT 'message', ts, nick, room, text, id, action, transport, NULL, NULL, NULL, room_key, {operator},
           id AS after_message, 0 AS number
      FROM messages {where}
    UNION ALL
    SELECT kind, ts, nick, room, text, NULL, 0, transport, to_nick, new_nick, reason, room_key, 0,
           after_message, number
      FROM events {where}
    ORDER BY after_message, number
"""


# The latest messages of one room (by room_key), newest first, as Event fields.
_LATEST_OF_ROOM = (
    "SELECT 'message', ts, nick, room, text, id, action, transport, NULL, NULL, NULL, room_key, operator"
    " FROM messages WHERE room_key = ? ORDER BY id DESC LIMIT ?"
)


def _connect_for_reading(path: str) -> sqlite3.Connection:
    """A connection that cannot change the file (and never creates it).

    `mode=rw` rather than `mode=ro`: when the last connection closes it folds
    the WAL back into the file and removes `-wal` and `-shm`, which a
    read-only one cannot do; `query_only` forbids every write statement.
    A write-protected file is still opened (read-only) by SQLite itself.
    """
    connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=rw", uri=True)
    connection.text_factory = _lenient_text  # a damaged text must not make the whole file unreadable
    try:
        connection.execute("PRAGMA query_only = 1")
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def read_events(path: str, room: str | None = None, since: float | None = None) -> Iterator[Event]:
    """The events stored in the file at `path`, in order; opens it read-only.

    Works while a server is writing to the file (WAL lets readers and one
    writer share it). Raises StoreError when the file cannot be read.
    """
    if not Path(path).is_file():
        raise StoreError(f"no database at {path}")
    try:
        connection = _connect_for_reading(path)
    except sqlite3.Error as error:
        raise StoreError(f"cannot open {path}: {describe_error(error)}") from None
    try:
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            application = connection.execute("PRAGMA application_id").fetchone()[0]
        except sqlite3.Error as error:
            raise StoreError(f"cannot read {path}: {describe_error(error)}") from None
        if application != APPLICATION_ID or not 1 <= version <= SCHEMA_VERSION:
            raise StoreError(f"{path} is not a lanchat database this version can read")
        conditions: list[str] = []
        parameters: list[Any] = []
        if room is not None:
            conditions.append("room_key = ?")
            parameters.append(_room_key(room))
        if since is not None:
            conditions.append("ts >= ?")
            parameters.append(since)
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        try:
            query = _READ.format(where=where, operator="operator" if version >= 2 else "0")
            rows = (row[:13] for row in connection.execute(query, parameters * 2))  # without the two sort columns
            yield from _good_events(rows, path)
        except sqlite3.Error as error:
            raise StoreError(f"cannot read {path}: {describe_error(error)}") from None
    finally:
        connection.close()


# A file is not trusted: a row written by another program (a crafted file, a
# damaged one) may hold any SQLite value in any column. Rows whose time is not
# a finite number of seconds within these bounds, or whose id is not a
# positive integer a JSON reader keeps exactly, are skipped with one warning.
MAX_MESSAGE_ID = 2**52  # ids handed out after it still stay below 2**53, exact in JSON
_LATEST_TS = 1e11  # the year 5138: datetime and time.localtime still show it


def _event_from_row(row: tuple[Any, ...]) -> Event | None:
    """The event a row holds, or None when the row is not one this server could have written."""
    kind, ts, nick, room, text, message_id, action, transport, to_nick, new_nick, reason, room_key, operator = row
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not 0 <= ts <= _LATEST_TS:
        return None  # NaN fails the comparison too
    if message_id is not None and (not isinstance(message_id, int) or not 0 < message_id <= MAX_MESSAGE_ID):
        return None
    if not all(value is None or isinstance(value, str) for value in (kind, nick, room, text, transport)):
        return None
    return Event(
        kind, ts, nick, room, text, message_id, bool(action), transport, to_nick, new_nick, reason, room_key,
        bool(operator),
    )


def _stored_int(value: Any, limit: int) -> int:
    """A counter read from the file: 0 unless it is an integer from 0 to `limit`."""
    try:
        number = int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
    return number if 0 <= number <= limit else 0


def _good_events(rows: Iterable[tuple[Any, ...]], path: str) -> Iterator[Event]:
    """The events of `rows`, skipping bad ones (`_event_from_row`) with one warning line at the end."""
    skipped = 0
    for row in rows:
        event = _event_from_row(row)
        if event is None:
            skipped += 1
        else:
            yield event
    if skipped:
        log.warning("database %s: %d row(s) with an impossible time, id or text were skipped", path, skipped)


def _message_parameters(messages: list[Event], rows: int) -> list[Any]:
    """The message columns of each message one after the other, padded to `rows` rows."""
    # action and operator as int, not bool: sqlite3 binds an exact int, str or float directly, but looks for an
    # adapter for any other type (bool too), which took about 1 us of Python's GIL per row (measured, 9 columns).
    values = [
        (m.id, m.ts, m.room, m.room_key or _room_key(m.room), m.nick, m.text, int(m.action), m.transport,
         int(m.operator))
        for m in messages
    ]
    values.extend([values[-1]] * (rows - len(values)))
    return list(itertools.chain.from_iterable(values))


_SURROGATES = re.compile("[\ud800-\udfff]")


def _without_surrogates(value: Any) -> Any:
    """A lone surrogate ("\\ud800" is valid JSON on the wire) is not UTF-8: stored as U+FFFD."""
    return _SURROGATES.sub("\ufffd", value) if isinstance(value, str) else value


def _create_private(path: str) -> None:
    """Create `path` empty with mode 0600 unless it exists (an empty file is an empty database).

    Anything unusual (no such folder, a directory) is left for SQLite to report.
    """
    if path == MEMORY:
        return
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return
    os.close(descriptor)
