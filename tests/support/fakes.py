"""Fakes for testing ChatService without sockets or threads: an outbox, a clock, and joining helpers."""

from __future__ import annotations

import json
from typing import Any

from chatsrv.service import ChatService
from chatsrv.session import Session
from lanchat.wire import encode_payload, with_seq


class FakeOutbox:
    """Records what the service queues and when it is flushed; can pretend to be full."""

    def __init__(self, capacity: int | None = None) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.closed = False
        self.capacity = capacity
        self.puts = 0
        self.flushes = 0

    def put(self, bodies: list[bytes], first_seq: int) -> bool:
        self.puts += 1
        if self.capacity is not None and len(self.payloads) + len(bodies) > self.capacity:
            return False
        self.payloads.extend(json.loads(with_seq(body, seq)) for seq, body in enumerate(bodies, first_seq))
        return True

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [p for p in self.payloads if p["type"] == kind]

    def last(self) -> dict[str, Any]:
        return self.payloads[-1]


class NullOutbox:
    """An outbox that keeps nothing: for members a test only needs to exist."""

    def put(self, bodies: list[bytes], first_seq: int) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Clock:
    """A wall clock moved by hand (`now`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connect(
    service: ChatService,
    transport: str = "tcp",
    host: str = "10.0.0.1",
    max_frame: int = 65536,
    outbox: FakeOutbox | None = None,
) -> tuple[Session, FakeOutbox]:
    outbox = outbox or FakeOutbox()
    return service.connect(outbox, (host, 5000 + len(service.sessions)), transport, max_frame), outbox


def send(service: ChatService, session: Session, **payload: Any) -> None:
    service.receive(session, [encode_payload(payload)])


def member(service: ChatService, nick: str, room: str = "lobby", **kwargs: Any) -> tuple[Session, FakeOutbox]:
    """A connected session that said hello (and got its welcome) in `room`."""
    session, outbox = connect(service, **kwargs)
    send(service, session, type="hello", nick=nick, room=room)
    assert outbox.payloads[-1]["type"] == "welcome", outbox.payloads
    return session, outbox
