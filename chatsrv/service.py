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
goes on); adapters handle broken frames with `reject`.

What happens in rooms (messages, joins, leaves, renames; whispers only
with `store_whispers`) is handed to a `Store` with a non-blocking `add`;
the recent history shown in `welcome` stays in memory, loaded from the
store at start, and message ids go on from the store's next id.

Teacher controls (docs/protocol.md, "Extension: operators and access")
live in access, moderation and operators; they hook in at a few marked
points and cost nothing while no operator has acted.

Imports: wire, messages, ratelimit, session, rooms, store, access,
moderation, fanout, operators.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from chatsrv import __version__
from chatsrv.access import Access
from chatsrv.fanout import FanOut
from chatsrv.messages import (
    Bye,
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
from chatsrv.moderation import Moderation
from chatsrv.operators import OperatorDesk
from chatsrv.ratelimit import TokenBucket
from chatsrv.rooms import Registry, Room, name_key
from chatsrv.session import Outbox, Session
from chatsrv.store import Event, MemoryStore, Store
from lanchat.protocol import FEATURES
from lanchat.wire import ProtocolError, decode_payload, encode_message, encode_payload

log = logging.getLogger("chatsrv")

SEQ_ROOM = 24  # bytes kept free in a welcome for the spliced `,"seq":N`


class ChatService:
    """Rooms and members shared by every transport of one server."""

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
        peer_timeout: float = 30.0,
        motd: str | None = None,
        access: Access | None = None,
        op_secret: str | None = None,
        store: Store | None = None,
        store_whispers: bool = False,
    ) -> None:
        self.clock = clock
        self.server_name = server_name
        self.rate = rate
        self.burst = burst
        self.max_errors = max_errors
        self.max_clients = max_clients
        self.max_per_ip = max_per_ip
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
        for event in self.store.recent_messages(history):
            # The rooms that had history exist again after a restart, with it.
            assert event.room is not None
            self.registry.ensure_room(event.room).history.append(encode_payload(event.payload()))
        self.fanout = FanOut(self.registry.lock, self.drop)
        self._handlers: dict[type, Callable[[Session, Any, float], None]] = {
            Hello: self._hello,
            Say: self._say,
            Whisper: self._whisper,
            Nick: self._nick,
            Join: self._join,
            Who: self._who,
            Rooms: self._rooms,
            Ping: self._ping,
            Stats: self._stats,
            Bye: self._bye,
        }
        self.operators = OperatorDesk(self, op_secret)
        self._handlers.update(self.operators.handlers())

    # --- adapter API ------------------------------------------------------

    def connect(self, outbox: Outbox, address: Any, transport: str, max_frame: int) -> Session:
        """Admit a new connection or peer; raises `not_allowed` for a denied or
        banned address (checked first), `server_full` when at a limit."""
        with self.registry.lock:
            self.access.check_address(address)
            if self.max_clients and len(self.sessions) >= self.max_clients:
                raise ProtocolError("server_full", f"the server is full ({self.max_clients} users)", fatal=True)
            host = address[0] if isinstance(address, tuple) else address
            if self.max_per_ip and self._per_host[host] >= self.max_per_ip:
                raise ProtocolError(
                    "server_full", f"too many connections from {host} (limit {self.max_per_ip})", fatal=True
                )
            now = self.clock()
            session = Session(outbox, address, transport, max_frame, TokenBucket(self.rate, self.burst, now), now)
            self.sessions.add(session)
            self._per_host[host] += 1
            return session

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
                else:
                    session.errors_in_a_row = 0

    def reject(self, session: Session, error: ProtocolError) -> None:
        """Report an error found by the adapter (e.g. a broken frame) to the peer."""
        with self.fanout.batch():
            self._fail(session, error)

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
            return expired

    def shutdown(self, text: str = "the server is shutting down") -> None:
        """Tell everyone (a notice, then `left` reason shutdown) and close every outbox."""
        with self.fanout.batch():
            now = self.clock()
            notice = encode_payload({"type": "notice", "text": text, "ts": now})
            closed = len(self.sessions)
            for session in list(self.sessions):
                if session.joined:
                    room = self.registry.room_of(session)
                    assert session.nick is not None
                    self.store.add(
                        Event(
                            "left",
                            now,
                            session.nick,
                            room.name if room else None,
                            transport=session.transport,
                            reason="shutdown",
                        )
                    )
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

    def broadcast(self, room: Room, payload: dict[str, Any] | bytes, exclude: Session | None = None) -> bytes:
        """Encode once (unless given encoded) and queue for every member of `room` but `exclude`; returns the body."""
        body = payload if isinstance(payload, bytes) else encode_payload(payload)
        self.fanout.broadcast(room, body, exclude)
        return body

    def _fail(self, session: Session, error: ProtocolError) -> None:
        if error.code != "not_allowed":
            # Being refused by a rule (muted, locked room) is not abuse; it is
            # not counted towards max_errors. Guessing the operator secret is
            # limited on its own (operators.py).
            session.errors_in_a_row += 1
        log.info("protocol error from %s: %s %s", session.describe(), error.code, error.message)
        if session.closed:
            return
        self.fanout.queue(session, encode_payload(error.payload()))
        if error.fatal or session.errors_in_a_row >= self.max_errors:
            if not error.fatal:
                log.warning("%s: %d errors in a row, closing", session.describe(), session.errors_in_a_row)
            self.drop(session, "error")

    def _close(self, session: Session) -> None:
        if not session.closed:
            session.closed = True
            self.sessions.discard(session)
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
        was_joined = session.joined
        self._close(session)
        self.moderation.forget(session)
        if not was_joined:
            return
        room = self.registry.remove(session)
        log.info("leave: %s from %s (%s)", session.describe(), room.name if room else "-", reason)
        if room is not None:
            assert session.nick is not None
            now = self.clock()
            payload = {"type": "left", "nick": session.nick, "room": room.name, "ts": now, "reason": reason}
            if details:
                payload.update(details)
            body = self.fanout.member_left(room, session, payload)
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
                raise ProtocolError("not_joined", "say hello first; closing", fatal=True)
            raise ProtocolError("not_joined", 'send "hello" first')
        if session.joined and not isinstance(message, (Ping, Bye)) and not session.bucket.allow(now):
            raise ProtocolError("rate_limited", "you are sending too fast; slow down")
        self._handlers[type(message)](session, message, now)

    def _hello(self, session: Session, hello: Hello, now: float) -> None:
        if session.joined:
            assert session.nick is not None
            if session.transport == "udp" and name_key(hello.nick) == name_key(session.nick):
                # docs/protocol.md §2: the first welcome may have been lost.
                room = self.registry.room_of(session)
                assert room is not None
                self._welcome(session, room, now)
                return
            raise ProtocolError("bad_request", "already joined: hello is only for the start of a session")
        self.access.check_password(session.address, hello.password, now)
        if self.registry.find(hello.nick) is not None:
            raise ProtocolError("nick_taken", f'the nick "{hello.nick}" is already in use')
        room = self.registry.ensure_room(hello.room)
        self.registry.add(session, hello.nick, room)
        session.features = hello.features & FEATURES  # docs/protocol.md §12: unknown names are ignored
        log.info("join: %s in %s", session.describe(), room.name)
        # The room hears of it coalesced with other joins (chatsrv.fanout); the welcome follows.
        self.fanout.member_joined(room, session, {"type": "joined", "nick": hello.nick, "room": room.name, "ts": now})
        self._welcome(session, room, now)
        self.store.add(Event("joined", now, hello.nick, room.name, transport=session.transport))

    def _welcome(self, session: Session, room: Room, now: float) -> None:
        """Queue a `welcome`, with as much recent history as fits `max_frame`."""
        payload: dict[str, Any] = {
            "type": "welcome",
            "nick": session.nick,
            "room": room.name,
            "users": room.nicks(),
            "history": [],
            "server": {"name": self.server_name, "version": __version__},
            "transport": session.transport,
            "max_frame": session.max_frame,
            "ts": now,
        }
        if session.transport == "udp":
            payload["peer_timeout"] = self.peer_timeout
        if session.features:
            payload["features"] = sorted(session.features)  # what the server accepted of hello.features
        if self.motd:
            payload["motd"] = self.motd
        if room.topic:
            payload["topic"] = room.topic
        payload.update(self.operators.welcome_fields(session, room, now))
        payload.update(session.extra.get("welcome", {}))
        base = encode_payload(payload)
        budget = session.max_frame - len(base) - SEQ_ROOM
        chosen: list[bytes] = []
        for item in reversed(room.history):
            budget -= len(item) + 1
            if budget < 0:
                break
            chosen.append(item)
        chosen.reverse()
        # Strings in JSON cannot hold a bare quote, so this matches only the real key.
        body = base.replace(b'"history":[]', b'"history":[' + b",".join(chosen) + b"]", 1)
        self.fanout.queue(session, body)

    def _say(self, session: Session, say: Say, now: float) -> None:
        room = self.registry.room_of(session)
        assert room is not None and session.nick is not None
        if self.moderation.active:  # someone is muted, or a room is locked or slow
            self.moderation.check_say(session, room.key, now)
        message_id = next(self._ids)
        body = encode_message(message_id, room.name, session.nick, say.text, now, say.action)
        room.history.append(self.broadcast(room, body))
        event = Event(
            "message", now, session.nick, room.name, say.text, message_id, say.action, session.transport,
            room_key=room.key,
        )
        self.store.add(event)  # a queue append: the broadcast never waits for the disk

    def _whisper(self, session: Session, whisper: Whisper, now: float) -> None:
        target = self.registry.find(whisper.to)
        if target is None:
            raise ProtocolError("no_such_user", f'nobody called "{whisper.to}" is here')
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
            raise ProtocolError("nick_taken", f'the nick "{nick.nick}" is already in use')
        if self.moderation.active:
            self.moderation.check_rename(session, now)
        self.registry.rename(session, nick.nick)
        room = self.registry.room_of(session)
        log.info("rename: %s -> %s", old, nick.nick)
        if room is not None:
            self.broadcast(room, {"type": "renamed", "old": old, "new": nick.nick, "room": room.name, "ts": now})
            self.store.add(Event("renamed", now, old, room.name, transport=session.transport, new=nick.nick))

    def _join(self, session: Session, join: Join, now: float) -> None:
        current = self.registry.room_of(session)
        if current is not None and current.key == name_key(join.room):
            self._welcome(session, current, now)
            return
        if current is not None:
            self.registry.leave_room(session)
            left = {"type": "left", "nick": session.nick, "room": current.name, "ts": now, "reason": "moved"}
            self.fanout.member_left(current, session, left)
            assert session.nick is not None
            self.store.add(Event("left", now, session.nick, current.name, transport=session.transport, reason="moved"))
        room = self.registry.ensure_room(join.room)
        self.registry.enter(session, room)
        joined: dict[str, Any] = {"type": "joined", "nick": session.nick, "room": room.name, "ts": now}
        if self.moderation.is_operator(session):
            joined["operator"] = True  # so clients can mark the operator who moved in
        self.fanout.member_joined(room, session, joined)
        self._welcome(session, room, now)
        assert session.nick is not None
        self.store.add(Event("joined", now, session.nick, room.name, transport=session.transport))

    def _who(self, session: Session, who: Who, now: float) -> None:
        room = self.registry.room(who.room) if who.room else self.registry.room_of(session)
        name = room.name if room else who.room
        users = room.nicks() if room else []
        payload: dict[str, Any] = {"type": "users", "room": name, "users": users}
        if room is not None:
            payload.update(self.operators.room_fields(room))
        self.fanout.queue(session, encode_payload(payload))

    def _rooms(self, session: Session, message: Rooms, now: float) -> None:
        self.fanout.queue(session, encode_payload({"type": "rooms", "rooms": self.registry.listing()}))

    def _ping(self, session: Session, ping: Ping, now: float) -> None:
        self.fanout.queue(session, encode_payload({"type": "pong", "id": ping.id, "t": ping.t, "ts": now}))

    def _stats(self, session: Session, message: Stats, now: float) -> None:
        payload: dict[str, Any] = {"type": "stats", "sent": session.sent, "received": session.received}
        if session.transport == "udp":
            tracker = session.client_seq
            payload.update(gaps=tracker.gaps, reordered=tracker.reordered, duplicates=tracker.duplicates)
        payload.update(session.extra.get("stats", {}))
        self.fanout.queue(session, encode_payload(payload))

    def _bye(self, session: Session, message: Bye, now: float) -> None:
        self.drop(session, "quit")


def _host(session: Session) -> Any:
    return session.address[0] if isinstance(session.address, tuple) else session.address

