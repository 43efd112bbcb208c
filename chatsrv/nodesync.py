"""What keeps the nodes of a backplane in step: message ids, operators, closed rooms, a node that fell behind.

A mixin of `chatsrv.backplane.Backplane` (like `chatsrv.standins.StandIns`): `Backplane` creates the
state used here in its `__init__` and calls these methods from its reader thread or under the registry
lock, as each says. docs/scale-out.md says what members see.

* Message ids: while linked, ids come from `lanchat:ids` in blocks; a node also keeps a *reserve* of
  OUTAGE_IDS ids taken from the same counter, and hands them out while Redis is away. At each link the
  counter is raised above every id the node holds (a counter Redis lost jumps FRESH_GAP further). So ids
  stay unique across nodes in every state, once a node has linked (and for OUTAGE_IDS messages of one
  outage; past that it says so and goes on above its reserve).
* Operators: a member's presence record and its `joined` carry `operator`, and the `op` notice goes
  through the stream, so every node counts the stand-in of another node's operator as an operator.
* `close_room`: the node of the operator sends its notice through the stream; every other node moves its
  own members of that room to the default room and forgets the room, as the operator's node does.
* A slow node: after a full read (it is behind by at least READ_COUNT entries) the node checks where the
  stream now starts; if entries it has not read were trimmed, it re-reads the cluster state (members,
  moderation), logs one line and tells its members that they may have missed messages.

Imports: service, session, messages, rooms, lookalike, streampack (`Item`), lanchat.i18n, lanchat.wire; never `redis`.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from chatsrv.lookalike import likeness_key
from chatsrv.messages import DEFAULT_ROOM, Join
from chatsrv.rooms import Room
from chatsrv.service import ChatService
from chatsrv.session import Session
from chatsrv.streampack import Item
from lanchat.reasons import Said, say
from lanchat.wire import encode_payload

log = logging.getLogger("chatsrv")

PREFIX = "lanchat:"
IDS = PREFIX + "ids"
MODERATION = PREFIX + "moderation"  # the latest moderation state (continuity text), for a node that re-syncs
ID_BLOCK = 1000  # message ids taken from redis at once while linked: one round trip (under the lock) per block
OUTAGE_IDS = 1_000_000  # ids a node keeps in reserve for an outage of Redis
# Raise the id counter to at least ARGV[1], atomically; a counter Redis lost (restarted empty) starts again
# ARGV[2] above it, past every id of the nodes that have not re-linked yet (their reserves included).
RAISE_IDS = (
    "local now = redis.call('GET', KEYS[1]) "
    "if not now then redis.call('SET', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2])) "
    "elseif tonumber(now) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end return 0"
)
FRESH_GAP = 2**40  # how far a lost counter jumps: 8,000 such losses before ids pass 2**53 (exact in JSON)
READ_COUNT = 1000  # stream entries read at once; a full read means the node is behind
BEHIND_NOTICE = say("backplane_behind")  # lanchat.reasons: the English text, its key for the client's language
LAPSED_NOTICE = say("backplane_lapsed")


def stream_id(raw: bytes | str) -> tuple[int, int]:
    """A stream entry id (`MS-SEQ`) as a pair that orders like the stream."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class NodeSync:
    """Ids, operators, closed rooms and catching up; mixed into Backplane."""

    service: ChatService
    client: Any
    node: str
    linked: bool
    _stand_ins: dict[str, dict[str, Session]]
    _pending: dict[int, tuple[Room, bytes, Session | None]]
    _next_id: int
    _end_id: int
    _spare: tuple[int, int]  # the reserve: ids [first, end) this node may hand out while Redis is away
    _last_id: bytes
    _errors: tuple[type[BaseException], ...]
    _queue: deque[tuple[str, dict[str, Any], list[tuple[Any, ...]]]]  # the send queue (chatsrv.backplane)
    _entering: dict[Session, int]
    ttl: float

    if TYPE_CHECKING:  # Backplane's and StandIns' own methods

        def _room_event(self, node: str, room_name: str, body: bytes, payload: dict[str, Any], transport: str,
                        host: str, now: float) -> None: ...

        def _apply_moderation(self, state: str, now: float) -> None: ...

        def _stand_in_lost(self, node: str, key: str, now: float) -> None: ...

        def _deliver_pending(self) -> None: ...

        def _tell_everyone(self, text: Said, now: float) -> None: ...

        def _members(self, node: str) -> str: ...

        def _claim_or_rename(self, session: Session, now: float) -> bool: ...

        def _presence(self, nick: str, room: str, session: Session) -> str: ...

        def _send(self, stream: str, fields: dict[str, Any], ops: list[tuple[Any, ...]]) -> None: ...

    # --- message ids (under the registry lock) ------------------------------

    def message_id(self) -> int | None:
        if self.linked and self._next_id >= self._end_id:
            try:
                last = int(self.client.incrby(IDS, ID_BLOCK))
                self._next_id, self._end_id = last - ID_BLOCK + 1, last + 1
            except self._errors:
                pass  # the reader notices the lost link; until then the reserve serves
        if self.linked and self._next_id < self._end_id:
            self._next_id += 1
            return self._next_id - 1
        first, end = self._spare
        if not end:
            return None  # never linked: the local counter, as on one server
        if first == end:  # said once: past the reserve, ids go on above it
            log.warning("backplane: the %d message ids kept for an outage are spent: until the link is back, "
                        "ids go on above them and may repeat ids of other nodes", OUTAGE_IDS)
        self._spare = (first + 1, end)
        return first

    def _reserve_ids(self) -> tuple[int, int] | None:
        """At link time (reader thread): the counter goes above every id this node handed out; a fresh reserve.

        A Redis that lost the counter (restarted empty) starts it FRESH_GAP above what the first node back
        holds, if that node had linked before: the other nodes' ids and reserves are below that.
        """
        client = self.client
        first, end = self._spare
        floor = max(self.service.store.next_message_id(), first, end) - 1
        client.eval(RAISE_IDS, 1, IDS, floor, FRESH_GAP if end else 0)  # a first link: a new cluster, no gap
        if end - first >= OUTAGE_IDS // 2:
            return None  # enough left (a new one is set under the registry lock by the caller)
        last = int(client.incrby(IDS, OUTAGE_IDS))
        return last - OUTAGE_IDS + 1, last + 1

    # --- operators and closed rooms ------------------------------------------

    def _operator_fields(self, session: Session) -> dict[str, Any]:
        return {"operator": True} if self.service.moderation.is_operator(session) else {}

    def _other_node_event(self, node: str, room_name: str, body: bytes, payload: dict[str, Any], transport: str,
                          host: str, now: float) -> None:
        """A room event of another node but a message (under the registry lock): `StandIns._room_event`, and
        what a `left` from a room closed here meanwhile and an operator's notice mean here."""
        registry = self.service.registry
        existed = registry.room(room_name) is not None
        self._room_event(node, room_name, body, payload, transport, host, now)
        room = registry.room(room_name)
        if room is None:
            return
        kind = payload.get("type")
        if kind == "left" and not existed and room.empty:
            registry.discard(room)  # left a room closed here meanwhile: nobody was told, nothing to keep
        elif kind == "notice":
            self._other_node_notice(node, room, payload, now)

    def _other_node_notice(self, node: str, room: Room, payload: dict[str, Any], now: float) -> None:
        """A notice of another node, after its room heard it."""
        event = payload.get("event")
        if event == "op":
            stand_in = self._stand_ins.get(node, {}).get(likeness_key(str(payload.get("nick", ""))))
            if stand_in is not None:
                self.service.moderation.grant(stand_in)
        elif event == "close_room" and room.name != DEFAULT_ROOM:
            self._close_here(room, now)

    def _close_here(self, room: Room, now: float) -> None:
        """An operator of another node closed `room`: our members move to the default room; the room goes."""
        service = self.service
        moved = len(room.members)
        for member in list(room.members.values()):
            # The same move as on the operator's node (ChatService._close_room), past any lock.
            service._join(member, Join(DEFAULT_ROOM), now, by_operator=True)
        self._stand_ins_leave(room)
        if service.registry.room(room.name) is room and room.empty:
            service.registry.discard(room)
        service.store.forget_room(room.name, likeness_key)
        log.info("backplane: room %s was closed on another node: %d member(s) here moved", room.name, moved)

    def _stand_ins_leave(self, room: Room) -> None:
        """Members of other nodes are out of a room being closed; their nodes move them (and say where)."""
        for stand_in in list(room.remote.values()):
            self.service.registry.leave_remote(stand_in)

    def _closing(self, payload: dict[str, Any]) -> None:
        """A `close_room` notice of this node is being published: the room must be empty of stand-ins."""
        room = self.service.registry.room(str(payload.get("room", "")))
        if room is not None:
            self._stand_ins_leave(room)

    # --- a node that fell behind (reader thread) -----------------------------

    def _check_behind(self, since: bytes, reply: list[Any], events: bytes, count: int) -> bool:
        """After a read of at most `count` entries: True when entries after `since` were trimmed unread.

        Exact while the stream keeps at least `count` entries: a read that is not full reached the stream's
        end, and trimming keeps the newest entries. After a full one, where the stream now starts tells: at
        or before `since`, nothing after it was trimmed (trimming takes the oldest first); after it, the
        entry after `since` may be gone (rarely it is the stream's first: a catch-up that was not needed).
        The reader asks twice (chatsrv.backplane): `since` where the read began, right after the read, and
        `since` the last entry applied, once the read is applied at the members' pace, which takes a while:
        a stream trimmed meanwhile past where the read began lost nothing that was read.
        """
        full = any(stream == events and len(entries) >= count for stream, entries in reply)
        if not full:
            return False  # the read reached the end of the stream: nothing after `since` was trimmed
        info = self.client.xinfo_stream(events)
        first = info.get("recorded-first-entry-id") or (info.get("first-entry") or [None])[0]  # Redis 7; 5 and 6
        return first is not None and stream_id(first) > stream_id(since)

    def _catch_up(self, events: str, applied: bytes) -> None:
        """Re-read the cluster state from Redis, start reading at the stream's end, and say so."""
        client = self.client
        newest = client.xrevrange(events, count=1)
        alive = {key.decode().rsplit(":", 1)[1] for key in client.scan_iter(match=f"{PREFIX}alive:*", count=1000)}
        alive.discard(self.node)
        others = {node: client.hgetall(self._members(node)) for node in alive}
        state = client.get(MODERATION)
        service = self.service
        with service.fanout.batch():
            if not self.linked:
                return
            now = service.clock()
            self._deliver_pending()  # ours may have been trimmed: delivered here now
            for node in list(self._stand_ins):
                listed = {likeness_key(nick) for nick, _ in _records(others.get(node, {}))}
                for key in [key for key in self._stand_ins[node] if key not in listed]:
                    self._stand_in_lost(node, key, now)
            for node, members in others.items():
                self._add_listed(node, members, now)
            # A change of ours not sent yet is newer than the key (a copy: the sender takes from the queue meanwhile).
            ours = any(fields.get("k") == "mod" for _, fields, _ in list(self._queue))
            if state is not None and not ours:
                self._apply_moderation(state.decode(), now)
            self._last_id = newest[0][0] if newest else self._last_id
            log.warning("backplane: node %s fell behind the stream (entries after %s were trimmed before it "
                        "read them): it re-read the members and moderation from Redis and goes on from the end",
                        self.node, applied.decode())
            self._tell_everyone(BEHIND_NOTICE, now)

    # --- who is on a node, announced after each link and after a lapse ----------

    def _announce(self, mine: list[Session], now: float, events: str) -> list[Item]:
        """This node's members for the others (under the registry lock; it claims their nicks in Redis).

        Each nick is claimed again (one that another node's member took meanwhile becomes NICK_2); then the
        stream entries: first the roster, every member and its room (another node drops whoever of ours it
        lists and the roster does not: they left while it did not hear, and the `left` was never sent; its
        ops rewrite the presence hash), then a `joined` for each (serial 0: not delivered here), which
        the other nodes list if they do not yet.
        """
        members = self._members(self.node)
        ops: list[tuple[Any, ...]] = [("delete", members)]
        roster: dict[str, str] = {}
        joins: list[Item] = []
        for session in mine:
            if session.nick is None or not self._claim_or_rename(session, now):
                continue
            room = self.service.registry.room_of(session)
            if room is None:
                continue
            roster[session.nick] = room.name
            ops.append(("hset", members, likeness_key(session.nick), self._presence(session.nick, room.name,
                                                                                     session)))
            joined = {"type": "joined", "nick": session.nick, "room": room.name, "ts": now,
                      **self._operator_fields(session)}
            joins.append((events, {"n": self.node, "s": 0, "r": room.name, "b": encode_payload(joined),
                                   "t": session.transport, "a": host_of(session)}, []))
        ops.append(("expire", members, max(1, round(self.ttl))))
        return [(events, {"n": self.node, "k": "roster", "b": json.dumps(roster)}, ops), *joins]

    def _lapsed(self, events: str) -> None:
        """Reader thread: this node's heartbeat key had expired while it stayed linked (it stalled: a stopped
        process, a renewal that waited), so the other nodes may have had its members leave (`lost`). It
        announces them again through the send queue, in order with what it publishes, and says so."""
        with self.service.fanout.batch():
            if not self.linked:
                return
            now = self.service.clock()
            self._tell_everyone(LAPSED_NOTICE, now)  # why, before a rename's own notice
            entries = self._announce([session for session in self.service.sessions if session.joined], now, events)
            for stream, fields, ops in entries:
                self._send(stream, fields, ops)
            log.warning("backplane: this node's heartbeat key had expired (no renewal for over %d s: the other "
                        "nodes saw its members leave): it announced its %d member(s) again",
                        max(1, round(self.ttl)), len(entries) - 1)

    def _apply_roster(self, node: str, roster: bytes, now: float) -> None:
        """Another node's roster (under a batch): its members listed here that it does not list leave (reason
        `lost`, also one listed under another spelling of its look-alike key), those listed here in another
        room leave that room (reason `moved`); the `joined` events that follow list the rest where they are."""
        listed = {likeness_key(nick): (nick, room) for nick, room in json.loads(roster).items()}
        registry = self.service.registry
        for key, stand_in in list(self._stand_ins.get(node, {}).items()):
            nick, room_name = listed.get(key, (None, ""))
            room = registry.room_of(stand_in)
            if nick is None or nick != stand_in.nick:
                self._stand_in_lost(node, key, now)
            elif room is not None and registry.room(room_name) is not room:
                registry.leave_remote(stand_in, now)
                left = {"type": "left", "nick": nick, "room": room.name, "ts": now, "reason": "moved"}
                self.service.fanout.member_changed(room, left)

    def _add_listed(self, node: str, members: dict[bytes, bytes], now: float) -> None:
        """Members of `node` from its presence hash, as `joined` events (known ones are left as they are)."""
        for nick, member in _records(members):
            room_name = str(member["room"])
            joined: dict[str, Any] = {"type": "joined", "nick": nick, "room": room_name, "ts": now}
            if member.get("o"):
                joined["operator"] = True
            self._room_event(node, room_name, encode_payload(joined), joined,
                             str(member.get("t", "tcp")), str(member.get("a", "")), now)


def host_of(session: Session) -> str:
    """The host a member connects from, as its presence record and its `joined` carry it."""
    address = session.address
    return str(address[0]) if isinstance(address, tuple) and address else str(address)


def _records(members: dict[bytes, bytes]) -> list[tuple[str, dict[str, Any]]]:
    """The nick and record of every member of a presence hash (records that cannot be read are skipped)."""
    records = []
    for raw in members.values():
        try:
            member = json.loads(raw)
            if isinstance(member["nick"], str) and isinstance(member["room"], str):
                records.append((member["nick"], member))
        except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: JSON nested too deep
            continue
    return records
