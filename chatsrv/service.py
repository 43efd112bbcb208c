"""ChatService: the whole chat logic of docs/protocol.md sections 3 to 6.

Transport adapters call `connect`, `receive` (the payloads that one `recv`
or one datagram delivered), `disconnect`, `expire_idle` and `shutdown`.
Everything else happens here: validation, rooms, notices, history, `seq`,
rate limits and error counting. The clock is injected, there is no socket
and no thread, so every rule is unit-tested with a fake outbox.

Work is done per batch: one lock acquisition per `receive`, a broadcast is
encoded once, and each member gets all of a batch's payloads in a single
`Outbox.put` (docs/architecture.md, "work per recv"). Queueing, delivery,
deferral and the flush after the lock are `chatsrv.fanout`'s; this module
decides only who gets what.

Recoverable errors inside a batch become `error` payloads here (the batch
goes on); adapters handle broken frames with `reject`. Every payload is
handled in isolation: an exception while handling one (a bug) becomes an
`internal_error` for that payload and one rate-limited log line, never a
dead handler (docs/protocol.md §7.3).

Every resource a member can make the server hold has a bound here: pings
and new rooms have token buckets of their own, at most `max_rooms` rooms are
in memory (rooms nobody is in leave it after `room_idle` seconds, their
history stays in the store), and `welcome`, `users` and `rooms` are trimmed
to the member's frame or datagram (`chatsrv.replies`).

What happens in rooms (messages, joins, leaves, renames; whispers only
with `store_whispers`) is handed to a `Store` with a non-blocking `add`;
the recent history shown in `welcome` stays in memory, loaded from the
store at start, and message ids go on from the store's next id.

Teacher controls (docs/protocol.md, "Extension: operators and access")
live in access, moderation and operators; they hook in at a few marked
points and cost nothing while no operator has acted. What they decided is
kept in the store (`save_moderation`, through chatsrv.continuity) and
restored at start, with one `restarted` event per room that had members
at the last clean stop; `tick` ends timed mutes and tells the member.

Several nodes (docs/scale-out.md): with a `Cluster` attached (chatsrv.backplane,
which sits above this module and attaches itself), room broadcasts go to the
cluster instead of the fan-out and come back in the cluster's one order; nicks
are claimed cluster-wide; message ids come from the cluster; dropping a member
of another node is asked of that node; moderation changes are shared. Without
one (the default) none of this runs.

Imports: wire, messages, ratelimit, session, rooms, store, access, moderation,
fanout, operators, continuity, and the parts mixed into ChatService:
errorreplies, answers, roomcache.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from chatsrv import continuity
from chatsrv.access import Access
from chatsrv.admission import SESSION_BURST, Admission
from chatsrv.answers import Answers
from chatsrv.errorreplies import ErrorReplies, _host, nick_taken
from chatsrv.fanout import FanOut
from chatsrv.lookalike import likeness_key
from chatsrv.messages import (
    DEFAULT_ROOM,
    Bye,
    CloseRoom,
    Hello,
    Join,
    Nick,
    Ping,
    Rooms,
    Say,
    Stats,
    Whisper,
    Who,
    parse_message,
)
from chatsrv.mistakes import MistakeLog
from chatsrv.moderation import Moderation, Refusal
from chatsrv.operators import OperatorDesk
from chatsrv.ratelimit import TokenBucket
from chatsrv.roomcache import RoomCache
from chatsrv.rooms import Registry, Room, name_key
from chatsrv.session import Session
from chatsrv.store import Event, MemoryStore, Store
from lanchat.i18n import N_, LogText
from lanchat.protocol import FEATURES
from lanchat.reasons import LEFT_REASONS, say
from lanchat.wire import ProtocolError, decode_payload, encode_message, encode_payload

log = logging.getLogger("chatsrv")
audit = logging.getLogger("chatsrv.audit")

RETURN_WINDOW = 60.0  # seconds after a start in which a member of the last run counts as "back"


class Cluster(Protocol):
    """What the service asks of a backplane (chatsrv.backplane); every call is made under the registry lock."""

    def publish(self, room: Room, body: bytes, exclude: Session | None) -> bool:
        """Take a room broadcast for the cluster's order; False: deliver it locally now (no cluster link)."""

    def nick_holder(self, nick: str) -> str | None:
        """Reserve `nick` (and look-alikes) cluster-wide: None, or the nick of another node's member holding it."""

    def message_id(self) -> int | None:
        """A message id unique across nodes, or None to use the local counter (no cluster link)."""

    def forward_drop(self, session: Session, reason: str, details: dict[str, Any] | None) -> bool:
        """If `session` stands in for a member of another node, ask that node to drop it and return True."""

    def moderation_changed(self, state: str) -> None:
        """The moderation state changed here (continuity.moderation_state text): tell the other nodes."""

    def welcomed(self, session: Session, now: float) -> None:
        """`session` joined this node and has its welcome: a node cut off from the others tells it so."""


