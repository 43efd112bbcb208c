"""Server-side fixes from a lesson the tester ran (issue 16 follow-up): ChatService with fakes, no sockets."""

from __future__ import annotations

import logging

import pytest

from chatsrv import discovery
from chatsrv.access import Access
from chatsrv.service import ChatService
from chatsrv.textdoor import render_payload
from tests.support.fakes import Clock as FakeClock
from tests.unit.test_operators import SECRET, Member, join, settle


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(clock: FakeClock) -> ChatService:
    return ChatService(clock=clock, rate=0, op_secret=SECRET)


@pytest.fixture
def cast(service: ChatService) -> dict[str, Member]:
    """teacher (operator) and bob, carol in the lobby; dave in another room (as in test_operators)."""
    members = {
        "teacher": join(service, "teacher"),
        "bob": join(service, "bob", host="127.0.0.2"),
        "carol": join(service, "carol", host="127.0.0.3"),
        "dave": join(service, "dave", room="other", host="127.0.0.4"),
    }
    members["teacher"].send(type="op", secret=SECRET)
    settle(*members.values())
    return members


def test_discovery_counts_only_rooms_with_members(service: ChatService, cast: dict[str, Member]) -> None:
    """A room with history and nobody in it is listed by /rooms, but discovery's room_count counts people's rooms."""
    cast["dave"].send(type="say", text="homework is on page 4")
    cast["dave"].send(type="join", room="lobby")
    settle(*cast.values())
    assert [room["name"] for room in service.registry.listing()] == ["lobby", "other"]
    snap = discovery.snapshot(service)
    assert snap.rooms == [{"name": "lobby", "users": 4}]
    answer = discovery.build_reply(snap, server_id="x", tcp_port=1, udp_port=1, budget=1400)
    assert answer is not None and b'"room_count":1' in answer


def _console(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What an operator reads at the default level: the service's and the audit's lines."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("chatsrv")]


def test_refusals_are_logged_as_refusals_not_protocol_errors(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing password and a bad nick are refusals; "protocol error" stays for broken programs."""
    caplog.set_level(logging.INFO)
    service = ChatService(clock=clock, rate=0, op_secret=SECRET, access=Access(password="pw"))
    nopass = Member(service, ("127.0.0.5", 5000))
    nopass.send(type="hello", nick="amy")
    badnick = Member(service, ("127.0.0.6", 5000))
    badnick.send(type="hello", nick="a b", password="pw")
    broken = Member(service, ("127.0.0.7", 5000))
    broken.send(type="dance")
    lines = _console(caplog)
    assert any(line.startswith("refused #") and line.endswith(": this server needs a password") for line in lines)
    assert any(": nick refused: " in line for line in lines), lines
    assert [line for line in lines if "protocol error" in line] == [
        next(line for line in lines if "protocol error" in line and "bad_request" in line)
    ]


def test_a_wrong_op_secret_is_one_console_line(service: ChatService, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bob = join(service, "bob", host="127.0.0.9")
    bob.send(type="op", secret="guess")
    assert bob.take()[-1]["code"] == "not_allowed"
    lines = [line for line in _console(caplog) if "bob" in line and "join" not in line]
    assert len(lines) == 1 and "wrong operator secret" in lines[0], lines


def test_the_text_door_says_where_a_member_moved() -> None:
    left = {"type": "left", "nick": "韩梅梅", "room": "lobby", "reason": "moved", "to": "数学", "ts": 2.0}
    assert render_payload(left) == ["* 韩梅梅 left lobby (moved to 数学)"]


def test_the_operator_who_muted_is_told_in_another_room(
    service: ChatService, cast: dict[str, Member], clock: FakeClock
) -> None:
    """The teacher muted dave (in "other") from the lobby: the end of the mute reaches the teacher there."""
    cast["teacher"].send(type="mute", nick="dave", minutes=1)
    settle(*cast.values())
    clock.now += 60
    service.tick()
    [told] = cast["teacher"].take()
    assert told["text"] == "the mute of dave has ended: the room hears them again"
    assert cast["bob"].take() == [] and cast["carol"].take() == []


def test_the_text_door_lists_rooms_with_history_only_apart() -> None:
    rooms = {"type": "rooms", "rooms": [{"name": "lobby", "users": 4}, {"name": "数学", "users": 0}]}
    assert render_payload(rooms) == ["* rooms: lobby (4); with history only: 数学"]
