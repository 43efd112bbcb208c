"""What the server says is true: where a member moved, one message of the day per session."""

from __future__ import annotations

from chatsrv.service import ChatService
from tests.support.fakes import Clock, member, send


def test_left_says_where_the_member_moved() -> None:
    service = ChatService(clock=Clock(), rate=0)
    bobby, _ = member(service, "bobby")
    _, alice_box = member(service, "alice")
    send(service, bobby, type="join", room="maths")
    left = alice_box.of_type("left")[-1]
    assert left["reason"] == "moved" and left["to"] == "maths"


def test_the_message_of_the_day_comes_once_not_on_every_join() -> None:
    service = ChatService(clock=Clock(), rate=0, motd="be kind")
    alice, box = member(service, "alice")
    assert box.of_type("welcome")[-1]["motd"] == "be kind"
    send(service, alice, type="join", room="maths")
    send(service, alice, type="join", room="lobby")
    assert [welcome.get("motd") for welcome in box.of_type("welcome")] == ["be kind", None, None]
