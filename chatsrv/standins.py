"""Other nodes' members on this node: their stand-in sessions and what the other nodes' events do here.

Owns `StandInOutbox` (a stand-in's outbox: a personal payload for a member of another node is forwarded to
that node's inbox) and `StandIns`, the part of `chatsrv.backplane.Backplane` that applies what the stream
brings from other nodes: a room event updates the stand-ins and reaches the local members of the room, an
inbox entry reaches one local member, another node's moderation state becomes ours, and a node that is
gone has its members leave; an entry or one event of a pack that cannot be applied is skipped alone, with a
log line (`_skipped`: a few per 10 s, however many come). A mixin: `Backplane` creates the state it uses
(annotated below) in its `__init__`, and calls these under a batch of the service's fanout (the registry
lock); nothing here is used on its own.

Imports: session, mistakes, ratelimit, lookalike, rooms, continuity, service, streampack; never `redis`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatsrv import continuity
from chatsrv.lookalike import likeness_key
from chatsrv.mistakes import MistakeLog, one_line
from chatsrv.ratelimit import TokenBucket
from chatsrv.rooms import Room
from chatsrv.service import ChatService
from chatsrv.session import Session
from chatsrv.streampack import runs_of, serials
from lanchat.i18n import N_, LogText

log = logging.getLogger("chatsrv")

CHANGES = ("joined", "left")  # room events the fan-out coalesces (docs/protocol.md §13)
MESSAGE = b'{"type":"message"'  # how every encoded `message` starts (as chatsrv.backplane.MESSAGE_PREFIX)
# What applying a bad entry or event raises (a UnicodeDecodeError is a ValueError); anything else is a bug here.
APPLY_ERRORS = (ValueError, KeyError, TypeError, AttributeError, RecursionError)  # RecursionError: JSON nested too deep
PACE_ENTRIES = 1  # stream entries (each a pack: chatsrv.streampack) applied in one batch, before a pause


class StandInOutbox:
    """The outbox of a member of another node: a personal payload is forwarded to that node's inbox."""

    def __init__(self, backplane: StandIns, node: str) -> None:
        self.backplane = backplane
        self.node = node
        self.session: Session | None = None

    def put(self, bodies: list[bytes], first_seq: int) -> bool:
        if self.session is not None and self.session.nick is not None:
            for body in bodies:
                self.backplane.forward(self.node, self.session.nick, body)
        return True

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


