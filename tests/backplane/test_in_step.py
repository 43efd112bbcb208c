"""Two nodes stay in step (chatsrv.nodesync): closed rooms, operators, ids in an outage, a node that fell behind."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from chatsrv import backplane
from chatsrv.app import Server
from tests.backplane.conftest import Redis
from tests.helpers import Client, gated, wait_until

Nodes = tuple[Server, Server]




def operator(server: Server, client: Client, nick: str, room: str | None = None) -> None:
    client.join(nick, room=room)
    client.send({"type": "op", "secret": server.service.operators.op_secret})
    client.expect("notice", event="op", nick=nick)


def room_of(server: Server, nick: str) -> str | None:
    member = server.service.registry.find(nick)
    room = server.service.registry.room_of(member) if member is not None else None
    return room.name if room is not None else None


def test_a_room_closed_on_one_node_is_closed_on_the_other(nodes: Nodes, connect: Callable[[Server], Client]) -> None:
    a, b = nodes
    teacher, near, far = connect(a), connect(a), connect(b)
    operator(a, teacher, "teacher")
    near.join("near", room="maths")
    far.join("far", room="maths")
    wait_until(lambda: a.service.registry.find("far") is not None and b.service.registry.find("near") is not None)
    teacher.send({"type": "close_room", "room": "maths"})
    teacher.expect("notice", event="close_room", text="you closed maths and deleted its history")
    assert far.expect("notice", event="close_room")["by"] == "teacher"
    assert far.expect("welcome")["room"] == "lobby"  # moved by its own node, as `near` is by its node
    # The operator's own node moves its members before the notice is read back from the stream: they hear it
    # first all the same (as on one node), else they land in the lobby without a word of why.
    assert near.expect("notice", event="close_room")["by"] == "teacher"
    assert near.expect("welcome")["room"] == "lobby"
    for server in (a, b):
        wait_until(lambda server=server: server.service.registry.room("maths") is None
                   and [room_of(server, nick) for nick in ("near", "far")] == ["lobby", "lobby"])


def test_an_operator_of_the_other_node_is_an_operator_here(
    nodes: Nodes, connect: Callable[[Server], Client], redis_server: Redis, make_server: Callable[..., Server]
) -> None:
    a, b = nodes
    teacher_a, teacher_b = connect(a), connect(b)
    operator(a, teacher_a, "anna")
    operator(b, teacher_b, "bert")
    teacher_a.expect("notice", event="op", nick="bert")
    wait_until(lambda: a.service.moderation.is_operator(a.service.registry.find("bert")))  # type: ignore[arg-type]
    teacher_a.send({"type": "kick", "nick": "bert"})
    assert "operators cannot be kicked" in teacher_a.expect("error")["message"]
    teacher_a.send({"type": "mute", "nick": "bert"})
    assert "operators cannot be muted" in teacher_a.expect("error")["message"]
    teacher_a.send({"type": "who"})
    assert teacher_a.expect("users")["operators"] == ["anna", "bert"]  # the client shows them as @anna, @bert
    assert teacher_b.closed is False
    # A node that links later learns it from the presence records.
    c = make_server("--rate", "0", "--backplane", redis_server.url)
    wait_until(lambda: (c.service.registry.find("bert") is not None
                        and c.service.moderation.is_operator(c.service.registry.find("bert"))))  # type: ignore[arg-type]
    with Client(c.port) as newcomer:
        assert newcomer.join("newcomer")["operators"] == ["anna", "bert"]
    # An operator that leaves is forgotten with its stand-in.
    teacher_b.send({"type": "bye"})
    wait_until(lambda: a.service.registry.find("bert") is None)
    assert [s.nick for s in a.service.moderation.operators] == ["anna"]


def say(client: Client, text: str) -> int:
    """Say `text`; the id of the message as it comes back to its sender."""
    client.send({"type": "say", "text": text})
    message_id: int = client.expect("message", text=text)["id"]
    return message_id


def test_message_ids_stay_unique_while_redis_is_away_and_after(
    nodes: Nodes, connect: Callable[[Server], Client], redis_server: Redis
) -> None:
    a, b = nodes
    alice, bob = connect(a), connect(b)
    alice.join("alice")
    bob.join("bob")
    alice.expect("joined", nick="bob")
    ids = [say(alice, "x"), say(bob, "y")]
    redis_server.stop()
    alice.expect("notice", event="backplane")
    bob.expect("notice", event="backplane")
    for n in range(3):
        ids += [say(alice, f"a{n}"), say(bob, f"b{n}")]
    redis_server.start()  # empty: the nodes tell the new counter where to go on from
    wait_until(lambda: a.backplane.linked and b.backplane.linked, timeout=15)
    for n in range(3):
        ids += [say(alice, f"c{n}"), say(bob, f"d{n}")]
    assert len(ids) == len(set(ids)) == 14


def test_a_node_behind_the_trimmed_stream_catches_up_and_says_so(
    nodes: Nodes, connect: Callable[[Server], Client], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Node B stops reading while node A writes more than the (tiny) stream keeps; B re-reads the state."""
    a, b = nodes
    monkeypatch.setattr(backplane, "STREAM_MAXLEN", 4)
    monkeypatch.setattr(backplane, "READ_COUNT", 2)
    a.backplane.client.config_set("stream-node-max-entries", 1)  # trimming by single entries
    teacher, bob = connect(a), connect(b)
    operator(a, teacher, "teacher")
    bob.join("bob")
    teacher.expect("joined", nick="bob")
    gate = gated(monkeypatch, b.backplane.client, "xread")
    try:
        teacher.send({"type": "mute", "nick": "bob"})
        teacher.expect("notice", event="mute")
        with Client(a.port) as carol:
            carol.join("carol")
            for n in range(8):  # each waits for its echo: one stream entry each
                teacher.send({"type": "say", "text": f"m{n}"})
                teacher.expect("message", text=f"m{n}")
            assert a.backplane.client.xlen(backplane.EVENTS) < 8
            with caplog.at_level(logging.WARNING, logger="chatsrv"):
                gate.set()
                notice = bob.expect("notice", event="backplane")
                assert "missed" in notice["text"]
            assert b.service.registry.find("carol") is not None  # learnt from the presence records
            assert "bob" in b.service.moderation.mutes  # learnt from the moderation key
            assert [r for r in caplog.records if "fell behind the stream" in r.getMessage()]
            teacher.send({"type": "say", "text": "after"})
            assert bob.expect("message")["text"] == "after"  # reading goes on from the end
    finally:
        gate.set()


