"""Two chatsrv nodes in this process share rooms through one real redis-server (docs/scale-out.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from chatsrv.app import Server
from tests.helpers import Client, UDPClient, wait_until

Nodes = tuple[Server, Server]




def messages(client: Client | UDPClient, count: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    while len(seen) < count:
        payload = client.recv()
        if payload["type"] == "message":
            seen.append((payload["from"], payload["text"]))
    return seen


def test_members_on_both_nodes_see_one_order(nodes: Nodes, connect: Callable[[Server], Client]) -> None:
    a, b = nodes
    alice, bob = connect(a), connect(b)
    alice.join("alice")
    wait_until(lambda: b.service.registry.find("alice") is not None)
    welcome = bob.join("bob")
    assert welcome["users"] == ["alice", "bob"]  # a member of the other node is listed
    alice.expect("joined", nick="bob")
    for n in range(20):
        alice.send({"type": "say", "text": f"a{n}"})
        bob.send({"type": "say", "text": f"b{n}"})
    seen_by_alice = messages(alice, 40)
    seen_by_bob = messages(bob, 40)
    assert seen_by_alice == seen_by_bob
    assert [text for who, text in seen_by_alice if who == "alice"] == [f"a{n}" for n in range(20)]


def test_message_ids_are_unique_across_nodes(nodes: Nodes, connect: Callable[[Server], Client]) -> None:
    a, b = nodes
    alice, bob = connect(a), connect(b)
    alice.join("alice")
    bob.join("bob")
    alice.expect("joined", nick="bob")
    ids: list[int] = []
    for n in range(5):
        alice.send({"type": "say", "text": f"a{n}"})
        bob.send({"type": "say", "text": f"b{n}"})
    while len(ids) < 10:
        payload = alice.recv()
        if payload["type"] == "message":
            ids.append(payload["id"])
    assert len(set(ids)) == 10


def test_a_nick_taken_on_one_node_is_refused_on_the_other(nodes: Nodes, connect: Callable[[Server], Client]) -> None:
    a, b = nodes
    connect(a).join("teacher")
    wait_until(lambda: b.service.registry.find("teacher") is not None)
    for nick in ("teacher", "TEACHER", "\uff54\uff45\uff41\uff43\uff48\uff45\uff52"):  # the last: fullwidth
        other = connect(b)
        other.send({"type": "hello", "nick": nick})
        error = other.expect("error")
        assert error["code"] == "nick_taken"
        said = f'"{nick}" looks too much like "teacher"' if nick != "teacher" else 'the nick "teacher" is already in'
        assert error["message"].startswith(said)


def test_a_nick_is_refused_even_before_the_other_node_has_heard_of_it(
    nodes: Nodes, connect: Callable[[Server], Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node B reads nothing from the stream: only the reservation in Redis can tell it the nick is taken."""
    a, b = nodes
    monkeypatch.setattr(b.backplane, "_apply", lambda reply: None)
    connect(a).join("carol")
    other = connect(b)
    other.send({"type": "hello", "nick": "\uff43\uff41\uff52\uff4f\uff4c"})  # fullwidth carol
    error = other.expect("error")
    assert error["code"] == "nick_taken"
    assert error["message"] == '"\uff43\uff41\uff52\uff4f\uff4c" looks too much like "carol", who is here'
    assert b.service.registry.find("carol") is None


def test_whisper_and_who_and_rooms_cross_nodes(nodes: Nodes, connect: Callable[[Server], Client]) -> None:
    a, b = nodes
    alice, bob = connect(a), connect(b)
    alice.join("alice")
    bob.join("bob", room="maths")
    wait_until(lambda: a.service.registry.find("bob") is not None)
    alice.send({"type": "whisper", "to": "bob", "text": "psst"})
    assert bob.expect("whisper")["from"] == "alice"
    assert alice.expect("whisper")["text"] == "psst"
    alice.send({"type": "who", "room": "maths"})
    assert alice.expect("users")["users"] == ["bob"]
    alice.send({"type": "rooms"})
    rooms = {room["name"]: room["users"] for room in alice.expect("rooms")["rooms"]}
    assert rooms == {"lobby": 1, "maths": 1}


