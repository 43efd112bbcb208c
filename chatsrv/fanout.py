"""FanOut: what a batch queues for each member, and its delivery after the batch.

The service calls `queue` (one payload for one member) and `broadcast` (one
encoded payload for every member of a room) while it handles a batch, inside
`with fanout.batch():`. The batch holds the registry lock; at its end every
member's queued payloads go to its outbox in one `Session.deliver` (one
`Outbox.put`), still under the lock so `seq` numbers follow the queue order.
After the lock is released, `Outbox.flush` is called once on every outbox
the batch delivered to: that is where an adapter writes to sockets, so no
socket write happens inside the critical section.

Runs: consecutive broadcasts to one room within a batch share one `Run`.
The run's list of bodies is handed to every member once, and each further
broadcast to the room is a single append, whatever the room's size. A
personal payload for a member of the room, a broadcast with an exclusion,
or a member entering or leaving (the room's `version` changes) ends the
room's run; the next broadcast starts a new one. `broadcast_all` is
`broadcast` of several bodies in a row, in one call.

Deferral (TCP batches only, `may_defer=True`): a batch that another thread is
already waiting to follow leaves its deliveries and flushes to that one, as
if both had come in one read. Each member then gets one `put` and one
`send` for both (measured: fan-out +30 %, 2,000 joins in 12 s instead of
31 s). Invariants:
- at most MAX_DEFERRED batches in a row defer; the next one delivers;
- a batch that nobody waits for always delivers, so nothing is left queued
  once the lock is free and no thread waits;
- a batch that raises delivers and flushes what it queued before raising.

Joins and leaves (docs/protocol.md §13): `member_joined` and `member_left`
do not broadcast at once. A room's changes are kept, in order, in one
`Changes` and sent as one payload per member when they are released:
members that asked for `batch_joins` get one `members` payload, the others
the version 1 `joined`/`left` bodies, one each (a shared list). A member that
entered during the interval gets only the changes after its own entry (its
`welcome` listed everyone before). Changes are released, before anything
else reaches the room, by: a broadcast to the room, a personal payload for
one of its members (so a message said after a join is never seen before
it), and the end of a delivering batch. At a batch's end a room's changes
are kept only during a burst, while they are fewer than MAX_CHANGES and
younger than MAX_HOLD_SECONDS: while another batch waits for the lock, or,
once an adapter has set `hold_seconds` (the TCP server does), while they
are younger than that and the room's previous changes went out less than
that ago. A lone join in a quiet room goes out at once; in a burst the room
hears of its changes every `hold_seconds`. An adapter that sets
`hold_seconds` calls `release_due` on a timer (the TCP server's
`service_actions`, every 50 ms), so what is kept goes out even when no
member sends anything; without it, the next batch that nobody waits for
releases it. On a cluster (chatsrv.backplane) a join reaches the room only
when it comes back from the shared stream: the backplane calls `entered`
when the local member enters (its welcome lists who is there) and
`member_changed` for every join and leave it reads back, with the members
that must not get it (`Changes.hidden`: the newcomer itself, and local
newcomers whose welcome already listed it).

Delivery failures: a member whose outbox overflows (`put` returns False)
or raises (a bug) is handed to the `drop` callback the service gives
(reasons `slow` and `error`); what that queues (the room's `left`) is
delivered in the same batch. Outboxes of sessions passed to `close_after`
are closed after the delivery.

Threads and locks: every method but `batch`'s entry runs under the lock
`batch` holds; `waiting` is the only field touched outside it.

Imports: session (Session, Outbox), rooms (Room), lanchat.wire and lanchat.protocol. Never the service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from chatsrv.rooms import Room
from chatsrv.session import Session
from lanchat.protocol import BATCH_JOINS
from lanchat.wire import encode_payload

log = logging.getLogger("chatsrv")

# Received batches in a row that may leave their deliveries to the next.
# 8 filled a room of 2,000 faster still, but the larger bursts left about
# 40 % more heap per connection behind.
MAX_DEFERRED = 4

# How long a room's joins and leaves may wait to be sent as one payload (seconds, from the first change),
# and how many may wait (a newcomer's share is a slice of them, so this also bounds that work).
MAX_HOLD_SECONDS = 0.25
MAX_CHANGES = 256


class Segment:
    """Consecutive payloads for one member: its own, or a room's shared broadcast run."""

    __slots__ = ("bodies", "shared")

    def __init__(self, bodies: list[bytes], shared: bool = False) -> None:
        self.bodies = bodies
        self.shared = shared  # a Run: other members hold the same list, never append to it for one member