def test_a_spent_reserve_of_ids_is_said_once(
    redis_server: Redis, make_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from chatsrv import nodesync

    monkeypatch.setattr(nodesync, "OUTAGE_IDS", 2)
    a = make_server("--rate", "0", "--backplane", redis_server.url)
    with Client(a.port) as alice:
        alice.join("alice")
        redis_server.stop()
        alice.expect("notice", event="backplane")
        with caplog.at_level(logging.WARNING, logger="chatsrv"):
            ids = [say(alice, f"t{n}") for n in range(4)]
        spent = [r for r in caplog.records if "kept for an outage are spent" in r.getMessage()]
        assert len(spent) == 1
        assert ids == list(range(ids[0], ids[0] + 4))  # the reserve first, then on above it


def test_catching_up_keeps_a_moderation_change_of_its_own_not_sent_yet(
    nodes: Nodes, connect: Callable[[Server], Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The moderation key in Redis is older than an unmute node B made and has not sent yet: B keeps its own."""
    a, b = nodes
    teacher_a, teacher_b, bob, carol = connect(a), connect(b), connect(b), connect(b)
    operator(a, teacher_a, "anna")
    operator(b, teacher_b, "bert")
    bob.join("bob")
    carol.join("carol")
    teacher_a.expect("joined", nick="carol")
    teacher_a.send({"type": "mute", "nick": "bob"})
    wait_until(lambda: "bob" in b.service.moderation.mutes)
    wait_until(lambda: b.backplane.client.get("lanchat:moderation") is not None)
    gate = gated(monkeypatch, b.backplane.client, "pipeline")
    try:
        carol.send({"type": "say", "text": "the send thread waits with this"})
        # Published, and taken by the send thread, which now waits at the gate.
        wait_until(lambda: b.backplane._pending and not b.backplane._queue)
        teacher_b.send({"type": "unmute", "nick": "bob"})
        wait_until(lambda: "bob" not in b.service.moderation.mutes and b.backplane._queue)
        b.backplane._catch_up(backplane.EVENTS, b.backplane._last_id)
        assert "bob" not in b.service.moderation.mutes
    finally:
        gate.set()
    wait_until(lambda: "bob" not in a.service.moderation.mutes)  # and it reaches the other node


def test_a_stream_trimmed_past_where_a_slow_read_began_but_not_past_what_it_applied_is_not_behind(
    redis_server: Redis, make_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full read is applied at the members' pace; meanwhile the stream is trimmed past where that read began,
    but not past the entries it applied. Nothing was lost: no catch-up, no notice, every message arrives."""
    from tests.backplane import stream

    node = make_server("--rate", "0", "--backplane", redis_server.url)
    client = node.backplane.client
    monkeypatch.setattr(backplane, "READ_COUNT", 2)
    with Client(node.port) as bob:
        bob.join("bob")
        wait_until(lambda: not node.backplane._pending)  # its join is read back: where the next read begins
        held, gate = threading.Event(), threading.Event()
        reading = client.xread

        def xread(*args: Any, **kwargs: Any) -> Any:
            held.set()
            gate.wait(10)
            return reading(*args, **kwargs)

        paused: list[int] = []

        def pause() -> None:  # after the first entry of the read: three more, and the stream keeps five
            if not paused:
                paused.append(1)
                for n in range(4, 7):
                    entry = stream.event("elsewhere", n, stream.message(f"m{n}"))
                    client.xadd(backplane.EVENTS, entry, maxlen=5, approximate=False)

        monkeypatch.setattr(client, "xread", xread)
        monkeypatch.setattr(node.backplane, "pause", pause)
        try:
            wait_until(held.is_set)  # the reader waits at the gate: the next read takes m1 and m2 at once
            for n in range(1, 4):
                stream.add(client, stream.event("elsewhere", n, stream.message(f"m{n}")))
            gate.set()
            seen: list[dict[str, Any]] = []
            while not seen or seen[-1].get("text") != "m6" and seen[-1].get("event") != "backplane":
                seen.append(bob.recv())
        finally:
            gate.set()
        assert [payload.get("text") for payload in seen] == [f"m{n}" for n in range(1, 7)]
        assert paused
