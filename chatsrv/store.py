"""Chat history that outlives the server: the record, the interface, and history in memory.

Owns the `Event` record (a room `message`, a `joined`, `left` or `renamed`,
a `whisper` when the teacher allows storing them, and the lesson's
structure: announcements, topics, mutes, locks, slow mode, kicks and
restarts), the `Store` interface and its two implementations:

- `MemoryStore` (here) keeps the most recent events in a bounded list in
  memory and nothing on disk (`--db :memory:`, and the fallback after a fault);
- `SQLiteStore` (`chatsrv.sqlitestore`) keeps everything in one SQLite file
  (WAL mode, a schema with a version number so later releases can migrate it).

Besides events a store keeps the server's state across restarts
(`save_state`/`load_state`: the operator secret, moderation, bans, who was
here at a clean stop). `MemoryStore` keeps it only for the life of the
process, so `--db :memory:` keeps nothing across a restart.

A leaf module: imports only the standard library and lanchat.i18n (its banner line).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, Protocol

from lanchat.i18n import N_

MEMORY = ":memory:"  # the --db value that keeps nothing on disk
DEFAULT_PATH = "lanchat.sqlite3"


# Kinds of the lesson's structure: what operators did, and restarts. Their
# `nick` is the operator ("" for the server), `to` the member acted on,
# `text` the announcement, topic or kick reason, `reason` a detail in words
# ("for 5 minute(s)", "every room"). Sent and exported as a `notice` with
# `event` (docs/protocol.md §9).
MODERATION_KINDS = frozenset(
    {"announce", "topic", "mute", "unmute", "lock", "unlock", "slow", "kick", "ban", "restarted"}
)


class StoreError(Exception):
    """The database cannot be used; the message says why in one line."""


class Event(NamedTuple):
    """One thing that happened: a room message, a join, a leave, a rename, a whisper.

    A tuple, cheap to build on the broadcast path; the writer thread does the rest.
    """

    kind: str  # "message", "joined", "left", "renamed", "whisper" or one of MODERATION_KINDS
    ts: float
    nick: str  # the sender, who joined or left, or the old nick
    room: str | None = None  # None for whispers
    text: str | None = None
    id: int | None = None  # messages only (docs/protocol.md section 5)
    action: bool = False
    transport: str | None = None
    to: str | None = None  # whisper: the receiver; left (moved): the new room; moderation: the member
    new: str | None = None  # renamed: the new nick
    reason: str | None = None  # left: why
    room_key: str | None = None  # the casefolded room (rooms.name_key); filled in when missing
    operator: bool = False  # messages only: sent by an operator (docs/protocol.md §9.4)

    def payload(self) -> dict[str, Any]:
        """The event as the server sends it (docs/protocol.md section 5), without `seq`."""
        if self.kind == "message":
            payload: dict[str, Any] = {
                "type": "message",
                "id": self.id,
                "room": self.room,
                "from": self.nick,
                "text": self.text,
                "ts": self.ts,
            }
            if self.action:
                payload["action"] = True
            if self.operator:
                payload["operator"] = True
            return payload
        if self.kind == "whisper":
            return {"type": "whisper", "from": self.nick, "to": self.to, "text": self.text, "ts": self.ts}
        if self.kind == "renamed":
            return {"type": "renamed", "old": self.nick, "new": self.new, "room": self.room, "ts": self.ts}
        if self.kind == "left":
            payload = {"type": "left", "nick": self.nick, "room": self.room, "ts": self.ts, "reason": self.reason}
            if self.to is not None:
                payload["to"] = self.to
            return payload
        if self.kind in MODERATION_KINDS:
            payload = {"type": "notice", "event": self.kind, "room": self.room}
            if self.nick:
                payload["by"] = self.nick
            if self.to is not None:
                payload["nick"] = self.to
            if self.text is not None:
                payload["text"] = self.text
            if self.reason is not None:
                payload["detail"] = self.reason
            payload["ts"] = self.ts
            return payload
        payload = {"type": self.kind, "nick": self.nick, "room": self.room, "ts": self.ts}
        if self.reason is not None:
            payload["reason"] = self.reason
        return payload


class Store(Protocol):
    """Where the service hands what happened, and where history comes back from."""

    description: str  # one line for the start-up banner

    def next_message_id(self) -> int:
        """The id the next message gets: above every id ever handed out."""

    def recent_messages(self, per_room: int) -> list[Event]:
        """Up to `per_room` latest messages of every room, oldest first within a room."""

    def add(self, event: Event) -> None:
        """Record `event` later; never blocks and never raises."""

    def events(self, room: str | None = None, since: float | None = None) -> Iterator[Event]:
        """Recorded events in order, optionally of one room and from a time on."""

    def save_state(self, name: str, value: str) -> None:
        """Keep `value` under `name` across restarts (written later; never blocks)."""

    def load_state(self) -> dict[str, str]:
        """Every state value kept, by name (read at start, before any save_state)."""
    def room_messages(self, room: str, count: int) -> list[Event]:
        """Up to `count` latest saved messages of `room`, oldest first; [] when they cannot be read."""

    def forget_room(self, room: str, key_of: Callable[[str], str] | None = None) -> None:
        """Delete everything recorded about `room` (after what was added before); never blocks or raises.

        `key_of` (the look-alike key, say): also every room whose stored key it maps to the same value.
        """

    def close(self) -> None:
        """Keep everything added so far, then release the store."""


def _room_key(room: str | None) -> str | None:
    return room.casefold() if room is not None else None


def _forgotten(room: str, key_of: Callable[[str], str] | None) -> Callable[[str | None], bool]:
    """Whether a stored room key is one `forget_room(room, key_of)` deletes."""
    key = _room_key(room)
    if key_of is None:
        return lambda stored: stored == key
    wanted = key_of(room)
    return lambda stored: stored is not None and (stored == key or key_of(stored) == wanted)


def _latest_per_room(events: Iterable[Event], per_room: int) -> list[Event]:
    """The last `per_room` messages of each room, rooms in order of their first message."""
    rooms: dict[str | None, deque[Event]] = {}
    for event in events:
        if event.kind == "message":
            latest = rooms.get(_room_key(event.room))
            if latest is None:
                latest = rooms[_room_key(event.room)] = deque(maxlen=per_room)
            latest.append(event)
    return [event for latest in rooms.values() for event in latest]


class MemoryStore:
    """Keeps the latest `limit` events in memory only; nothing survives a restart."""

    description = N_("history is kept in memory only (--db :memory:): nothing is saved")

    def __init__(self, limit: int = 10_000) -> None:
        self._events: deque[Event] = deque(maxlen=limit)
        self._state: dict[str, str] = {}

    def next_message_id(self) -> int:
        return 1

    def recent_messages(self, per_room: int) -> list[Event]:
        if per_room <= 0:
            return []
        return _latest_per_room(list(self._events), per_room)

    def add(self, event: Event) -> None:
        self._events.append(event)

    def events(self, room: str | None = None, since: float | None = None) -> Iterator[Event]:
        key = _room_key(room)
        for event in list(self._events):
            if (key is None or _room_key(event.room) == key) and (since is None or event.ts >= since):
                yield event

    def save_state(self, name: str, value: str) -> None:
        self._state[name] = value

    def load_state(self) -> dict[str, str]:
        return dict(self._state)

    def room_messages(self, room: str, count: int) -> list[Event]:
        if count <= 0:
            return []
        key = _room_key(room)
        found = [event for event in self._events if event.kind == "message" and _room_key(event.room) == key]
        return found[-count:]

    def forget_room(self, room: str, key_of: Callable[[str], str] | None = None) -> None:
        gone = _forgotten(room, key_of)
        kept = [event for event in self._events if not gone(_room_key(event.room))]
        self._events = deque(kept, maxlen=self._events.maxlen)

    def close(self) -> None:
        pass


def describe_error(error: BaseException) -> str:
    """A one-line reason for a database fault, with a hint a teacher can act on."""
    text = str(error) or type(error).__name__
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        hint = "another program is using it"
    elif "readonly" in lowered or "read-only" in lowered or "permission" in lowered:
        hint = "the file or its folder is read-only"
    elif "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        hint = "damaged, or not a lanchat database; the file was left untouched"
    elif "full" in lowered:
        hint = "free some disk space"
    elif "unable to open" in lowered:
        hint = "the folder does not exist or cannot be written"
    else:
        return text
    return f"{text} ({hint})"