class Run(Segment):
    """Broadcast bodies shared by every member of a room within one batch, while `version` holds."""

    __slots__ = ("version",)

    def __init__(self, version: int, first: bytes) -> None:
        super().__init__([first], shared=True)
        self.version = version


class Changes:
    """A room's joins and leaves not yet sent, in order (owned by the registry lock).

    `bodies` are the version 1 `joined`/`left` payloads, `entries` the same
    changes encoded as items of `members.changes`; `starts` maps a member
    that entered during the interval to the index of the first change it
    has not seen (the one after its own entry); `hidden` maps a member to
    the indexes of changes it must not get (on a cluster, its own `joined`,
    which comes back from the stream after its welcome).
    """

    __slots__ = ("bodies", "entries", "hidden", "room", "since", "starts", "ts")

    def __init__(self, room: Room, since: float) -> None:
        self.room = room
        self.bodies: list[bytes] = []
        self.entries: list[bytes] = []
        self.starts: dict[Session, int] = {}
        self.hidden: dict[Session, set[int]] = {}
        self.since = since  # monotonic time of the first change
        self.ts: Any = None  # `ts` of the latest change

    def add(self, payload: dict[str, Any], body: bytes | None = None) -> bytes:
        """Record one `joined` or `left` payload (`body`: it encoded, if at hand); returns its version 1 body."""
        if body is None:
            body = encode_payload(payload)
        entry = {payload["type"]: payload["nick"]}
        entry.update((key, value) for key, value in payload.items() if key not in ("type", "nick", "room", "ts"))
        self.bodies.append(body)
        self.entries.append(encode_payload(entry))
        self.ts = payload.get("ts")
        return body

    def members_body(self, start: int, hidden: set[int] | None = None) -> bytes:
        """The `members` payload of the changes from index `start` on, but those at the `hidden` indexes."""
        entries = self.entries[start:] if not hidden else _without(self.entries, start, hidden)
        base = encode_payload({"type": "members", "room": self.room.name, "changes": [], "ts": self.ts})
        # Strings in JSON cannot hold a bare quote, so this matches only the real key.
        return base.replace(b'"changes":[]', b'"changes":[' + b",".join(entries) + b"]", 1)


class Waiting:
    """How many threads wait to start a batch; read by the batch that holds the lock.

    Counted without a lock: `list.append` and `list.pop` are atomic, and the
    holder only needs to know whether anyone is waiting.
    """

    __slots__ = ("_tokens",)

    def __init__(self) -> None:
        self._tokens: list[None] = []

    def arrive(self) -> None:
        self._tokens.append(None)

    def depart(self) -> None:
        self._tokens.pop()

    @property
    def count(self) -> int:
        return len(self._tokens)


