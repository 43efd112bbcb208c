"""Registry of rooms, members and nicks, with each room's recent history.

A nick or room name is found by its look-alike key (`chatsrv.lookalike.likeness_key`:
NFKC case-fold plus the UTS #39 confusable skeleton, docs/protocol.md §6), so
`ｔｅａｃｈｅｒ` and `tеacher` find `teacher`; names are shown as first spelled.
`name_key` (the case-fold) stays the key that other state is filed under
(mutes, the store's room_key), so stored history keeps its keys.
With a backplane (chatsrv.backplane), members of other nodes are kept as
stand-in sessions in `Room.remote` and in `by_nick`: found, listed and
counted like local ones (so nicks stay unique and /who and /rooms are whole),
but never in `Room.members`, so a local broadcast never reaches them.
A room exists in memory while it has members, or history and a recent
member: `idle` holds the rooms nobody is in, oldest first, so the service
can let them go after a while or when it needs room for a new one (their
history stays in the store). One lock (`Registry.lock`)
guards everything here; the service holds it for every change and every
delivery, which also keeps each member's `seq` in queue order.

Imports only `chatsrv.session` (for the type) and `chatsrv.lookalike`; no sockets, no clocks.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Iterator

from chatsrv.lookalike import likeness_key
from chatsrv.session import Session


class NickInUse(ValueError):
    """A session was to be filed under a look-alike key that another session holds (a caller's mistake)."""


def name_key(name: str) -> str:
    """The case-insensitive key other state is filed under (mutes, stored history)."""
    return name.casefold()


class Room:
    """A broadcast room: members by look-alike key, recent encoded `message` payloads.

    `members` and `remote` change only through the Registry, which also keeps
    `sorted_nicks` (every nick here, local and remote, as (casefold, nick) in
    order) with bisect: every `welcome` lists the room, and sorting 5,000 nicks
    for each of 5,000 joins was a heap of short-lived lists (docs/architecture.md
    "Memory per connection").
    """

    __slots__ = ("alike", "history", "key", "members", "name", "remote", "sorted_nicks", "topic", "version")

    def __init__(self, name: str, history_size: int) -> None:
        self.name = name
        self.key = name_key(name)
        self.alike = likeness_key(name)
        self.members: dict[str, Session] = {}  # local members: the ones a broadcast here reaches
        self.remote: dict[str, Session] = {}  # stand-ins for members on other nodes (backplane only)
        self.sorted_nicks: list[tuple[str, str]] = []  # (nick.casefold(), nick) of members and remote, in order
        self.history: deque[bytes] = deque(maxlen=history_size)
        self.topic: str | None = None
        self.version = 0  # changes whenever a member enters or leaves

    def nicks(self) -> list[str]:
        """Every nick here, local and remote, in case-insensitive order."""
        return [nick for _, nick in self.sorted_nicks]

    def list_nick(self, nick: str) -> None:
        """Registry only: `nick` entered (in order, by bisect)."""
        bisect.insort(self.sorted_nicks, (nick.casefold(), nick))

    def forget(self, where: dict[str, Session], key: str, session: Session) -> None:
        """Registry only: `session`, if it is the one filed under `key` in `where` (members or remote), leaves
        it and the list. Never another session: a leave must not take a look-alike's place with it."""
        gone = where.get(key)
        if gone is not session or gone.nick is None:
            return
        del where[key]
        entry = (gone.nick.casefold(), gone.nick)
        index = bisect.bisect_left(self.sorted_nicks, entry)
        if index < len(self.sorted_nicks) and self.sorted_nicks[index] == entry:
            del self.sorted_nicks[index]

    @property
    def empty(self) -> bool:
        """Nobody here, on this node or another."""
        return not self.members and not self.remote


class Registry:
    """All rooms and all joined members of one server.

    `by_nick` is keyed by `likeness_key`, so a look-alike of a nick in use is
    found as that nick (and refused with `nick_taken` by the service); rooms
    are filed under `Room.key` and found by their look-alike key as well.
    One session per look-alike key, local or remote: filing a second one
    under a key in use raises `NickInUse` (the caller decides who goes
    first), so no member is ever overwritten and left half-listed.
    """

    def __init__(self, history_size: int = 50) -> None:
        self.lock = threading.RLock()
        self.history_size = history_size
        self.rooms: dict[str, Room] = {}  # by Room.key
        self.alike_rooms: dict[str, Room] = {}  # the same rooms, by Room.alike
        self.by_nick: dict[str, Session] = {}  # by likeness_key(nick)
        self.idle: dict[str, float] = {}  # Room.key -> since when nobody is in it; oldest first

    def find(self, nick: str) -> Session | None:
        """The member called `nick` or a name that looks like it."""
        return self.by_nick.get(likeness_key(nick))

    def room(self, name: str) -> Room | None:
        """The room called `name` or a name that looks like it."""
        return self.alike_rooms.get(likeness_key(name))

    def room_of(self, session: Session) -> Room | None:
        return self.rooms.get(session.room_key) if session.room_key else None

    def ensure_room(self, name: str, now: float = 0.0) -> Room:
        """The room called `name` (or a look-alike of it), created on first use (idle since `now`)."""
        room = self.room(name)
        if room is None:
            room = Room(name, self.history_size)
            self.rooms[room.key] = self.alike_rooms[room.alike] = room
            self.idle[room.key] = now
        return room

    def discard(self, room: Room) -> None:
        """Forget `room` (it must have no members): its history lives on only in the store."""
        assert room.empty
        if self.rooms.get(room.key) is room:
            del self.rooms[room.key]
            self.idle.pop(room.key, None)
            if self.alike_rooms.get(room.alike) is room:
                del self.alike_rooms[room.alike]

    def discard_idle(self, now: float, after: float) -> list[Room]:
        """Forget the rooms nobody has been in for `after` seconds; returns them."""
        gone: list[Room] = []
        for key, since in list(self.idle.items()):
            if now - since < after:
                break  # the rest became idle later
            room = self.rooms[key]
            self.discard(room)
            gone.append(room)
        return gone

    def discard_oldest_idle(self) -> Room | None:
        """Forget the room that has been empty longest, if any (to make space for a new one)."""
        for key in self.idle:
            room = self.rooms[key]
            self.discard(room)
            return room
        return None

    def _claim(self, session: Session, nick: str) -> None:
        """`nick` is to be `session`'s: NickInUse when another session holds its look-alike key."""
        held = self.by_nick.get(likeness_key(nick))
        if held is not None and held is not session:
            raise NickInUse(f"{nick!r} looks like {held.nick!r}, which another member holds")

    def add(self, session: Session, nick: str, room: Room) -> None:
        """Register `session` under `nick` as a member of `room`."""
        self._claim(session, nick)
        session.nick = nick
        self.by_nick[likeness_key(nick)] = session
        self.enter(session, room)

    def enter(self, session: Session, room: Room) -> None:
        assert session.nick is not None
        key = likeness_key(session.nick)
        room.forget(room.members, key, session)
        room.members[key] = session
        room.list_nick(session.nick)
        room.version += 1
        session.room_key = room.key
        self.idle.pop(room.key, None)

    def leave_room(self, session: Session, now: float = 0.0) -> Room | None:
        """Take `session` out of its room: a room left empty is dropped, or idle from `now` if it has history."""
        room = self.room_of(session)
        if room is not None and session.nick is not None:
            room.forget(room.members, likeness_key(session.nick), session)
            room.version += 1
            if room.empty:
                if not room.history and room.topic is None:
                    self.discard(room)
                else:
                    self.idle.pop(room.key, None)
                    self.idle[room.key] = now  # appended last: the idle dict stays oldest first
        session.room_key = None
        return room

    def remove(self, session: Session, now: float = 0.0) -> Room | None:
        """Forget `session` entirely; returns the room it was in."""
        room = self.leave_room(session, now)
        if session.nick is not None and self.by_nick.get(likeness_key(session.nick)) is session:
            del self.by_nick[likeness_key(session.nick)]
        return room

    def rename(self, session: Session, new: str) -> None:
        assert session.nick is not None
        self._claim(session, new)
        room = self.room_of(session)
        old_key = likeness_key(session.nick)
        if self.by_nick.get(old_key) is session:
            del self.by_nick[old_key]
        if room is not None:
            room.forget(room.members, old_key, session)
            room.members[likeness_key(new)] = session
            room.list_nick(new)
        session.nick = new
        self.by_nick[likeness_key(new)] = session

    # --- members of other nodes (chatsrv.backplane) ------------------------

    def add_remote(self, stand_in: Session, nick: str, room: Room) -> None:
        """A member of another node: found by nick and listed in `room`, never delivered to by a broadcast."""
        self._claim(stand_in, nick)
        stand_in.nick = nick
        self.by_nick[likeness_key(nick)] = stand_in
        self.enter_remote(stand_in, room)

    def enter_remote(self, stand_in: Session, room: Room) -> None:
        assert stand_in.nick is not None
        self._claim(stand_in, stand_in.nick)
        self.leave_remote(stand_in)
        key = likeness_key(stand_in.nick)
        room.remote[key] = stand_in
        room.list_nick(stand_in.nick)
        stand_in.room_key = room.key
        self.idle.pop(room.key, None)

    def leave_remote(self, stand_in: Session, now: float = 0.0) -> None:
        room = self.room_of(stand_in)
        if room is not None and stand_in.nick is not None:
            room.forget(room.remote, likeness_key(stand_in.nick), stand_in)
            if room.empty and room.key not in self.idle:
                self.idle[room.key] = now  # an empty room leaves memory like any other (discard_idle)
        stand_in.room_key = None

    def remove_remote(self, stand_in: Session, now: float = 0.0) -> None:
        self.leave_remote(stand_in, now)
        if stand_in.nick is not None and self.by_nick.get(likeness_key(stand_in.nick)) is stand_in:
            del self.by_nick[likeness_key(stand_in.nick)]

    def rename_remote(self, stand_in: Session, new: str) -> None:
        assert stand_in.nick is not None
        self._claim(stand_in, new)
        room = self.room_of(stand_in)
        old_key = likeness_key(stand_in.nick)
        if self.by_nick.get(old_key) is stand_in:
            del self.by_nick[old_key]
        if room is not None:
            room.forget(room.remote, old_key, stand_in)
            room.remote[likeness_key(new)] = stand_in
            room.list_nick(new)
        stand_in.nick = new
        self.by_nick[likeness_key(new)] = stand_in

    def members(self) -> Iterator[Session]:
        return iter(list(self.by_nick.values()))

    def listing(self) -> list[dict[str, object]]:
        """Every non-empty room as {"name", "users"} (docs/protocol.md §5 `rooms`, §7.2).

        Rooms with members come first, busiest first, then rooms that only
        have history (a room with history counts as non-empty even with no one
        in it, so the rooms of a lesson are listed again after a restart);
        within each, by name. A reply trimmed to a frame so keeps the rooms
        people are in.
        """
        rooms = [room for room in self.rooms.values() if not room.empty or room.history]
        rooms.sort(key=lambda room: (-len(room.members) - len(room.remote), room.key))
        return [{"name": room.name, "users": len(room.members) + len(room.remote)} for room in rooms]
