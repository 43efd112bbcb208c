"""The chat service's answers that change nothing: `welcome`, `users`, `rooms`, `pong`, `stats`.

Owns `Answers`, the part of `ChatService` (chatsrv.service) that builds
the replies to a member's questions: the `welcome` with as much recent
history as the member's frame holds, the `users` and `rooms` lists trimmed
to fit (chatsrv.replies), `pong` within its own budget (docs/protocol.md
§7.1) and the member's `stats`. A mixin: `ChatService` creates the state it
uses (annotated below) in its `__init__`; nothing here is used on its own.

Imports: __version__, messages, ratelimit, replies, session, rooms, fanout, operators (and lanchat.wire).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatsrv import __version__
from chatsrv.fanout import FanOut
from chatsrv.messages import Ping, Rooms, Stats, Who
from chatsrv.operators import OperatorDesk
from chatsrv.ratelimit import TokenBucket
from chatsrv.replies import SEQ_ROOM, fit_list
from chatsrv.rooms import Registry, Room
from chatsrv.session import Session
from lanchat.reasons import say
from lanchat.wire import ProtocolError, encode_payload

# Pings have their own budget (docs/protocol.md §7.1): a ping costs the server
# a reply, so a flood of them is as much work as a flood of messages.
PING_RATE = 5.0
PING_BURST = 10


class Answers:
    """Replies to questions (welcome, who, rooms, ping, stats); mixed into ChatService."""

    fanout: FanOut
    operators: OperatorDesk
    registry: Registry
    server_name: str
    peer_timeout: float
    motd: str | None
    rate: float
    _ping_budgets: dict[Session, TokenBucket]
    _forget_idle_rooms: Callable[[float], None]

    def _welcome(self, session: Session, room: Room, now: float, first: bool = False) -> None:
        """Queue a `welcome`, with as much recent history as fits `max_frame`.

        The message of the day is for the session's first welcome (`first`),
        not repeated on every room change.
        """
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
        if self.motd and first:
            payload["motd"] = self.motd
        if room.topic:
            payload["topic"] = room.topic
        payload.update(self.operators.welcome_fields(session, room, now))
        payload.update(session.extra.get("welcome", {}))
        # Users first, then as much history as the rest of the frame holds (docs/protocol.md §7.2, §8).
        base = fit_list(payload, "users", session.max_frame - SEQ_ROOM)
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

    def _who(self, session: Session, who: Who, now: float) -> None:
        room = self.registry.room(who.room) if who.room else self.registry.room_of(session)
        name = room.name if room else who.room
        users = room.nicks() if room else []
        payload: dict[str, Any] = {"type": "users", "room": name, "users": users}
        if room is not None:
            payload.update(self.operators.room_fields(room))
        self.fanout.queue(session, fit_list(payload, "users", session.max_frame - SEQ_ROOM))

    def _rooms(self, session: Session, message: Rooms, now: float) -> None:
        self._forget_idle_rooms(now)
        # Rooms with members come first (registry.listing), so trimming leaves out only empty ones first.
        payload = {"type": "rooms", "rooms": self.registry.listing()}
        self.fanout.queue(session, fit_list(payload, "rooms", session.max_frame - SEQ_ROOM))

    def _ping(self, session: Session, ping: Ping, now: float) -> None:
        if self.rate > 0:
            budget = self._ping_budgets.get(session)
            if budget is None:
                budget = self._ping_budgets[session] = TokenBucket(PING_RATE, PING_BURST, now)
            if not budget.allow(now):
                raise ProtocolError("rate_limited", say("pings_too_fast", rate=PING_RATE))
        self.fanout.queue(session, encode_payload({"type": "pong", "id": ping.id, "t": ping.t, "ts": now}))

    def _stats(self, session: Session, message: Stats, now: float) -> None:
        payload: dict[str, Any] = {"type": "stats", "sent": session.sent, "received": session.received}
        if session.transport == "udp":
            tracker = session.client_seq
            payload.update(gaps=tracker.gaps, reordered=tracker.reordered, duplicates=tracker.duplicates)
        payload.update(session.extra.get("stats", {}))
        self.fanout.queue(session, encode_payload(payload))
