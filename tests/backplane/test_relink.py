"""After a failure every node's lists are true again (issue 20, docs/scale-out.md "When something fails"):
a `left` for a member nobody listed, a short outage of one node's link, a heartbeat that lapsed while linked."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from chatsrv.app import Server
from tests.backplane import stream
from tests.backplane.conftest import Redis
from tests.helpers import Client, gated, wait_until

LOST_BOUND = 8.0  # a dead node's members leave within ttl + heartbeat (4 s): twice that for a loaded machine
redis = pytest.importorskip("redis", reason="the backplane needs the redis package: pip install -e '.[backplane]'")


def until_message(client: Client, text: str) -> list[dict[str, Any]]:
    """Every payload `client` gets up to the message `text` (sent after the rest), that one left out."""
    seen: list[dict[str, Any]] = []
    while True:
        payload = client.recv()
        if payload.get("type") == "message" and payload.get("text") == text:
            return seen
        seen.append(payload)


def room_of(server: Server, nick: str) -> str | None:
    member = server.service.registry.find(nick)
    room = server.service.registry.room_of(member) if member is not None else None
    return room.name if room is not None else None


def test_a_left_for_a_member_nobody_listed_is_not_shown(
    redis_server: Redis, make_server: Callable[..., Server]
) -> None:
    """A `left` read from the stream for a stand-in this node never had reaches no member, coalesced or not."""
    node = make_server("--rate", "0", "--backplane", redis_server.url)
    with Client(node.port) as bob, Client(node.port) as ann:
        bob.join("bob")
        ann.join("ann", features=["batch_joins"])
        bob.expect("joined", nick="ann")
        stream.add(node.backplane.client, stream.event("elsewhere", 1, stream.change("left", "ghost")))
        stream.add(node.backplane.client, stream.event("elsewhere", 2, stream.change("left", "ghost", reason="moved")))
        stream.add(node.backplane.client, stream.event("elsewhere", 3, stream.message("after")))
        assert until_message(bob, "after") == []
        assert until_message(ann, "after") == []
        assert node.service.registry.find("ghost") is None


def cut_link(monkeypatch: pytest.MonkeyPatch, server: Server) -> threading.Event:
    """Node `server` loses its link to Redis at its next read (its connection fails as if cut); it re-links once
    the returned event is set. Its heartbeat key is made to outlive the cut: the other nodes never think it dead."""
    client = server.backplane.client
    stream.alive(client, server.backplane.node, 60)
    gate = gated(monkeypatch, client, "ping")  # the first thing a re-link does
    reading = client.xread

    def cut(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(client, "xread", reading)
        raise redis.ConnectionError("cut by the test")

    monkeypatch.setattr(client, "xread", cut)
    wait_until(lambda: not server.backplane.linked)
    return gate


def test_after_a_short_outage_of_one_node_the_other_learns_who_left_came_or_was_renamed_meanwhile(
    nodes: tuple[Server, Server], connect: Callable[[Server], Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node A is cut off for less than the heartbeat's expiry, so node B never declares it dead; meanwhile a
    member of A quits, one is renamed, one moves to another room and one joins. Once A is back, B's lists are
    A's: B's members see the leave (`lost`), the rename as a leave and a join, the move, the newcomer."""
    a, b = nodes
    alice, carol, erin, frank, bob = connect(a), connect(a), connect(a), connect(a), connect(b)
    for client, nick in ((alice, "alice"), (carol, "carol"), (erin, "erin"), (frank, "frank")):
        client.join(nick)
    bob.join("bob")
    wait_until(lambda: all(b.service.registry.find(nick) for nick in ("alice", "carol", "erin", "frank")))
    with Client(b.port) as watcher:  # in the room frank moves to
        watcher.join("watcher", room="maths")
        wait_until(lambda: a.service.registry.find("watcher") is not None)
        gate = cut_link(monkeypatch, a)
        assert "only people on this server" in alice.expect("notice", event="backplane")["text"]
        carol.send({"type": "bye"})
        erin.send({"type": "nick", "nick": "erina"})
        frank.send({"type": "join", "room": "maths"})
        frank.expect("welcome", room="maths")
        with Client(a.port) as dave:
            dave.join("dave")
            alice.expect("renamed", new="erina")
            alice.expect("joined", nick="dave")
            assert b.service.registry.find("carol") is not None  # B has not heard yet
            gate.set()
            alice.expect("notice", event="backplane")  # everyone hears you again
            alice.send({"type": "say", "text": "back"})
            seen = until_message(bob, "back")
            changes = [(p["type"], p["nick"], p.get("reason")) for p in seen if p["type"] in ("joined", "left")]
            assert ("left", "carol", "lost") in changes
            assert ("left", "erin", "lost") in changes and ("joined", "erina", None) in changes
            assert ("left", "frank", "moved") in changes
            assert ("joined", "dave", None) in changes
            frank.send({"type": "say", "text": "in maths"})
            assert ("joined", "frank") in [(p["type"], p.get("nick")) for p in until_message(watcher, "in maths")]
            for nick in ("carol", "erin"):
                assert b.service.registry.find(nick) is None
            where = {nick: room_of(b, nick) for nick in ("alice", "erina", "frank", "dave")}
            assert where == {"alice": "lobby", "erina": "lobby", "frank": "maths", "dave": "lobby"}


def test_a_node_whose_heartbeat_lapsed_while_linked_is_listed_again_when_it_resumes(
    nodes: tuple[Server, Server], connect: Callable[[Server], Client], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Node A's renewal stalls past its key's expiry: B declares it dead (its members `left`, `lost`). When A
    renews again it notices the lapse and announces its members again: B lists them (an operator as one), its
    members see them `joined`, and A's members are told that the others saw them leave and come back."""
    a, b = nodes
    teacher, alice, bob = connect(a), connect(a), connect(b)
    teacher.join("teacher")
    teacher.send({"type": "op", "secret": a.service.operators.op_secret})
    teacher.expect("notice", event="op", nick="teacher")
    alice.join("alice")
    bob.join("bob")
    wait_until(lambda: b.service.registry.find("alice") and b.service.moderation.is_operator(
        b.service.registry.find("teacher")))  # type: ignore[arg-type]
    gate = gated(monkeypatch, a.backplane, "_beat")  # A's reader stalls at its next renewal
    try:
        assert bob.expect("left", timeout=LOST_BOUND, nick="alice")["reason"] == "lost"
        assert b.service.registry.find("teacher") is None
        with caplog.at_level(logging.WARNING, logger="chatsrv"):
            gate.set()
            joined = {bob.expect("joined", timeout=LOST_BOUND)["nick"] for _ in range(2)}
            assert joined == {"teacher", "alice"}
            notice = alice.expect("notice", event="backplane")
            assert notice["reason"] == "backplane_lapsed"
        assert [r for r in caplog.records if "heartbeat key had expired" in r.getMessage()]
    finally:
        gate.set()
    alice.send({"type": "say", "text": "still chatting"})
    assert bob.expect("message", text="still chatting")["from"] == "alice"
    stand_in = b.service.registry.find("teacher")
    assert stand_in is not None and b.service.moderation.is_operator(stand_in)
    bob.send({"type": "who"})
    users = bob.expect("users")
    assert sorted(users["users"]) == ["alice", "bob", "teacher"] and users["operators"] == ["teacher"]