def test_an_operator_kicks_a_member_of_the_other_node(
    nodes: Nodes, connect: Callable[[Server], Client], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = nodes
    teacher, pupil = connect(a), connect(b)
    teacher.join("teacher")
    teacher.send({"type": "op", "secret": a.service.operators.op_secret})
    teacher.expect("notice", event="op")
    pupil.join("pupil")
    teacher.expect("joined", nick="pupil")
    with caplog.at_level(logging.INFO, logger="chatsrv.audit"):
        teacher.send({"type": "kick", "nick": "pupil", "reason": "enough"})
        left = teacher.expect("left", nick="pupil")
    # The audit line names where the pupil is, not a made-up port (it said "pupil [tcp 127.0.0.1:0]").
    assert "-> pupil [tcp 127.0.0.1 on another node] reason='enough'" in caplog.text
    assert left["reason"] == "kicked" and left["by"] == "teacher"
    received = pupil.wait_closed()
    assert any(p["type"] == "left" and p.get("by") == "teacher" for p in received)
    wait_until(lambda: a.service.registry.find("pupil") is None and b.service.registry.find("pupil") is None)


def test_a_mute_on_one_node_holds_on_the_other(nodes: Nodes, connect: Callable[[Server], Client]) -> None:
    a, b = nodes
    teacher, pupil = connect(a), connect(b)
    teacher.join("teacher")
    teacher.send({"type": "op", "secret": a.service.operators.op_secret})
    teacher.expect("notice", event="op")
    pupil.join("pupil")
    teacher.expect("joined", nick="pupil")
    teacher.send({"type": "mute", "nick": "pupil"})
    wait_until(lambda: "pupil" in b.service.moderation.mutes)
    pupil.send({"type": "say", "text": "hello?"})
    assert pupil.expect("error")["code"] == "not_allowed"


def test_a_udp_member_on_one_node_and_a_tcp_member_on_the_other_chat(
    nodes: Nodes, connect: Callable[[Server], Client]
) -> None:
    a, b = nodes
    assert a.udp is not None
    udp = UDPClient(a.udp.port)
    try:
        udp.join("dora")
        tcp = connect(b)
        tcp.join("tom")
        udp.expect("joined", nick="tom")
        udp.send({"type": "say", "text": "over udp"})
        assert tcp.expect("message")["text"] == "over udp"
        tcp.send({"type": "say", "text": "over tcp"})
        received: dict[str, Any] = udp.expect("message", text="over tcp")
        assert received["from"] == "tom"
        udp.send({"type": "bye"})
        tcp.expect("left", nick="dora")
    finally:
        udp.close()


def test_a_node_that_stops_cleanly_says_its_members_left(nodes: Nodes, connect: Callable[[Server], Client]) -> None:
    a, b = nodes
    alice, bob = connect(a), connect(b)
    alice.join("alice")
    bob.join("bob")
    alice.expect("joined", nick="bob")
    b.stop()
    assert alice.expect("left", nick="bob")["reason"] == "shutdown"
    assert a.service.registry.find("bob") is None


def test_a_topic_set_and_cleared_on_one_node_is_seen_on_the_other(
    nodes: Nodes, connect: Callable[[Server], Client]
) -> None:
    a, b = nodes
    teacher, pupil = connect(a), connect(b)
    teacher.join("teacher")
    teacher.send({"type": "op", "secret": a.service.operators.op_secret})
    teacher.expect("notice", event="op")
    pupil.join("pupil")
    teacher.expect("joined", nick="pupil")
    teacher.send({"type": "topic", "text": "fractions"})
    pupil.expect("notice", event="topic")
    wait_until(lambda: b.service.registry.room("lobby").topic == "fractions")  # type: ignore[union-attr]
    teacher.send({"type": "topic"})
    wait_until(lambda: b.service.registry.room("lobby").topic is None)  # type: ignore[union-attr]


def test_a_timed_mute_ends_with_one_notice_for_a_member_of_the_other_node(
    nodes: Nodes, connect: Callable[[Server], Client]
) -> None:
    a, b = nodes
    teacher, pupil = connect(a), connect(b)
    teacher.join("teacher")
    teacher.send({"type": "op", "secret": a.service.operators.op_secret})
    teacher.expect("notice", event="op")
    pupil.join("pupil")
    teacher.expect("joined", nick="pupil")
    teacher.send({"type": "mute", "nick": "pupil", "minutes": 1})
    wait_until(lambda: "pupil" in b.service.moderation.mutes)
    later = time.time() + 120
    a.service.tick(later)  # both nodes see the mute run out; only the pupil's own node tells it
    b.service.tick(later)
    pupil.expect("notice", event="unmute")
    with pytest.raises(AssertionError):
        pupil.expect("notice", timeout=1.0, event="unmute")
