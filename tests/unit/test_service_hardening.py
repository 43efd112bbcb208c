"""ChatService against abuse (issue 14): handler bugs, pings, rooms and reply sizes, with fakes only."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from chatsrv.messages import Stats
from chatsrv.service import PING_BURST, TRACEBACK_WINDOW, ChatService
from chatsrv.session import Session
from tests.support.fakes import Clock, member, send


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _broken(session: Session, message: Any, now: float) -> None:
    raise RuntimeError("an injected bug")


def test_a_handler_bug_is_one_internal_error_and_one_traceback_per_window(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each payload that raises is answered internal_error; the traceback is logged once per window per address."""
    caplog.set_level(logging.INFO, logger="chatsrv")
    service = ChatService(clock=clock, rate=0)
    service._handlers[Stats] = _broken
    session, outbox = member(service, "mallory")
    for _ in range(5):
        send(service, session, type="stats")
    assert [p["code"] for p in outbox.of_type("error")] == ["internal_error"] * 5
    clock.now += TRACEBACK_WINDOW
    send(service, session, type="stats")
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 2 and "4 more since the last report" in tracebacks[1].getMessage()
    send(service, session, type="say", text="still here")
    assert outbox.last()["type"] == "message" and not session.closed


def test_a_handler_bug_counts_towards_errors_in_a_row(clock: Clock) -> None:
    """A member that keeps hitting a bug is closed at max_errors, like any other error."""
    service = ChatService(clock=clock, rate=0, max_errors=3)
    service._handlers[Stats] = _broken
    session, outbox = member(service, "mallory")
    for _ in range(3):
        send(service, session, type="stats")
    assert session.closed and outbox.closed


def test_pings_have_their_own_budget(clock: Clock) -> None:
    """A burst of pings beyond the budget is rate_limited; the budget refills with time."""
    service = ChatService(clock=clock)
    session, outbox = member(service, "mallory")
    for _ in range(PING_BURST + 5):
        send(service, session, type="ping", id="p")
    assert len(outbox.of_type("pong")) == PING_BURST
    assert [p["code"] for p in outbox.of_type("error")] == ["rate_limited"] * 5
    clock.now += 1
    send(service, session, type="ping", id="again")
    assert outbox.last()["type"] == "pong"


def test_pings_do_not_use_the_message_budget(clock: Clock) -> None:
    """Pings and messages have separate budgets: a member out of pings can still speak."""
    service = ChatService(clock=clock)
    session, outbox = member(service, "alice")
    for _ in range(PING_BURST + 1):
        send(service, session, type="ping")
    send(service, session, type="say", text="hi")
    assert outbox.last()["type"] == "message"


@pytest.mark.parametrize(
    "fields",
    [{"id": "x" * 65}, {"id": 2**70}, {"t": "now"}, {"t": True}, {"t": 2**70}, {"id": [1]}, {"t": {"a": 1}}],
)
def test_ping_id_and_t_are_bounded(clock: Clock, fields: dict[str, Any]) -> None:
    """A ping with a long id, a huge number or a t that is not a number is a bad_request."""
    service = ChatService(clock=clock, rate=0)
    session, outbox = member(service, "mallory")
    send(service, session, type="ping", **fields)
    assert outbox.last()["code"] == "bad_request"


def test_ping_echoes_bounded_values(clock: Clock) -> None:
    """A 64-character id and a float t are echoed as sent."""
    service = ChatService(clock=clock, rate=0)
    session, outbox = member(service, "alice")
    send(service, session, type="ping", id="i" * 64, t=12.5)
    assert outbox.last()["id"] == "i" * 64 and outbox.last()["t"] == 12.5


# --- replies fit what was announced ------------------------------------------


class _Sink:
    """An outbox that keeps nothing: for the thousands of members a test only needs to exist."""

    def put(self, bodies: list[bytes], first_seq: int) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _crowd(service: ChatService, count: int, room: str = "lobby") -> None:
    """`count` members with 24-character nicks in `room`, registered directly (no welcome each)."""
    with service.registry.lock:
        target = service.registry.ensure_room(room)
        for n in range(count):
            session = service.connect(_Sink(), (f"10.1.{n // 250}.{n % 250}", 4000), "tcp", 65536)
            service.registry.add(session, f"student{n:05d}".ljust(24, "x"), target)


def _raw_bodies(outbox: Any) -> list[bytes]:
    return [json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() for payload in outbox.payloads]


@pytest.mark.parametrize(("transport", "limit"), [("tcp", 65536), ("udp", 8192)])
def test_a_5000_member_users_reply_fits_the_frame(clock: Clock, transport: str, limit: int) -> None:
    """`who` in a room of 5,000 answers with the first nicks that fit max_frame and `truncated` for the rest."""
    service = ChatService(clock=clock, rate=0, max_clients=0, max_per_ip=0)
    _crowd(service, 5000)
    session, outbox = member(service, "alice", transport=transport, max_frame=limit)
    welcome = outbox.of_type("welcome")[0]
    send(service, session, type="who")
    users = outbox.last()
    assert users["type"] == "users" and users["truncated"] == 5001 - len(users["users"]) > 0
    assert users["users"] == sorted(users["users"], key=str.casefold) and users["users"][0] == "alice"
    assert welcome["truncated"] == 5001 - len(welcome["users"]) > 0
    assert all(len(body) <= limit for body in _raw_bodies(outbox))


def test_a_small_users_reply_has_no_truncated_field(clock: Clock) -> None:
    """A reply that fits is sent whole, without `truncated`."""
    service = ChatService(clock=clock, rate=0)
    _crowd(service, 3)
    session, outbox = member(service, "alice")
    send(service, session, type="who")
    assert len(outbox.last()["users"]) == 4 and "truncated" not in outbox.last()
    assert "truncated" not in outbox.of_type("welcome")[0]


def test_rooms_with_members_are_listed_first_and_the_reply_fits(clock: Clock) -> None:
    """With 3,000 rooms the `rooms` reply fits a UDP datagram, the occupied rooms come first, the rest are counted."""
    service = ChatService(clock=clock, rate=0)
    for n in range(3000):
        service.registry.ensure_room(f"room{n:04d}").history.append(b'{"type":"message"}')
    _crowd(service, 2, room="zoo")
    session, outbox = member(service, "alice", room="zzz", transport="udp", max_frame=8192)
    send(service, session, type="rooms")
    reply = outbox.last()
    assert reply["rooms"][:2] == [{"name": "zoo", "users": 2}, {"name": "zzz", "users": 1}]
    assert reply["truncated"] == 3002 - len(reply["rooms"]) > 0
    assert len(_raw_bodies(outbox)[-1]) <= 8192
