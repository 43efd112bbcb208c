"""Server-side fixes from a lesson the tester ran (issue 16 follow-up): ChatService with fakes, no sockets."""

from __future__ import annotations

import pytest

from chatsrv import discovery
from chatsrv.service import ChatService
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
