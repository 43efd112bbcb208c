"""Backplane: several chatsrv nodes serve one chat through Redis (docs/scale-out.md).

This module owns a node's link to the cluster: the one Redis stream that
puts every room event of every node in one order, this node's inbox stream
(payloads for one of its members, drop requests), the nick reservations,
the heartbeat and the presence hash, and the stand-in sessions that
represent members of other nodes in the local registry. It is the only
module that imports `redis` (lazily, so `chatsrv` runs from a bare Python
when no `--backplane` is given).

Order: a broadcast a node makes (`ChatService.broadcast` calls `publish`)
is not delivered locally at once: it is appended to the stream, and every
node, this one included, delivers what it reads back from the stream in
stream order. So every member on every node sees room events in the same
order. Personal payloads (welcome, replies, errors) stay local.

Keys (all under `lanchat:`): `events` (the stream), `inbox:NODE` (a node's
inbox stream), `alive:NODE` (expires unless the node's heartbeat renews
it), `members:NODE` (hash: look-alike key -> the member's nick, room,
transport, host, operator), `nick:KEY` (which node holds a nick, by its look-alike
key), `ids` (message ids, handed out in blocks), `moderation` (the latest state).

Failures: a node whose `alive` key expired has its members leave every
other node's lists (reason `lost`) within `ttl + heartbeat` seconds; a node
that finds its own key expired when it renews it (it stalled) announces its
members again (chatsrv.nodesync `_lapsed`). When
Redis cannot be reached, the node delivers what it had published and not
yet read back, removes the other nodes' members (reason `lost`), tells its
members that rooms are local, and serves them alone (also when more than
MAX_QUEUED entries wait to be sent: a Redis too slow for this node never
makes its members wait without bound); the reader thread
reconnects with back-off and re-joins: it re-claims its members' nicks (a
member whose nick another node took meanwhile is renamed `NICK_2`, ...),
re-publishes its members (first its roster: the others drop whoever of it
they list and it does not, who left while it was cut off) and reads the
others' from their presence hashes.

Threads and locks: `backplane-read` (XREAD, heartbeat, reconnect) and
`backplane-send` (pipelines what `publish` queued, packed by
chatsrv.streampack). Every field is owned by the registry lock but the
send queue: a deque that entries are appended to under the registry lock
and taken from by the sender alone; the sender's condition (`_wake`) is
taken, inside the registry lock and never the other way round, only to
wake an idle sender.
A redis call made under the registry lock (`nick_holder`, a new block of
message ids every ID_BLOCK messages) has a short socket timeout.

Applying other nodes' events to the local registry (stand-ins, room events,
inbox entries, moderation, a node forgotten) is the `StandIns` part
(chatsrv.standins), mixed into `Backplane`; keeping the nodes in step (ids during
an outage, operators, closed rooms, a node behind the trimmed stream) is the
`NodeSync` part (chatsrv.nodesync).

Imports: session, lookalike, mistakes, rooms, service, standins, nodesync, streampack, cluster (shown_url),
lanchat.wire; `redis` (lazily).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque
from typing import Any

from chatsrv.cluster import shown_url
from chatsrv.lookalike import likeness_key
from chatsrv.mistakes import MistakeLog
from chatsrv.nodesync import (
    ID_BLOCK,  # noqa: F401 (its old home: the name stays importable from here)
    MODERATION,
    RAISE_IDS,  # noqa: F401 (its old home)
    READ_COUNT,
    NodeSync,
)
from chatsrv.nodesync import host_of as _host
from chatsrv.rooms import Room
from chatsrv.service import ChatService
from chatsrv.session import Session
from chatsrv.standins import APPLY_ERRORS, StandInOutbox, StandIns
from chatsrv.streampack import packed
from lanchat.i18n import N_
from lanchat.reasons import Said, say
from lanchat.wire import encode_payload

log = logging.getLogger("chatsrv")

PREFIX = "lanchat:"
EVENTS = PREFIX + "events"
STREAM_MAXLEN = 100_000  # entries kept in the stream (approximately): enough for a node that reads late
INBOX_MAXLEN = 10_000
MAX_QUEUED = 50_000  # entries waiting to be sent: past this Redis is too slow for us, and the node goes local
MESSAGE_PREFIX = b'{"type":"message"'  # how every encoded `message` payload starts (lanchat.wire.encode_message)
READ_BLOCK_MS = 200  # longest XREAD wait: also how late a stop or a heartbeat can be
SOCKET_TIMEOUT = 2.0  # seconds; longer than READ_BLOCK_MS
MAX_BACKOFF = 5.0  # seconds between reconnection attempts, at most
LOCAL_NOTICE = say("backplane_lost")  # lanchat.reasons: the English text, its key for the client's language
BACK_NOTICE = say("backplane_back")


class Backplane(StandIns, NodeSync):
    """One node's link to the cluster (see the module docstring)."""

    read_block_ms = READ_BLOCK_MS  # tests set it lower: stop() waits for the XREAD under way

    def __init__(
        self,
        service: ChatService,
        url: str,
        *,
        node: str | None = None,
        heartbeat: float = 1.0,
        ttl: float = 3.0,
    ) -> None:
        import redis  # only here: chatsrv without --backplane needs nothing outside the standard library

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.url = shown_url(url)  # as logged: without a password
        self._unreachable: str | None = None  # why the last try to link failed (logged once per reason)
        # Typed Any: redis-py's stubs cannot tell bytes replies (decode_responses off, as here) from str ones.
        self.client: Any = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=1.0)
        self.service = service
        self.node = node or uuid.uuid4().hex[:12]
        self.heartbeat = heartbeat
        self.ttl = ttl
        self.linked = False  # registry lock
        self.links = 0  # how many times the link was made (registry lock)
        self.recovery_seconds: float | None = None  # how long the last outage lasted, once it is over
        self._lost_at: float | None = None
        self._pending: dict[int, tuple[Room, bytes, Session | None]] = {}  # published, not yet read back
        self._entering: dict[Session, int] = {}  # local members whose `joined` is not read back: its serial
        self._serials = itertools.count(1)
        self._stand_ins: dict[str, dict[str, Session]] = {}  # node -> look-alike key -> stand-in
        self._next_id = 0
        self._end_id = 0
        self._spare = (0, 0)  # ids kept for an outage (chatsrv.nodesync)
        self._last_id = b"0-0"
        self._inbox_id = b"0-0"
        self._queue: deque[tuple[str, dict[str, Any], list[tuple[Any, ...]]]] = deque()
        self._wake = threading.Condition(threading.Lock())  # wakes the sender
        self._idle = False  # the sender waits for entries (set and cleared under `_wake`)
        self._jammed = False  # the send queue overflowed (set under the send condition, read by the reader)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._bad_entries = MistakeLog()  # entries that could not be applied: a few log lines per 10 s

    # --- keys -------------------------------------------------------------

    def _alive(self, node: str) -> str:
        return f"{PREFIX}alive:{node}"

    def _members(self, node: str) -> str:
        return f"{PREFIX}members:{node}"

    def _inbox(self, node: str) -> str:
        return f"{PREFIX}inbox:{node}"

    @staticmethod
    def _nick(nick: str) -> str:
        return f"{PREFIX}nick:{likeness_key(nick)}"

    # --- start and stop ---------------------------------------------------

    def start(self) -> None:
        """Attach to the service and start the two threads (the reader makes the link)."""
        self.service.cluster = self
        for name, target in (("backplane-read", self._read_loop), ("backplane-send", self._send_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait_linked(self, timeout: float) -> bool:
        """True once the link is made (for start-up lines and tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.linked:
                return True
            self._stop.wait(0.01)
        return self.linked

    def stop(self) -> None:
        """Leave the cluster cleanly: the other nodes see this node's members leave (reason `shutdown`)."""
        with self.service.registry.lock:
            was_linked, self.linked = self.linked, False
            self.service.cluster = None
            leaving = [s for s in self.service.sessions if s.joined]
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(5)
        with self.service.fanout.batch():  # the threads are gone: what was not read back is delivered here
            self._deliver_pending()
        if was_linked:
            try:
                pipe = self.client.pipeline(transaction=False)
                now = self.service.clock()
                for session in leaving:
                    room = self.service.registry.room_of(session)
                    if room is None or session.nick is None:
                        continue
                    left = {"type": "left", "nick": session.nick, "room": room.name, "ts": now, "reason": "shutdown"}
                    pipe.xadd(EVENTS, self._fields(0, room.name, encode_payload(left)), maxlen=STREAM_MAXLEN)
                    pipe.delete(self._nick(session.nick))
                pipe.delete(self._alive(self.node), self._members(self.node), self._inbox(self.node))
                pipe.execute()
            except self._errors as error:
                log.warning("backplane: could not say goodbye to the cluster (%s)", error)
        self.client.close()

    # --- what the service calls (under the registry lock) -------------------

    def publish(self, room: Room, body: bytes, exclude: Session | None) -> bool:
        if not self.linked:
            return False
        serial = next(self._serials)
        self._pending[serial] = (room, body, exclude)
        ops: list[tuple[Any, ...]] = []
        fields = self._fields(serial, room.name, body)
        if not body.startswith(MESSAGE_PREFIX):
            payload = json.loads(body)
            ops = self._presence_ops(payload, exclude, fields)
            if exclude is not None and payload.get("type") == "joined":
                self.service.fanout.entered(room, exclude)  # its welcome, queued next, lists who is there
                self._entering[exclude] = serial
        self._send(EVENTS, fields, ops)
        return True

    def nick_holder(self, nick: str) -> str | None:
        if not self.linked:
            return None
        try:
            return None if self._claim(nick) else self._holder(nick)
        except self._errors:
            return None  # the reader notices the lost link; until then the local registry decides

    def _holder(self, nick: str) -> str:
        """The nick, as its node wrote it, of the member that holds `nick`'s reservation ("": not known)."""
        owner = self.client.get(self._nick(nick))
        record = self.client.hget(self._members(owner.decode()), likeness_key(nick)) if owner else None
        try:
            return str(json.loads(record).get("nick", "")) if record else ""
        except APPLY_ERRORS:  # a record that cannot be read: the holder is not known
            return ""

    def _claim(self, nick: str) -> bool:
        key = self._nick(nick)
        if self.client.set(key, self.node, nx=True):
            return True
        owner = self.client.get(key)
        if owner is None:
            return bool(self.client.set(key, self.node, nx=True))
        holder = owner.decode()
        if holder == self.node:
            return True  # a reservation of ours that outlived its member; the local registry says it is free
        if self.client.exists(self._alive(holder)):
            return False
        self.client.set(key, self.node)  # the node that held it is gone
        return True

    def forward_drop(self, session: Session, reason: str, details: dict[str, Any] | None) -> bool:
        outbox = session.outbox
        if not isinstance(outbox, StandInOutbox):
            return False
        fields = {"k": "drop", "nick": session.nick or "", "reason": reason, "details": json.dumps(details or {})}
        self._send(self._inbox(outbox.node), fields, [])
        return True

    def moderation_changed(self, state: str) -> None:
        if self.linked:
            self._send(EVENTS, {"n": self.node, "s": 0, "k": "mod", "b": state}, [("set", MODERATION, state)])

    def welcomed(self, session: Session, now: float) -> None:
        if not self.linked:  # its welcome listed only this node's members: why (the notice when back follows)
            self._tell_everyone(LOCAL_NOTICE, now, only=session)

    def forward(self, node: str, nick: str, body: bytes) -> None:
        """A personal payload for a member of `node` (from its stand-in's outbox)."""
        if self.linked:
            self._send(self._inbox(node), {"k": "put", "nick": nick, "b": body}, [])

    # --- sending ------------------------------------------------------------

    def _fields(self, serial: int, room: str, body: bytes) -> dict[str, Any]:
        return {"n": self.node, "s": serial, "r": room, "b": body}

    def _presence_ops(
        self, payload: dict[str, Any], exclude: Session | None, fields: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """What a room event of a local member changes in this node's presence hash and nick keys."""
        kind = payload.get("type")
        members = self._members(self.node)
        if kind == "joined" and exclude is not None:
            fields["t"] = exclude.transport
            fields["a"] = _host(exclude)
            return [("hset", members, likeness_key(payload["nick"]), self._presence(payload["nick"], payload["room"],
                                                                                       exclude))]
        if kind == "left" and payload.get("reason") != "moved":
            return [("hdel", members, likeness_key(payload["nick"])), ("delete", self._nick(payload["nick"]))]
        if kind == "renamed":
            member = self.service.registry.find(payload["new"])
            ops: list[tuple[Any, ...]] = [
                ("hdel", members, likeness_key(payload["old"])),
                ("delete", self._nick(payload["old"])),
            ]
            if member is not None:
                ops.append(("hset", members, likeness_key(payload["new"]),
                            self._presence(payload["new"], payload["room"], member)))
            return ops
        if kind == "notice" and payload.get("event") == "op":  # the operator mark goes into the presence record
            member = self.service.registry.find(str(payload.get("nick", "")))
            if member is not None and member.nick is not None:
                return [("hset", members, likeness_key(member.nick), self._presence(member.nick, payload["room"],
                                                                                     member))]
        if kind == "notice" and payload.get("event") == "close_room":
            self._closing(payload)
        return []

    def _presence(self, nick: str, room: str, session: Session) -> str:
        record = {"nick": nick, "room": room, "t": session.transport, "a": _host(session)}
        return json.dumps({**record, "o": 1} if self.service.moderation.is_operator(session) else record)

    def _send(self, stream: str, fields: dict[str, Any], ops: list[tuple[Any, ...]]) -> None:
        """Queue an entry (under the registry lock): no lock of its own; the sender is woken only when idle."""
        if len(self._queue) >= MAX_QUEUED:
            self._jammed = True  # the reader thread takes the node local (it cannot be done under this lock)
            return
        self._queue.append((stream, fields, ops))
        if self._idle:
            with self._wake:
                self._wake.notify()

    def _send_loop(self) -> None:
        queue = self._queue
        while True:
            with self._wake:
                self._idle = True  # set before looking: an entry queued after the look sees it and wakes us
                while not queue and not self._stop.is_set():
                    self._wake.wait()
                self._idle = False
                if self._stop.is_set():
                    return
            items = [queue.popleft() for _ in range(len(queue))]  # entries queued meanwhile wait for the next round
            try:
                pipe = self.client.pipeline(transaction=False)
                for stream, fields, ops in packed(items, self.node, EVENTS):
                    maxlen = STREAM_MAXLEN if stream == EVENTS else INBOX_MAXLEN
                    pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
                    for op, *args in ops:
                        getattr(pipe, op)(*args)
                pipe.execute()
            except self._errors as error:
                self._link_lost(error)

    # --- reading ------------------------------------------------------------

    def _read_loop(self) -> None:
        backoff = 0.1
        next_beat = 0.0
        while not self._stop.is_set():
            if not self.linked:
                try:
                    self._join_cluster()
                    backoff = 0.1
                    next_beat = time.monotonic() + self.heartbeat
                except self._errors as error:
                    if str(error) != self._unreachable:  # once per reason: a wrong host, port or database shows
                        self._unreachable = str(error)
                        log.warning("backplane: %s not reachable (%s); trying again (at most %.0f s apart)",
                                    self.url, error, MAX_BACKOFF)
                    log.debug("backplane: %s not reachable (%s); next try in %.1f s", self.url, error, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if self._jammed:
                self._jammed = False
                self._link_lost(RuntimeError(f"more than {MAX_QUEUED} entries wait to be sent"))
                continue
            try:
                if time.monotonic() >= next_beat:
                    self._beat()
                    next_beat = time.monotonic() + self.heartbeat
                streams = {EVENTS: self._last_id, self._inbox(self.node): self._inbox_id}
                read_from = self._last_id
                reply = self.client.xread(streams, count=READ_COUNT, block=self.read_block_ms)
                if reply:
                    # Checked twice: at once, for entries trimmed before this read (it skipped them), and after
                    # the read is applied at the members' pace (a second or more), against the last entry
                    # applied: the stream trimmed meanwhile past where the read began lost nothing read.
                    skipped = self._check_behind(read_from, reply, EVENTS.encode(), READ_COUNT)
                    self._apply_paced(reply)
                    applied = self._last_id
                    if skipped or self._check_behind(applied, reply, EVENTS.encode(), READ_COUNT):
                        self._catch_up(EVENTS, read_from if skipped else applied)
            except self._errors as error:
                self._link_lost(error)

    def _join_cluster(self) -> None:
        """Make the link: read where the stream is and who is on the other nodes, then announce our members."""
        client = self.client
        client.ping()
        newest = client.xrevrange(EVENTS, count=1)
        last_id = newest[0][0] if newest else b"0-0"
        inbox = client.xrevrange(self._inbox(self.node), count=1)
        inbox_id = inbox[0][0] if inbox else b"0-0"
        others: dict[str, dict[bytes, bytes]] = {}
        for key in client.scan_iter(match=f"{PREFIX}alive:*", count=1000):
            node = key.decode().rsplit(":", 1)[1]
            if node != self.node:
                others[node] = client.hgetall(self._members(node))
        client.set(self._alive(self.node), "1", ex=max(1, round(self.ttl)))
        # Ids go on above every id this node's store or reserve has handed out (its messages table keys on them).
        spare = self._reserve_ids()
        service = self.service
        with service.fanout.batch():
            if self._stop.is_set():
                return
            now = service.clock()
            mine = [session for session in service.sessions if session.joined]
            if self._lost_at is not None or not self.links:  # why, before the renames and the others' joins
                self._tell_everyone(BACK_NOTICE, now)  # (at the first link: those who joined before it were told)
            if self.links:  # only a node that was linked before can hold reservations of members gone meanwhile
                self._drop_stale_nicks(mine)
            pipe = client.pipeline(transaction=False)
            for stream, fields, ops in self._announce(mine, now, EVENTS):  # the roster, then who is where
                pipe.xadd(stream, fields, maxlen=STREAM_MAXLEN, approximate=True)
                for op, *args in ops:
                    getattr(pipe, op)(*args)
            pipe.execute()
            for node, members in others.items():
                self._add_listed(node, members, now)
            self._last_id, self._inbox_id = last_id, inbox_id
            self._next_id = self._end_id = 0
            if spare is not None:
                self._spare = spare
            self.linked = True
            self.links += 1
            self._unreachable = None
            remote = sum(len(members) for members in self._stand_ins.values())
            if self._lost_at is not None:
                self.recovery_seconds = time.monotonic() - self._lost_at
                self._lost_at = None
                log.info(  # good news: the loss before it was the warning
                    "backplane: link to %s is back after %.1f s: %d other node(s), %d member(s) there",
                    self.url, self.recovery_seconds, len(others), remote,
                )
            else:
                log.info("backplane: node %s linked to %s: %d other node(s), %d member(s) there",
                         self.node, self.url, len(others), remote)

    def _drop_stale_nicks(self, mine: list[Session]) -> None:
        """Nick reservations of this node whose members left while the link was down are released."""
        kept = {self._nick(session.nick).encode() for session in mine if session.nick is not None}
        node = self.node.encode()
        for key in self.client.scan_iter(match=f"{PREFIX}nick:*", count=1000):
            if key not in kept and self.client.get(key) == node:
                self.client.delete(key)

    def _claim_or_rename(self, session: Session, now: float) -> bool:
        """Re-claim a member's nick after an outage; if another node's member took it, rename ours."""
        assert session.nick is not None
        if self._claim(session.nick):
            return True
        registry = self.service.registry
        for n in range(2, 100):
            candidate = f"{session.nick}_{n}"
            if registry.find(candidate) is None and self._claim(candidate):
                old = session.nick
                registry.rename(session, candidate)
                room = registry.room_of(session)
                log.warning("backplane: %s was taken on another node meanwhile: %s is now %s", old, old, candidate)
                if room is not None:
                    renamed = {"type": "renamed", "old": old, "new": candidate, "room": room.name, "ts": now}
                    self.service.fanout.broadcast(room, encode_payload(renamed))
                self._tell_everyone(say("backplane_renamed", old=old, new=candidate), now, only=session)  # why
                return True
        return False

    def _beat(self) -> None:
        """Renew this node's keys (one that had expired: `_lapsed`); members of nodes whose key expired leave."""
        seconds = max(1, round(self.ttl))
        nodes = list(self._stand_ins)
        pipe = self.client.pipeline(transaction=False)
        pipe.expire(self._alive(self.node), seconds)  # 0: the key had expired, the others may have forgotten us
        pipe.set(self._alive(self.node), "1", ex=seconds)
        pipe.expire(self._members(self.node), seconds)
        for node in nodes:
            pipe.exists(self._alive(node))
        results = pipe.execute()
        if not results[0]:
            self._lapsed(EVENTS)
        gone = [node for node, alive in zip(nodes, results[3:]) if not alive]
        if gone:
            with self.service.fanout.batch():
                for node in gone:  # with none of its members here, it said goodbye (a clean stop) or had none
                    if count := self._forget_node(node, self.service.clock()):
                        log.warning("backplane: node %s stopped answering: its %d member(s) left (lost)", node, count)
                    else:
                        log.info("backplane: node %s left the cluster", node)

    def _apply(self, reply: list[Any]) -> None:
        inbox = self._inbox(self.node).encode()
        with self.service.fanout.batch():
            if not self.linked:
                return
            now = self.service.clock()
            for stream, entries in reply:
                for entry_id, fields in entries:
                    try:
                        if stream == inbox:
                            self._inbox_id = entry_id
                            self._apply_inbox(fields)
                        else:
                            self._last_id = entry_id
                            self._apply_event(fields, now)
                    except APPLY_ERRORS as error:  # a whole entry that cannot be read (a pack: its header)
                        self._skipped(fields, N_("an entry"), error)

    def _apply_event(self, fields: dict[bytes, bytes], now: float) -> None:
        node = fields[b"n"].decode()
        kind = fields.get(b"k", b"room")
        if kind == b"mod":
            if node != self.node:
                self._apply_moderation(fields[b"b"].decode(), now)
            return
        if kind == b"roster":  # a node announced its members after a link or a lapse (chatsrv.nodesync)
            if node != self.node:
                self._apply_roster(node, fields[b"b"], now)
            return
        if kind == b"pack":  # each event of a pack fails on its own (chatsrv.standins)
            if node == self.node:  # ours: delivered from what `publish` kept, the bodies need no reading
                self._own_pack(fields)
            else:
                self._other_pack(node, fields, now)
            return
        self._one_event(node, int(fields[b"s"]), fields[b"r"].decode(), fields[b"b"],
                        fields.get(b"t", b"tcp").decode(), fields.get(b"a", b"").decode(), now)

    def _own_event(self, serial: int) -> None:
        item = self._pending.pop(serial, None)
        if item is not None:
            self._deliver_own(serial, *item)

    def _one_event(self, node: str, serial: int, room_name: str, body: bytes, transport: str, host: str,
                   now: float) -> None:
        if node == self.node:
            self._own_event(serial)
            return
        if body.startswith(MESSAGE_PREFIX):  # most events: no stand-in changes, so no need to decode
            room = self.service.registry.ensure_room(room_name, now)
            room.history.append(body)
            self.service.fanout.broadcast(room, body)
            return
        self._other_node_event(node, room_name, body, json.loads(body), transport, host, now)

    def _link_lost(self, error: BaseException) -> None:
        """Redis is unreachable: rooms become local until the reader re-joins."""
        with self.service.fanout.batch():
            if not self.linked or self._stop.is_set():
                return
            self.linked = False
            self._lost_at = time.monotonic()
            log.warning("backplane: lost the link to %s (%s): rooms are local to this node until it is back",
                        self.url, error)
            with self._wake:
                self._queue.clear()
            self._deliver_pending()  # published but not read back: nothing local is lost
            now = self.service.clock()
            self._tell_everyone(LOCAL_NOTICE, now)  # why, before the other nodes' members leave (lost)
            for node in list(self._stand_ins):
                self._forget_node(node, now)

    def _tell_everyone(self, text: Said, now: float, only: Session | None = None) -> None:
        notice = encode_payload({"type": "notice", **text.fields(), "event": "backplane", "ts": now})
        for session in [only] if only is not None else self.service.sessions:
            if session.joined:
                self.service.fanout.queue(session, notice)