class ChatService(Admission, ErrorReplies, Answers, RoomCache):
    """Rooms and members shared by every transport of one server.

    Admitting connections (chatsrv.admission), the error replies (chatsrv.errorreplies), the answers
    that change nothing (chatsrv.answers) and which rooms are in memory (chatsrv.roomcache) are mixed
    in; their state is created here.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        server_name: str = "lanchat",
        history: int = 50,
        rate: float = 5.0,
        burst: int = 20,
        max_errors: int = 20,
        max_clients: int = 1000,
        max_per_ip: int = 16,
        max_rooms: int = 300,
        room_idle: float = 600.0,
        peer_timeout: float = 30.0,
        motd: str | None = None,
        access: Access | None = None,
        op_secret: str | None = None,
        store: Store | None = None,
        store_whispers: bool = False,
        session_rate: float = 0.0,
        session_burst: int = SESSION_BURST,
    ) -> None:
        self.clock = clock
        self.server_name = server_name
        self.rate = rate
        self.burst = burst
        self.max_errors = max_errors
        self.max_clients = max_clients
        self.max_per_ip = max_per_ip
        self.session_rate = session_rate  # new sessions per second per address after the burst (0 = off)
        self.session_burst = session_burst
        self._session_budgets: dict[str, TokenBucket] = {}  # address key -> its budget, least recently used first
        self.max_rooms = max_rooms
        self.room_idle = room_idle
        self.history = history
        self.peer_timeout = peer_timeout
        self.motd = motd
        self.access = access or Access()
        self.moderation = Moderation()
        self.registry = Registry(history_size=history)
        self.sessions: set[Session] = set()
        self._per_host: collections.Counter[Any] = collections.Counter()  # open sessions per address
        self.store: Store = store if store is not None else MemoryStore()
        self.store_whispers = store_whispers  # whispers are private: kept only if the teacher asks
        self._ids = itertools.count(self.store.next_message_id())
        self._stored_rooms: dict[str, None] = {}  # name_key of rooms with stored history, oldest first
        self._load_recent_rooms(self.store.recent_messages(history), self.clock())
        self.fanout = FanOut(self.registry.lock, self.drop)
        self._handlers: dict[type, Callable[[Session, Any, float], None]] = {
            Hello: self._hello, Say: self._say, Whisper: self._whisper, Nick: self._nick, Join: self._join,
            Who: self._who, Rooms: self._rooms, Ping: self._ping, Stats: self._stats, Bye: self._bye,
        }
        self.operators = OperatorDesk(self, op_secret)
        self._ping_budgets: dict[Session, TokenBucket] = {}  # members that pinged; gone with the session
        self._room_budgets: dict[Session, TokenBucket] = {}  # members that opened a room; gone with the session
        self._handlers[CloseRoom] = self._close_room
        self._traceback_logged: dict[Any, float] = {}  # address -> when its last traceback was logged
        self._tracebacks_quiet: dict[Any, int] = {}  # address -> tracebacks not logged since
        self._error_lines = MistakeLog(clock=clock)  # protocol errors on the console, a few per address
        self._refusal_lines = MistakeLog(clock=clock)  # refused connections on the console, a few per address
        self._handlers.update(self.operators.handlers())
        self._returning: dict[str, str] = {}  # nick key -> room, of members present at the last clean stop
        self._started = self.clock()
        self._restore(self._started)
        self.cluster: Cluster | None = None  # set by chatsrv.backplane when the node joins a cluster

    def _restore(self, now: float) -> None:
        """Bring back the teacher's decisions, and record the restart once per room."""
        state = self.store.load_state()
        continuity.restore_moderation(
            state.get(continuity.MODERATION), self.moderation, self.access, self.registry, now
        )
        stopped_at, self._returning = continuity.returning_members(state.get(continuity.STOPPED))
        if stopped_at is None:
            return
        self.store.save_state(continuity.STOPPED, "")  # a later crash must not replay this stop
        counts = collections.Counter(self._returning.values())
        for room, count in counts.items():
            text = f"server restarted after {max(0.0, now - stopped_at):.0f} s"
            self.store.add(Event("restarted", now, "", room, text, reason=f"{count} member(s) were here"))

    # --- adapter API ------------------------------------------------------

    def receive(self, session: Session, bodies: Iterable[bytes]) -> None:
        """Handle the payloads one read delivered, in order, under one lock.

        Only TCP batches may be deferred (`chatsrv.fanout`): the UDP adapter's
        single thread finds peers by address, and a peer's `bye` must take
        effect (the address forgotten) before its next datagram is read.
        """
        with self.fanout.batch(may_defer=session.transport == "tcp"):
            now = self.clock()
            session.last_seen = now
            for body in bodies:
                if session.closed:
                    break
                session.received += 1
                try:
                    self._handle(session, body, now)
                except ProtocolError as error:
                    self._fail(session, error)
                except Exception:  # noqa: BLE001 - a bug: contained to this one payload (docs/protocol.md §7.3)
                    self._internal_error(session, now)
                else:
                    session.errors_in_a_row = 0

    def reject(self, session: Session, error: ProtocolError, logged: bool = False) -> None:
        """Report an error found by the adapter (e.g. a broken frame) to the peer.

        `logged`: the adapter already told the console (or chose to leave it
        out, rate-limited): the service's own line is then at debug level.
        """
        with self.fanout.batch():
            self._fail(session, error, logged)

    def disconnect(self, session: Session, reason: str = "lost") -> None:
        """The transport is gone (or must go): remove the member, tell the room."""
        with self.fanout.batch():
            self.drop(session, reason)

    def expire_idle(self, now: float | None = None) -> list[Session]:
        """Drop UDP peers silent for `peer_timeout` (docs/protocol.md §2); returns them."""
        with self.fanout.batch():
            now = self.clock() if now is None else now
            expired = [
                session
                for session in self.sessions
                if session.transport == "udp" and now - session.last_seen >= self.peer_timeout
            ]
            for session in expired:
                self.drop(session, "timeout")
            self._forget_idle_rooms(now)
            return expired

    def tick(self, now: float | None = None) -> None:
        """Time-driven rules (called about once a second): a timed mute that ran out ends, and its member is told."""
        if not self.moderation.mutes:
            return  # read without the lock: a stale answer only moves the end to the next tick
        with self.fanout.batch():
            now = self.clock() if now is None else now
            ended = self.moderation.end_mutes(now)
            for key, mute in ended:
                member = self.registry.find(key)
                if member is None or member.nick is None or name_key(member.nick) != key:
                    continue
                if member not in self.sessions:
                    continue  # a member of another node (chatsrv.backplane): its own node tells it
                log.info("mute of %s by %s ended", member.describe(), mute.by)
                notice = {"type": "notice", **say("mute_ended").fields(), "event": "unmute", "nick": member.nick}
                notice["expired"] = True
                notice["ts"] = now
                self.fanout.queue(member, encode_payload(notice))
                room = self.registry.room_of(member)
                # The teacher is told too: the operators in that room, and the one who muted, wherever they are.
                told = {s for s in (room.members.values() if room else ()) if self.moderation.is_operator(s)}
                muter = self.registry.find(mute.by)
                if muter is not None and self.moderation.is_operator(muter):
                    told.add(muter)
                if told:
                    notice = {**notice, **say("mute_ended_of", nick=member.nick).fields()}
                    for operator in told - {member}:
                        self.fanout.queue(operator, encode_payload(notice))
                self.store.add(
                    Event("unmute", now, "", room.name if room else None, to=member.nick, reason="the mute ran out")
                )
            if ended:
                self.save_moderation()

    def save_moderation(self) -> None:
        """Keep what operators decided (mutes, locks, slow mode, topics, bans) for the next start."""
        state = continuity.moderation_state(self.moderation, self.access, self.registry)
        self.store.save_state(continuity.MODERATION, state)
        if self.cluster is not None:
            self.cluster.moderation_changed(state)

    def shutdown(self, text: str | None = None) -> None:
        """Tell everyone (a notice, then `left` reason shutdown) and close every outbox.

        The store gets who was where (not a leave per member), so the next
        start records one `restarted` event per room.
        """
        with self.fanout.batch():
            now = self.clock()
            words = say("shutting_down").fields() if text is None else {"text": text}
            notice = encode_payload({"type": "notice", **words, "ts": now})
            closed = len(self.sessions)
            self.store.save_state(continuity.STOPPED, continuity.members_state(self.registry, now))
            for session in list(self.sessions):
                if session.joined:
                    room = self.registry.room_of(session)
                    assert session.nick is not None
                    self.fanout.queue(session, notice)
                    self.fanout.queue(
                        session,
                        encode_payload(
                            {
                                "type": "left",
                                "nick": session.nick,
                                "room": room.name if room else None,
                                "ts": now,
                                "reason": "shutdown",
                            }
                        ),
                    )
                self._close(session)
            log.info("shutdown: %d sessions closed", closed)

    # --- what operators and handlers use ---------------------------------

    def queue(self, session: Session, body: bytes) -> None:
        """Queue an encoded payload for one member (inside a batch)."""
        self.fanout.queue(session, body)

    def member_joined(self, room: Room, session: Session, payload: dict[str, Any]) -> None:
        """Tell `room` that `session` entered: coalesced by the fan-out, or in the cluster's one order.

        Call it before queueing the newcomer's welcome. On a cluster the join
        goes through the shared stream like every room event (so all nodes see
        one order and learn the member), and comes back to be coalesced.
        """
        if self.cluster is None or not self.cluster.publish(room, encode_payload(payload), session):
            self.fanout.member_joined(room, session, payload)

    def member_left(self, room: Room, session: Session, payload: dict[str, Any]) -> bytes:
        """Tell `room` that `session` left (see member_joined); returns the encoded `left`."""
        body = encode_payload(payload)
        if self.cluster is None or not self.cluster.publish(room, body, session):
            return self.fanout.member_left(room, session, payload)
        return body

    def broadcast(self, room: Room, payload: dict[str, Any] | bytes, exclude: Session | None = None) -> bytes:
        """Encode once (unless given encoded) and queue for every member of `room` but `exclude`; returns the body."""
        body = payload if isinstance(payload, bytes) else encode_payload(payload)
        if self.cluster is None or not self.cluster.publish(room, body, exclude):
            self.fanout.broadcast(room, body, exclude)
        return body

    def _close(self, session: Session) -> None:
        if not session.closed:
            session.closed = True
            self.sessions.discard(session)
            self._ping_budgets.pop(session, None)
            self._room_budgets.pop(session, None)
            host = _host(session)
            self._per_host[host] -= 1
            if self._per_host[host] <= 0:
                del self._per_host[host]
            self.fanout.close_after(session)

    def drop(self, session: Session, reason: str, details: dict[str, Any] | None = None) -> None:
        """Remove a session; a joined member's room sees `left` with `reason`.

        With `details` (who kicked, why) the `left` carries them, and the
        member itself gets it too, before its connection closes.
        """
        if session.closed:
            return
        if self.cluster is not None and self.cluster.forward_drop(session, reason, details):
            return  # a member of another node: that node removes it and tells the room
        was_joined = session.joined
        self._close(session)
        self.moderation.forget(session)
        if not was_joined:
            return
        room = self.registry.remove(session, self.clock())
        shown = LogText(LEFT_REASONS[reason]) if reason in LEFT_REASONS else reason
        log.info("leave: %s from %s (%s)", session.describe(), room.name if room else "-", shown)
        if room is not None:
            assert session.nick is not None
            now = self.clock()
            payload = {"type": "left", "nick": session.nick, "room": room.name, "ts": now, "reason": reason}
            if details:
                payload.update(details)
            body = self.member_left(room, session, payload)
            if details:
                self.fanout.queue(session, body)
            self.store.add(Event("left", now, session.nick, room.name, transport=session.transport, reason=reason))

    # --- messages ---------------------------------------------------------

    def _handle(self, session: Session, body: bytes, now: float) -> None:
        payload = decode_payload(body)
        client_seq = payload.get("seq")
        if type(client_seq) is int and client_seq > 0:
            session.client_seq.add(client_seq)
        message = parse_message(payload)
        if not session.joined and not isinstance(message, Hello):
            if isinstance(message, Bye) and session.transport == "tcp":
                # docs/protocol.md §4: over TCP, bye before hello also closes.
                raise ProtocolError("not_joined", say("hello_first_closing"), fatal=True)
            raise ProtocolError("not_joined", say("hello_first"))
        if session.joined and not isinstance(message, (Ping, Bye)) and not session.bucket.allow(now):
            raise ProtocolError("rate_limited", say("too_fast"))
        self._handlers[type(message)](session, message, now)

    def _hello(self, session: Session, hello: Hello, now: float) -> None:
        if session.joined:
            assert session.nick is not None
            if session.transport == "udp" and name_key(hello.nick) == name_key(session.nick):
                # docs/protocol.md §2: the first welcome may have been lost.
                room = self.registry.room_of(session)
                assert room is not None
                self._welcome(session, room, now, first=True)
                return
            raise ProtocolError("bad_request", say("already_joined"))
        self.access.check_password(session.address, hello.password, now)
        held = self.registry.find(hello.nick)
        if (taken := (held.nick or "") if held is not None else self._holder(hello.nick)) is not None:
            raise nick_taken(hello.nick, taken)
        locked_out = self._locked_out_of(hello.room)
        room = self._open_room(session, DEFAULT_ROOM if locked_out else hello.room, now)
        self.registry.add(session, hello.nick, room)
        session.features = hello.features & FEATURES  # docs/protocol.md §13: unknown names are ignored
        log.info("join: %s in %s", session.describe(), room.name)
        # The room hears of it coalesced with other joins (chatsrv.fanout); the welcome follows.
        self.member_joined(room, session, {"type": "joined", "nick": hello.nick, "room": room.name, "ts": now})
        self._welcome(session, room, now, first=True)
        if locked_out:
            told = say("locked_out", by=self.moderation.lock_all or "", room=room.name).fields()
            self.fanout.queue(session, encode_payload({"type": "notice", **told, "room": room.name, "ts": now}))
        if self.cluster is not None:
            self.cluster.welcomed(session, now)
        # A member of the last run coming back soon after a restart is part of the one `restarted` event.
        back = self._returning.pop(name_key(hello.nick), None) is not None and now - self._started <= RETURN_WINDOW
        self.store.add(
            Event("joined", now, hello.nick, room.name, transport=session.transport, reason="back" if back else None)
        )

    def _locked_out_of(self, room_name: str) -> bool:
        """During `/lock all`, a newcomer may enter only a room with members (a student who lost the
        connection comes back to the class) or the default room: no new hide-outs."""
        if self.moderation.lock_all is None or name_key(room_name) == name_key(DEFAULT_ROOM):
            return False
        room = self.registry.room(room_name)
        return room is None or not room.members

    def _say(self, session: Session, say: Say, now: float) -> None:
        room = self.registry.room_of(session)
        assert room is not None and session.nick is not None
        if self.moderation.active:  # someone is muted, or a room is locked or slow
            self.moderation.check_say(session, room.key, now)
        message_id = self._message_id()
        # docs/protocol.md §9.4: an operator's messages say so, a mark no nick can imitate.
        operator = self.moderation.is_operator(session)
        body = encode_message(message_id, room.name, session.nick, say.text, now, say.action, operator)
        room.history.append(self.broadcast(room, body))
        event = Event(
            "message", now, session.nick, room.name, say.text, message_id, say.action, session.transport,
            room_key=room.key, operator=operator,
        )
        self.store.add(event)  # a queue append: the broadcast never waits for the disk

    def _holder(self, nick: str) -> str | None:
        """None when `nick` is free cluster-wide (always, on one node); else the nick in use it looks like."""
        return None if self.cluster is None else self.cluster.nick_holder(nick)

    def _message_id(self) -> int:
        if self.cluster is not None:
            shared = self.cluster.message_id()
            if shared is not None:
                return shared
        return next(self._ids)

    def _whisper(self, session: Session, whisper: Whisper, now: float) -> None:
        target = self.registry.find(whisper.to)
        if target is None:
            raise ProtocolError("no_such_user", say("no_such_user", nick=whisper.to))
        if self.moderation.active:
            self.moderation.check_whisper(session, target, now)
        body = encode_payload(
            {"type": "whisper", "from": session.nick, "to": target.nick, "text": whisper.text, "ts": now}
        )
        self.fanout.queue(target, body)
        if target is not session:
            self.fanout.queue(session, body)
        if self.store_whispers:
            assert session.nick is not None and target.nick is not None
            self.store.add(
                Event("whisper", now, session.nick, text=whisper.text, transport=session.transport, to=target.nick)
            )

    def _nick(self, session: Session, nick: Nick, now: float) -> None:
        old = session.nick
        assert old is not None
        if nick.nick == old:
            return
        holder = self.registry.find(nick.nick)
        if holder is not None and holder is not session:
            raise nick_taken(nick.nick, holder.nick or "")
        if self.moderation.active:
            self.moderation.check_rename(session, now)
        if holder is None and (taken := self._holder(nick.nick)) is not None:
            raise nick_taken(nick.nick, taken)
        self.registry.rename(session, nick.nick)
        room = self.registry.room_of(session)
        log.info("rename: %s -> %s", old, nick.nick)
        if room is not None:
            self.broadcast(room, {"type": "renamed", "old": old, "new": nick.nick, "room": room.name, "ts": now})
            self.store.add(Event("renamed", now, old, room.name, transport=session.transport, new=nick.nick))

    def _join(self, session: Session, join: Join, now: float, by_operator: bool = False) -> None:
        """`session` moves to `join.room`; `by_operator`: an operator moves it (close_room), past any lock."""
        current = self.registry.room_of(session)
        if current is not None and current.key == name_key(join.room):
            self._welcome(session, current, now)
            return
        if self.moderation.active and not by_operator:
            self.moderation.check_join(session, join.room)
        room = self._open_room(session, join.room, now)  # before leaving: a refused join leaves nothing changed
        if room is current:  # a look-alike of the current room's name
            self._welcome(session, room, now)
            return
        if current is not None:
            self.registry.leave_room(session, now)
            # `to` says where the member went (docs/protocol.md §8).
            left = {"type": "left", "nick": session.nick, "room": current.name, "ts": now, "reason": "moved"}
            left["to"] = room.name
            self.member_left(current, session, left)
            assert session.nick is not None
            moved = Event("left", now, session.nick, current.name, transport=session.transport, reason="moved")
            self.store.add(moved._replace(to=room.name))
        self.registry.enter(session, room)
        joined: dict[str, Any] = {"type": "joined", "nick": session.nick, "room": room.name, "ts": now}
        if self.moderation.is_operator(session):
            joined["operator"] = True  # so clients can mark the operator who moved in
        self.member_joined(room, session, joined)
        self._welcome(session, room, now)
        assert session.nick is not None
        self.store.add(Event("joined", now, session.nick, room.name, transport=session.transport))

    def _bye(self, session: Session, message: Bye, now: float) -> None:
        self.drop(session, "quit")

    def _close_room(self, session: Session, message: CloseRoom, now: float) -> None:
        """An operator closes a room: its members move to the default room, its history is deleted."""
        if not self.moderation.is_operator(session):
            audit.info("audit: refused close_room by %s: not an operator", session.describe())
            raise Refusal(
                "not_allowed", say("op_required", action="close_room"),
                LogText(N_("%s tried to close a room but is not an operator"), session.nick), audited=True,
            )
        lobby = self._open_room(session, DEFAULT_ROOM, now)
        room = self.registry.room(message.room)
        if room is lobby:
            raise ProtocolError("not_allowed", say("lobby_not_closable", room=lobby.name))
        name = room.name if room is not None else message.room
        moved = 0
        if room is not None:
            said = say("room_closed", by=session.nick or "", room=room.name, lobby=lobby.name)
            notice = {"type": "notice", **said.fields(), "event": "close_room", "room": room.name, "by": session.nick}
            body = encode_payload({**notice, "ts": now})
            if self.cluster is not None:  # the other nodes' members hear it from the stream, then move; ours
                self.cluster.publish(room, body, None)  # now (read back, after the moves below, it finds nobody)
            self.fanout.broadcast(room, body)
            for member in list(room.members.values()):
                self._join(member, Join(lobby.name), now, by_operator=True)  # even during /lock all
                moved += 1
            self.registry.discard(room)
        # Every stored spelling that looks like it goes (`ｍａｔｈｓ` is `maths`): the store files by case-fold.
        alike = likeness_key(name)
        for key in [key for key in self._stored_rooms if likeness_key(key) == alike]:
            del self._stored_rooms[key]
        self.store.forget_room(name, likeness_key)
        audit.info("audit: close_room by %s -> room %s (%d member(s) moved)", session.describe(), name, moved)
        done = say("you_closed", room=name).fields()
        self.fanout.queue(
            session, encode_payload({"type": "notice", **done, "event": "close_room", "room": name, "ts": now})
        )
