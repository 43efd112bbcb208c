"""ChatService against abuse (issue 14): handler bugs, pings, rooms and reply sizes, with fakes only."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from chatsrv.answers import PING_BURST
from chatsrv.errorreplies import TRACEBACK_WINDOW
from chatsrv.messages import Stats
from chatsrv.roomcache import ROOM_BURST, ROOM_RATE
from chatsrv.service import ChatService
from chatsrv.session import Session
from chatsrv.store import Event, MemoryStore
from tests.support.fakes import Clock, NullOutbox, member, send


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



def _crowd(service: ChatService, count: int, room: str = "lobby") -> None:
    """`count` members with 24-character nicks in `room`, registered directly (no welcome each)."""
    with service.registry.lock:
        target = service.registry.ensure_room(room)
        for n in range(count):
            session = service.connect(NullOutbox(), (f"10.1.{n // 250}.{n % 250}", 4000), "tcp", 65536)
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
    service = ChatService(clock=clock, rate=0, max_rooms=0, room_idle=0)  # all 3,000 stay in memory
    for n in range(3000):
        service.registry.ensure_room(f"room{n:04d}").history.append(b'{"type":"message"}')
    _crowd(service, 2, room="zoo")
    session, outbox = member(service, "alice", room="zzz", transport="udp", max_frame=8192)
    send(service, session, type="rooms")
    reply = outbox.last()
    assert reply["rooms"][:2] == [{"name": "zoo", "users": 2}, {"name": "zzz", "users": 1}]
    assert reply["truncated"] == 3002 - len(reply["rooms"]) > 0
    assert len(_raw_bodies(outbox)[-1]) <= 8192


# --- rooms: a limit, a creation budget, idle rooms leave memory, close_room ----


def _room_names(service: ChatService) -> set[str]:
    return {room.name for room in service.registry.rooms.values()}


def test_rooms_in_memory_stay_within_max_rooms(clock: Clock) -> None:
    """One member opening 50 rooms (each with history) leaves at most max_rooms in memory, its own room included."""
    service = ChatService(clock=clock, rate=0, max_rooms=5)
    session, outbox = member(service, "mallory")
    for n in range(50):
        send(service, session, type="join", room=f"room{n}")
        send(service, session, type="say", text="x")
    assert len(service.registry.rooms) <= 5 and "room49" in _room_names(service)
    assert [p for p in outbox.of_type("error")] == []


def test_rooms_with_members_are_never_pushed_out(clock: Clock) -> None:
    """When every room in memory has members, a new room is refused with a non-fatal server_full."""
    service = ChatService(clock=clock, rate=0, max_rooms=2)
    member(service, "alice", room="lobby")
    member(service, "bob", room="art")
    carol, carol_box = member(service, "carol", room="art")
    send(service, carol, type="join", room="maths")
    assert carol_box.last()["code"] == "server_full" and not carol.closed
    assert service.registry.room_of(carol).name == "art"  # a refused join changes nothing
    assert _room_names(service) == {"lobby", "art"}


def test_new_rooms_have_a_budget_per_member(clock: Clock) -> None:
    """With the rate limit on, a member opens ROOM_BURST new rooms at once, then rate_limited; old rooms are free."""
    service = ChatService(clock=clock, burst=1000)
    session, outbox = member(service, "mallory")
    for n in range(ROOM_BURST - 1):  # the hello opened lobby: one token
        send(service, session, type="join", room=f"room{n}")
        send(service, session, type="say", text="x")  # history keeps the room in memory once left
    assert outbox.of_type("error") == []
    send(service, session, type="join", room="one-too-many")
    assert outbox.last()["code"] == "rate_limited"
    send(service, session, type="join", room="room0")
    assert outbox.last()["type"] == "welcome"
    clock.now += 1 / ROOM_RATE
    send(service, session, type="join", room="one-too-many")
    assert outbox.last()["type"] == "welcome"


def test_an_idle_room_leaves_memory_and_its_history_comes_back(clock: Clock) -> None:
    """A room nobody is in is gone from memory and from `rooms` after a while; joining it again brings its history."""
    service = ChatService(clock=clock, rate=0, room_idle=600)
    alice, _ = member(service, "alice", room="maths")
    send(service, alice, type="say", text="remember me")
    send(service, alice, type="join", room="lobby")
    clock.now += 601
    send(service, alice, type="rooms")
    assert "maths" not in _room_names(service)
    _, bob_box = member(service, "bob", room="maths")
    assert [m["text"] for m in bob_box.of_type("welcome")[0]["history"]] == ["remember me"]


def test_start_loads_only_the_latest_max_rooms_rooms(clock: Clock) -> None:
    """After a restart with 10 rooms of history and max_rooms 3, the 3 latest are in memory; others return on join."""
    store = MemoryStore()
    for n in range(10):
        store.add(Event("message", 100.0 + n, "alice", f"room{n}", f"in room{n}", n + 1, transport="tcp"))
    service = ChatService(clock=clock, rate=0, max_rooms=3, store=store)
    assert _room_names(service) == {"room7", "room8", "room9"}
    _, outbox = member(service, "bob", room="room2")
    assert [m["text"] for m in outbox.of_type("welcome")[0]["history"]] == ["in room2"]


def _operator(service: ChatService, nick: str, room: str = "lobby") -> tuple[Session, Any]:
    session, outbox = member(service, nick, room=room)
    send(service, session, type="op", secret="s3cret")
    assert outbox.last()["type"] == "notice", outbox.last()
    return session, outbox


def test_an_operator_closes_a_room_and_its_history_is_deleted(clock: Clock) -> None:
    """close_room moves the room's members to lobby, forgets the room and deletes its stored history."""
    store = MemoryStore()
    service = ChatService(clock=clock, rate=0, op_secret="s3cret", store=store)
    teacher, teacher_box = _operator(service, "teacher")
    bob, bob_box = member(service, "bob", room="art")
    send(service, bob, type="say", text="secret plans")
    send(service, teacher, type="close_room", room="ART")
    closing = bob_box.of_type("notice")[-1]
    assert closing["event"] == "close_room" and closing["room"] == "art" and closing["by"] == "teacher"
    assert bob_box.of_type("welcome")[-1]["room"] == "lobby" and service.registry.room_of(bob).name == "lobby"
    assert "art" not in _room_names(service)
    assert [e for e in store.events(room="art")] == []
    assert teacher_box.of_type("notice")[-1]["event"] == "close_room"
    send(service, bob, type="join", room="art")
    assert bob_box.of_type("welcome")[-1]["history"] == []


def test_close_room_is_for_operators_and_not_for_lobby(clock: Clock) -> None:
    """A non-operator's close_room and an operator's close_room of lobby are not_allowed; nothing changes."""
    service = ChatService(clock=clock, rate=0, op_secret="s3cret")
    teacher, teacher_box = _operator(service, "teacher")
    bob, bob_box = member(service, "bob", room="art")
    send(service, bob, type="close_room", room="art")
    assert bob_box.last()["code"] == "not_allowed"
    send(service, teacher, type="close_room", room="lobby")
    assert teacher_box.last()["code"] == "not_allowed"
    assert _room_names(service) == {"lobby", "art"}