class FanOut:
    """Queues, runs and delivery of one service's batches (see the module docstring)."""

    def __init__(
        self,
        lock: threading.RLock,
        drop: Callable[[Session, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = lock  # the registry lock: every field below is owned by it, except `waiting`
        self._drop = drop  # the service's rule for removing a member (tells its room)
        # Per member, what this batch sends it, in order.
        self._pending: dict[Session, list[Segment]] = {}
        self._runs: dict[str, Run] = {}  # the open broadcast run of each room
        self._deferred = 0  # batches in a row that left their deliveries to the next one
        self._closing: list[Session] = []
        self._changes: dict[str, Changes] = {}  # each room's joins and leaves not yet sent
        self._released: dict[str, float] = {}  # when each room's changes last went out (only recent ones kept)
        self.clock = clock  # monotonic seconds, for the hold of joins and leaves
        self.hold_seconds = 0.0  # a burst's interval; set only by an adapter that calls release_due on a timer
        self.waiting = Waiting()  # threads waiting to start a batch; written without the lock

    @contextmanager
    def batch(self, may_defer: bool = False) -> Iterator[None]:
        """Hold the lock for one batch; deliver what it queued; flush outboxes once the lock is free."""
        waiting = self.waiting
        lock = self._lock
        waiting.arrive()  # the batch holding the lock sees that another follows
        try:
            lock.acquire()
        finally:
            waiting.depart()  # also if acquiring failed: a token left behind would defer forever
        defer = False
        delivered: dict[Session, list[Segment]] = {}
        try:
            try:
                yield
            except BaseException:
                self._deferred = 0
                self._release_changes(hold=False)
                delivered = self._deliver()
                raise
            defer = may_defer and waiting.count > 0 and self._deferred < MAX_DEFERRED
            if defer:
                self._deferred += 1
            else:
                self._deferred = 0
                if self._changes:
                    self._release_changes(hold=True)
                delivered = self._deliver()
        finally:
            lock.release()
            for member in delivered:
                member.outbox.flush()

    def queue(self, session: Session, body: bytes) -> None:
        """Queue one encoded payload for one member (inside a batch)."""
        if session.room_key is not None:
            changes = self._changes.get(session.room_key)
            if changes is not None and changes.starts.get(session, -1) < len(changes.bodies):
                # The member has changes to see that came before this payload.
                self._release(changes)
            # Later broadcasts must come after this payload: start a new run for its room.
            self._runs.pop(session.room_key, None)
        segments = self._pending.get(session)
        if segments is None:
            self._pending[session] = [Segment([body])]
        elif segments[-1].shared:
            segments.append(Segment([body]))
        else:
            segments[-1].bodies.append(body)

    def broadcast(self, room: Room, body: bytes, exclude: Session | None = None) -> None:
        """Queue one encoded payload for every member of `room` but `exclude` (inside a batch)."""
        if self._changes:
            changes = self._changes.get(room.key)
            if changes is not None:
                self._release(changes)
        run = self._runs.get(room.key)
        if run is not None and exclude is None and run.version == room.version:
            run.bodies.append(body)
            return
        pending = self._pending
        if exclude is not None:
            self._runs.pop(room.key, None)
            for member in room.members.values():
                if member is not exclude:
                    _append_segment(pending, member, Segment([body]))
            return
        run = self._runs[room.key] = Run(room.version, body)
        for member in room.members.values():
            _append_segment(pending, member, run)

    def member_joined(self, room: Room, session: Session, payload: dict[str, Any]) -> bytes:
        """`session` (already a member of `room`) entered: tell the others, coalesced (see the module docstring).

        Call it before queueing the newcomer's `welcome`. Returns the version 1 body.
        """
        changes = self._changes_of(room)
        body = changes.add(payload)
        changes.starts[session] = len(changes.bodies)
        return body

    def member_left(self, room: Room, session: Session, payload: dict[str, Any]) -> bytes:
        """`session` (no longer a member of `room`) left: tell the others, coalesced. Returns the version 1 body."""
        changes = self._changes_of(room)
        changes.starts.pop(session, None)
        return changes.add(payload)

    def member_changed(
        self, room: Room, payload: dict[str, Any], body: bytes | None = None, hide_from: Iterable[Session] = ()
    ) -> bytes:
        """A `joined` or `left` in a cluster's order (chatsrv.backplane): coalesced like member_joined/member_left.

        The member it is about may be on another node; the members in `hide_from`
        (the local member whose own join this is, newcomers whose welcome listed it
        already) never get it. Returns the version 1 body.
        """
        changes = self._changes_of(room)
        index = len(changes.bodies)
        for session in hide_from:
            changes.hidden.setdefault(session, set()).add(index)
        return changes.add(payload, body)

    def entered(self, room: Room, session: Session) -> None:
        """`session` entered `room` and its welcome lists who is there: it gets only the changes recorded later.

        For a cluster, whose joins reach the fan-out through member_changed, after the welcome.
        """
        changes = self._changes.get(room.key)
        if changes is not None and changes.room is room:
            changes.starts[session] = len(changes.bodies)
            changes.hidden.pop(session, None)

    def _changes_of(self, room: Room) -> Changes:
        changes = self._changes.get(room.key)
        if changes is not None and changes.room is not room:
            self._release(changes)  # the room was emptied and made again under the same name
            changes = None
        if changes is None:
            changes = self._changes[room.key] = Changes(room, self.clock())
        return changes

    def release_due(self) -> None:
        """Send the joins and leaves that have waited long enough (an adapter calls this on a timer).

        Never waits for the lock: when a batch holds it, that batch's end releases what is due.
        """
        if not (self._changes or self._released):  # read without the lock: at worst one period late
            return
        if not self._lock.acquire(blocking=False):
            return
        self._lock.release()
        with self.batch():
            pass  # the batch's end releases what is due

    def _release_changes(self, hold: bool) -> None:
        """At the end of a delivering batch: send every room's changes, but keep a burst's while `hold`."""
        now = self.clock()
        released = self._released
        waited_for = self.waiting.count > 0
        interval = self.hold_seconds
        for changes in list(self._changes.values()):
            key = changes.room.key
            age = now - changes.since
            if (
                hold
                and age < MAX_HOLD_SECONDS
                and len(changes.bodies) < MAX_CHANGES
                and (waited_for or (age < interval and key in released and now - released[key] < interval))
            ):
                continue
            self._release(changes)
            released[key] = now
        for key, when in list(released.items()):
            if now - when >= interval and key not in self._changes:
                del released[key]  # the burst is over: the room's next change goes out at once

    def _release(self, changes: Changes) -> None:
        """Queue a room's pending changes for its members, in order before anything queued after this."""
        room = changes.room
        del self._changes[room.key]
        self._runs.pop(room.key, None)
        count = len(changes.bodies)
        starts = changes.starts
        pending = self._pending
        everything_v1 = Segment(changes.bodies, shared=True)
        everything_batched: Segment | None = None
        hidden = changes.hidden
        for member in room.members.values():
            start = starts.get(member, 0)
            if start >= count:
                continue
            batched = BATCH_JOINS in member.features
            skip = hidden.get(member) if hidden else None
            if skip:
                bodies = _without(changes.bodies, start, skip)
                if not bodies:
                    continue
                segment = Segment([changes.members_body(start, skip)] if batched else bodies)
            elif start:
                segment = Segment([changes.members_body(start)] if batched else changes.bodies[start:])
            elif batched:
                if everything_batched is None:
                    everything_batched = Segment([changes.members_body(0)], shared=True)
                segment = everything_batched
            else:
                segment = everything_v1
            _append_segment(pending, member, segment)

    def broadcast_all(self, room: Room, bodies: list[bytes]) -> None:
        """`broadcast` of each of `bodies` in turn (none excluded), in one step: a run of messages read from the
        cluster's stream (chatsrv.standins) costs one append per message, not one call."""
        if bodies:
            self.broadcast(room, bodies[0])
            self._runs[room.key].bodies.extend(bodies[1:])  # the run the first one is in, as `broadcast` would

    def close_after(self, session: Session) -> None:
        """Close `session`'s outbox once this batch's payloads are delivered to it."""
        self._closing.append(session)

    def _deliver(self) -> dict[Session, list[Segment]]:
        """Under the lock: hand everything queued to the outboxes; returns the members delivered to.

        Members whose outbox overflows leave as `slow`; a delivery that raises
        (a bug) is logged and that member leaves as `error`; everyone else
        still gets what the batch queued, including the `left` those queue.
        """
        delivered: dict[Session, list[Segment]] = {}
        while self._pending:
            pending, self._pending = self._pending, {}
            self._runs = {}
            dropped = False
            for member, segments in pending.items():
                bodies = segments[0].bodies if len(segments) == 1 else [body for seg in segments for body in seg.bodies]
                try:
                    ok = member.deliver(bodies)
                except Exception:
                    log.exception("delivering to %s failed: removed", member.describe())
                    self._drop(member, "error")
                    dropped = True
                    continue
                if not ok and not member.closed:
                    log.warning("%s is too slow to read: removed", member.describe())
                    self._drop(member, "slow")
                    dropped = True
            if dropped and self._changes:
                self._release_changes(hold=False)  # the `left` of those dropped goes out in this batch
            if delivered:
                delivered.update(pending)
            else:
                delivered = pending
        closing, self._closing = self._closing, []
        for session in closing:
            session.outbox.close()
        return delivered


def _without(items: list[bytes], start: int, hidden: set[int]) -> list[bytes]:
    return [item for index, item in enumerate(items[start:], start) if index not in hidden]


def _append_segment(pending: dict[Session, list[Segment]], member: Session, segment: Segment) -> None:
    segments = pending.get(member)
    if segments is None:
        pending[member] = [segment]
    else:
        segments.append(segment)
