"""Which rooms the chat service keeps in memory; the store keeps the rest (docs/protocol.md §7.1, §7.2).

Owns `RoomCache`, the part of `ChatService` (chatsrv.service) that decides
which rooms are in memory: at start the `max_rooms` rooms with the latest
messages come back with their history; a room nobody is in leaves memory
after `room_idle` seconds or when a new room needs its place; a member
brings new rooms in within a room budget; a room that comes back reads its
history from the store, and only a room known to have some costs a disk
read. A mixin: `ChatService` creates the state it uses (annotated below) in
its `__init__`; nothing here is used on its own.

Imports: ratelimit, store, session, rooms (and lanchat.wire).
"""

from __future__ import annotations

from chatsrv.ratelimit import TokenBucket
from chatsrv.rooms import Registry, Room, name_key
from chatsrv.session import Session
from chatsrv.store import Event, Store
from lanchat.reasons import say
from lanchat.wire import ProtocolError, encode_payload

# Rooms (docs/protocol.md §7.1): at most `max_rooms` in memory; one member may
# bring new ones into memory at ROOM_RATE per second after a burst of
# ROOM_BURST (off with --rate 0); a room nobody is in leaves memory after
# `room_idle` seconds, or sooner when a new room needs its place.
ROOM_RATE = 0.2
ROOM_BURST = 10
# Room keys whose history is known to be in the store (so a room coming back
# is read from it, and a brand-new one costs no disk read); the oldest are
# forgotten past this many.
MAX_STORED_ROOMS = 100_000


class RoomCache:
    """Rooms in memory, the room budget, and stored history read back; mixed into ChatService."""

    registry: Registry
    store: Store
    history: int
    max_rooms: int
    room_idle: float
    rate: float
    _stored_rooms: dict[str, None]
    _room_budgets: dict[Session, TokenBucket]

    def _load_recent_rooms(self, events: list[Event], now: float) -> None:
        """At start: the `max_rooms` rooms with the latest messages come back into memory, with their history."""
        by_room: dict[str, list[Event]] = {}
        for event in events:
            assert event.room is not None
            by_room.setdefault(name_key(event.room), []).append(event)
        latest_first = sorted(by_room.values(), key=lambda room_events: -room_events[-1].ts)
        for room_events in reversed(latest_first):  # oldest first: they are the first to leave memory
            self._remember_stored(name_key(room_events[0].room or ""))
        kept = latest_first[: self.max_rooms] if self.max_rooms else latest_first
        for room_events in reversed(kept):
            room = self.registry.ensure_room(room_events[0].room or "", now)
            for event in room_events:
                room.history.append(encode_payload(event.payload()))

    def _remember_stored(self, key: str) -> None:
        self._stored_rooms.pop(key, None)
        self._stored_rooms[key] = None
        if len(self._stored_rooms) > MAX_STORED_ROOMS:
            del self._stored_rooms[next(iter(self._stored_rooms))]

    def _forget_room(self, room: Room) -> None:
        """`room` leaves memory; if it has history, the store keeps it and a later join reads it back."""
        if room.history:
            self._remember_stored(room.key)

    def _forget_idle_rooms(self, now: float) -> None:
        if self.room_idle > 0:
            for room in self.registry.discard_idle(now, self.room_idle):
                self._forget_room(room)

    def _open_room(self, session: Session, name: str, now: float) -> Room:
        """The room called `name`, brought into memory if needed (with its stored history).

        A room not in memory counts against the member's room budget and
        against `max_rooms`; at the limit the room that has been empty longest
        leaves memory to make space, and only when every room has members is
        the join refused (`server_full`, not fatal).
        """
        room = self.registry.room(name)
        if room is not None:
            return room
        self._forget_idle_rooms(now)
        if self.rate > 0:
            budget = self._room_budgets.get(session)
            if budget is None:
                budget = self._room_budgets[session] = TokenBucket(ROOM_RATE, ROOM_BURST, now)
            if not budget.allow(now):
                raise ProtocolError("rate_limited", say("rooms_too_fast"))
        while self.max_rooms and len(self.registry.rooms) >= self.max_rooms:
            oldest = self.registry.discard_oldest_idle()
            if oldest is None:
                raise ProtocolError("server_full", say("rooms_full", limit=self.max_rooms))
            self._forget_room(oldest)
        room = self.registry.ensure_room(name, now)
        if room.key in self._stored_rooms:
            # A disk read under the lock: only for a room that had history, and limited by the room budget.
            for event in self.store.room_messages(room.name, self.history):
                room.history.append(encode_payload(event.payload()))
        return room