class StandIns:
    """Other nodes' members and events applied to the local registry; mixed into Backplane."""

    service: ChatService
    _stand_ins: dict[str, dict[str, Session]]  # node -> look-alike key -> stand-in
    _entering: dict[Session, int]  # local members whose `joined` is not read back yet -> its serial
    _pending: dict[int, tuple[Room, bytes, Session | None]]  # published, not read back yet (chatsrv.backplane)
    heartbeat: float
    _bad_entries: MistakeLog  # entries that could not be applied: a few log lines per 10 s
    # Set by the TCP server's owner (chatsrv.app) to its backpressure's wait: pauses while a member that
    # still reads lags. None: never pause.
    pause: Callable[[], None] | None = None
    clock: Callable[[], float] = staticmethod(time.monotonic)

    if TYPE_CHECKING:  # Backplane's own methods

        def forward(self, node: str, nick: str, body: bytes) -> None: ...

        def _apply(self, reply: list[Any]) -> None: ...

        def _other_node_event(self, node: str, room_name: str, body: bytes, payload: dict[str, Any], transport: str,
                              host: str, now: float) -> None: ...

    def _apply_paced(self, reply: list[Any]) -> None:
        """Apply an XREAD reply an entry at a time, waiting between them while a member still reading lags.

        Nothing paces what other nodes send (the TCP backpressure pauses only this node's senders), so a
        reply may hold a flood; applied at once it would overflow the outboxes of members that read well.
        The pauses last `heartbeat` seconds per reply at most (the reader thread also renews this node's
        keys); what is left then is read again from the stream next time (`_apply` advances the read
        positions entry by entry). Without a pause, too, one batch holds one entry, so the bytes a batch
        makes for each member stay small (batches of thousands of events made buffers that the allocator
        handed back to the system and took again, batch after batch: 8 times the page faults of one node).
        """
        pause = self.pause
        deadline = self.clock() + self.heartbeat
        for stream, entries in reply:
            for start in range(0, len(entries), PACE_ENTRIES):
                self._apply([(stream, entries[start:start + PACE_ENTRIES])])
                if pause is not None:
                    pause()
                    if self.clock() >= deadline:
                        return

    def _skipped(self, fields: dict[bytes, bytes], what: str, error: Exception) -> None:
        """An entry or event that could not be applied: one log line, at most a few per 10 s for the whole
        stream (a broken or hostile node may write thousands; the node each line names is a hint, not a key
        to count by, as a hostile writer could name a new node in every entry)."""
        left_out = self._bad_entries.report("stream")
        if left_out is None:
            return
        node = one_line(fields.get(b"n", b"?").decode(errors="replace"))[:40]
        more = LogText(N_(" (%d more since the last line)"), left_out) if left_out else ""
        log.warning(
            "backplane: %s from node %s could not be applied (%s: %s): skipped%s",
            LogText(what),  # marked N_ by the caller
            node,
            type(error).__name__,
            one_line(str(error))[:200],
            more,
        )
        log.debug("backplane: the entry that could not be applied", exc_info=error)

    def _room_event(
        self, node: str, room_name: str, body: bytes, payload: dict[str, Any], transport: str, host: str, now: float
    ) -> None:
        """A room event of another node: update its stand-ins, deliver to the local members of the room."""
        registry = self.service.registry
        room = registry.ensure_room(room_name, now)
        kind = payload.get("type")
        known = self._stand_ins.setdefault(node, {})
        if kind == "joined":
            nick = str(payload["nick"])
            stand_in = known.get(likeness_key(nick))
            if stand_in is None:
                if self._make_way(node, nick, None, now):
                    stand_in = self._new_stand_in(node, transport, host, now)
                    known[likeness_key(nick)] = stand_in
                    registry.add_remote(stand_in, nick, room)
            elif stand_in.room_key == room.key:
                return  # already known here (a re-join we had read from the presence hash)
            else:
                registry.enter_remote(stand_in, room)
            if stand_in is not None and payload.get("operator"):
                self.service.moderation.grant(stand_in)  # an operator there is one here (chatsrv.nodesync)
        elif kind == "left":
            stand_in = known.get(likeness_key(str(payload["nick"])))
            if stand_in is None:
                return  # nobody here saw it join (a stand-in this node never had): no member is told it left
            if payload.get("reason") == "moved":
                registry.leave_remote(stand_in, now)
            else:
                del known[likeness_key(str(payload["nick"]))]
                registry.remove_remote(stand_in, now)
                self.service.moderation.forget(stand_in)
        elif kind == "renamed":
            old_key, new = likeness_key(str(payload["old"])), str(payload["new"])
            stand_in = known.get(old_key)
            if stand_in is not None:
                if not self._make_way(node, new, stand_in, now):
                    self._stand_in_lost(node, old_key, now)  # it cannot be listed under a member's nick here
                    return
                del known[old_key]
                registry.rename_remote(stand_in, new)
                known[likeness_key(new)] = stand_in
        elif kind == "message":
            room.history.append(body)
        if kind in CHANGES:
            self.service.fanout.member_changed(room, payload, body)  # coalesced, in order with messages
        else:
            self.service.fanout.broadcast(room, body)

    def _make_way(self, node: str, nick: str, stand_in: Session | None, now: float) -> bool:
        """Whether a member of `node` (`stand_in`, None for a newcomer) may be listed here as `nick`.

        Nicks are unique across nodes by their look-alike key, so a look-alike held here by another node's
        stand-in is stale: Redis let `node` take the nick because that member's node stopped answering, or
        the member left and its `left` was missed (a node we have not yet noticed is gone, a race at
        re-linking). That stand-in leaves (reason `lost`) before the newcomer is listed: one member per key
        (chatsrv.rooms). A look-alike held by a member of this node stays; the other node's is not listed.
        """
        holder = self.service.registry.find(nick)
        if holder is None or holder is stand_in:
            return True
        outbox = holder.outbox
        if not isinstance(outbox, StandInOutbox) or holder.nick is None:
            log.warning("backplane: %s is on this node and on node %s", nick, node)
            return False
        gone = holder.nick
        log.warning("backplane: %s of node %s holds the nick now: %s of node %s is gone", nick, node, gone, outbox.node)
        self._stand_in_lost(outbox.node, likeness_key(gone), now)
        return True

    def _new_stand_in(self, node: str, transport: str, host: str, now: float) -> Session:
        outbox = StandInOutbox(self, node)
        stand_in = Session(outbox, (host, 0), transport, 0, TokenBucket(0, 0, now), now)
        outbox.session = stand_in
        return stand_in

    def _apply_inbox(self, fields: dict[bytes, bytes]) -> None:
        kind = fields[b"k"]
        member = self.service.registry.find(fields[b"nick"].decode())
        if member is None or isinstance(member.outbox, StandInOutbox):
            return  # gone meanwhile
        if kind == b"put":
            self.service.fanout.queue(member, fields[b"b"])
        elif kind == b"drop":
            details = json.loads(fields[b"details"]) or None
            self.service.drop(member, fields[b"reason"].decode(), details)

    def _apply_moderation(self, state: str, now: float) -> None:
        """Another node's operator decided: take its whole moderation state as ours."""
        service = self.service
        moderation = service.moderation
        moderation.mutes.clear()
        moderation.locked.clear()
        moderation.slow.clear()
        service.access.banned.clear()
        moderation.set_lock_all(None)  # also recomputes `active`
        for room in service.registry.rooms.values():
            room.topic = None  # the state lists every topic there is: one cleared there is cleared here
        continuity.restore_moderation(state, moderation, service.access, service.registry, now)
        service.store.save_state(continuity.MODERATION, state)

    def _forget_node(self, node: str, now: float) -> int:
        """Under a batch: every member of `node` leaves the local lists, and their rooms see `left` (lost)."""
        keys = list(self._stand_ins.get(node, {}))
        for key in keys:
            self._stand_in_lost(node, key, now)
        self._stand_ins.pop(node, None)
        return len(keys)

    def _stand_in_lost(self, node: str, key: str, now: float) -> None:
        """Under a batch: a member of `node` we missed leaving leaves here (reason `lost`).

        Its `left` takes the path of every join and leave (coalesced for `batch_joins` members, in order
        with the rest: chatsrv.fanout), never a broadcast of its own.
        """
        stand_in = self._stand_ins[node].pop(key)
        room = self.service.registry.room_of(stand_in)
        self.service.registry.remove_remote(stand_in, now)
        self.service.moderation.forget(stand_in)
        if room is not None and stand_in.nick is not None:
            left = {"type": "left", "nick": stand_in.nick, "room": room.name, "ts": now, "reason": "lost"}
            self.service.fanout.member_changed(room, left)

    def _own_pack(self, fields: dict[bytes, bytes]) -> None:
        """Under a batch: a pack of this node back from the stream. Its events are delivered from what `publish`
        kept (only the serials are read); consecutive messages to one room as one run (`FanOut.broadcast_all`),
        the other events one by one, each failing alone."""
        pending = self._pending
        room: Room | None = None
        messages: list[bytes] = []
        for serial in serials(fields[b"p"]):
            item = pending.pop(serial, None)
            if item is None:
                continue
            if item[2] is None and item[1].startswith(MESSAGE):  # excludes nobody: the room's run takes it
                if item[0] is not room:
                    if room is not None:
                        self.service.fanout.broadcast_all(room, messages)
                    room, messages = item[0], []
                messages.append(item[1])
                continue
            if room is not None:
                self.service.fanout.broadcast_all(room, messages)
                room, messages = None, []
            try:
                self._deliver_own(serial, *item)
            except APPLY_ERRORS as error:
                self._skipped(fields, N_("an event"), error)
        if room is not None:
            self.service.fanout.broadcast_all(room, messages)

    def _other_pack(self, node: str, fields: dict[bytes, bytes], now: float) -> None:
        """Under a batch: a pack of another node. Consecutive messages to one room go to its history and its
        members as one run, without being decoded; every other event is applied alone (and fails alone)."""
        _, runs, places = runs_of(fields[b"p"])
        position = 0
        for room_name, bodies in runs:
            messages: list[bytes] = []
            for body in bodies:
                if body.startswith(MESSAGE):
                    messages.append(body)
                else:
                    self._messages_in(fields, room_name, messages, now)
                    messages = []
                    transport, host = places.get(position, ("tcp", ""))
                    try:
                        self._other_node_event(node, room_name, body, json.loads(body), transport, host, now)
                    except APPLY_ERRORS as error:
                        self._skipped(fields, N_("an event"), error)
                position += 1
            self._messages_in(fields, room_name, messages, now)

    def _messages_in(self, fields: dict[bytes, bytes], room_name: str, messages: list[bytes], now: float) -> None:
        """Messages of another node to one room: its history keeps them, its members get them (one run)."""
        if messages:
            try:
                room = self.service.registry.ensure_room(room_name, now)
                room.history.extend(messages)
                self.service.fanout.broadcast_all(room, messages)
            except APPLY_ERRORS as error:
                self._skipped(fields, N_("an event"), error)

    def _deliver_pending(self) -> None:
        """Under a batch: this node's events published but not read back (the link is lost, or they were
        trimmed) are delivered now, in order, as if read back; no newcomer is then waiting for its `joined`."""
        pending, self._pending = self._pending, {}
        for serial, (room, body, exclude) in pending.items():  # serials in publishing order
            self._deliver_own(serial, room, body, exclude)
        self._entering.clear()

    def _deliver_own(self, serial: int, room: Room, body: bytes, exclude: Session | None) -> None:
        """One of this node's room events, back from the stream: joins and leaves coalesced (chatsrv.fanout).

        A change is hidden from the member it is about, and from local members whose welcome came after
        it was published (their welcome already listed the room as it left).
        """
        if not body.startswith(MESSAGE):
            payload = json.loads(body)
            if payload.get("type") in CHANGES:
                hide = [] if exclude is None else [exclude]
                if self._entering:
                    if exclude is not None and self._entering.get(exclude) == serial:
                        del self._entering[exclude]
                    hide += [s for s, entry in self._entering.items() if entry > serial and s.room_key == room.key]
                self.service.fanout.member_changed(room, payload, body, hide)
                return
        self.service.fanout.broadcast(room, body, exclude)
