"""Joins and leaves that cross nodes are coalesced like local ones (docs/protocol.md §13, docs/scale-out.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest.mock import ANY

import pytest

from chatsrv import backplane
from chatsrv.app import Server
from tests.backplane import stream
from tests.helpers import Client, gated, wait_until

BURST = 30


@pytest.fixture
def node_flags() -> tuple[str, ...]:
    return ("--rate", "0", "--max-per-ip", "0", "--max-waiting-per-ip", "0")


def changes_until(client: Client, key: str, count: int) -> tuple[list[str], int]:
    """The nicks of the next `count` changes of kind `key` as `members` payloads, and how many payloads."""
    nicks: list[str] = []
    payloads = 0
    while len(nicks) < count:
        payload = client.recv()
        assert payload["type"] == "members", payload  # nothing else may come before the changes
        payloads += 1
        nicks += [change[key] for change in payload["changes"]]
    return nicks, payloads


def test_a_burst_on_one_node_reaches_the_other_coalesced_and_in_order_with_messages(
    nodes: tuple[Server, Server], connect: Callable[[Server], Client]
) -> None:
    """BURST joins on node A: a batch_joins member on B gets them as a few `members` payloads, a v1 member on
    B one `joined` each in the same order; the last newcomer's message comes after its join for both, and
    a batch_joins member on A (whose joins come back from the stream too) gets the same, coalesced; the
    newcomers never hear of a join their welcome listed. Their leaves reach B coalesced too."""
    a, b = nodes
    ann, bob, cat = connect(b), connect(b), connect(a)
    ann.join("ann", features=["batch_joins"])
    bob.join("bob")
    cat.join("cat", features=["batch_joins"])
    wait_until(lambda: all(node.service.registry.find(nick) for node in nodes for nick in ("ann", "bob", "cat")))
    newcomers = [connect(a) for _ in range(BURST)]
    for number, newcomer in enumerate(newcomers):
        newcomer.send({"type": "hello", "nick": f"n{number}"})
    welcomes = [newcomer.expect("welcome") for newcomer in newcomers]
    newcomers[-1].send({"type": "say", "text": "made it"})
    expected = [f"n{number}" for number in range(BURST)]
    seen_by_ann = _skip_earlier(ann, "ann", ["bob", "cat"])
    nicks, payloads = changes_until(ann, "joined", BURST - len(seen_by_ann))
    nicks = seen_by_ann + nicks
    assert sorted(nicks) == sorted(expected) and payloads < BURST // 2
    assert ann.expect("message")["text"] == "made it"
    joined_by_bob = [bob.expect("joined")["nick"] for _ in range(BURST + 1)][1:]  # cat's first
    assert joined_by_bob == nicks  # one each, in the cluster's one order
    assert bob.expect("message")["text"] == "made it"
    on_a = _skip_earlier(cat, "cat", ["ann", "bob"])
    rest, _ = changes_until(cat, "joined", BURST - len(on_a))
    assert on_a + rest == nicks
    assert cat.expect("message")["text"] == "made it"
    # Each newcomer (v1, on A) hears once of each later one, and never of those its welcome listed.
    for number, newcomer in enumerate(newcomers):
        place = nicks.index(f"n{number}")
        assert set(nicks[:place]) <= set(welcomes[number]["users"])
        assert [newcomer.expect("joined")["nick"] for _ in nicks[place + 1 :]] == nicks[place + 1 :]
        assert newcomer.recv().get("text") == "made it"
    for newcomer in newcomers:
        newcomer.close()
    left, payloads = changes_until(ann, "left", BURST)
    assert sorted(left) == sorted(expected) and payloads < BURST // 2


def _skip_earlier(client: Client, own: str, earlier: list[str]) -> list[str]:
    """Read `members` payloads until one names a newcomer; returns the newcomers it named (the earlier
    members' joins, which may come alone or with them, are skipped)."""
    while True:
        payload = client.recv()
        assert payload["type"] == "members", payload
        nicks = [change["joined"] for change in payload["changes"] if "joined" in change]
        newcomers = [nick for nick in nicks if nick not in earlier and nick != own]
        if newcomers:
            return newcomers


def _changes_naming(client: Client, nick: str) -> list[dict[str, Any]]:
    """Skip `members` payloads until one names `nick`; its changes."""
    while True:
        payload = client.expect("members")
        if any(nick in change.values() for change in payload["changes"]):
            return list(payload["changes"])


def test_a_member_lost_while_catching_up_leaves_coalesced_like_any_other(
    nodes: tuple[Server, Server], connect: Callable[[Server], Client]
) -> None:
    """Node B catches up (chatsrv.nodesync `_catch_up`) and finds that a member of another node left unseen:
    its `left` (lost) reaches a batch_joins member as `members`, a v1 member as `left`, before the notice."""
    _, b = nodes
    ann, bob = connect(b), connect(b)
    ann.join("ann", features=["batch_joins"])
    bob.join("bob")
    wait_until(lambda: not b.backplane._pending)  # bob's join is read back: dave's comes after it, not with it
    stream.alive(b.backplane.client, "elsewhere")
    joined = stream.event("elsewhere", 1, stream.change("joined", "dave"))
    stream.add(b.backplane.client, {**joined, "t": "tcp", "a": "10.0.0.9"})
    assert _changes_naming(ann, "dave")[-1] == {"joined": "dave"}
    bob.expect("joined", nick="dave")
    b.backplane._catch_up(backplane.EVENTS, b.backplane._last_id)  # dave is in no presence hash: lost
    assert ann.recv() == {**members_payload("lobby", [{"left": "dave", "reason": "lost"}]), "seq": ANY, "ts": ANY}
    assert ann.recv()["event"] == "backplane"
    assert bob.recv()["type"] == "left" and bob.recv()["event"] == "backplane"


def test_own_joins_not_read_back_when_the_link_is_lost_are_coalesced_like_any_other(
    nodes: tuple[Server, Server], connect: Callable[[Server], Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Carl's `joined` is published but not read back when the link is lost: it is delivered then, as a
    `members` to a batch_joins member and a `joined` to a v1 member, not hidden from nor doubled for anyone."""
    _, b = nodes
    ann, bob = connect(b), connect(b)
    ann.join("ann", features=["batch_joins"])
    bob.join("bob")
    ann.expect("members")  # bob's join
    gate = gated(monkeypatch, b.backplane.client, "pipeline")
    try:
        with Client(b.port) as carl:
            carl.join("carl")
            wait_until(lambda: b.backplane._pending and not b.backplane._queue)  # the sender holds it
            b.backplane._link_lost(RuntimeError("a test cut the link"))
            assert ann.recv() == {**members_payload("lobby", [{"joined": "carl"}]), "seq": ANY, "ts": ANY}
            assert bob.recv()["type"] == "joined"
            assert carl.recv()["event"] == "backplane"  # its own join is not repeated to it
    finally:
        gate.set()


def members_payload(room: str, changes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "members", "room": room, "changes": changes}
