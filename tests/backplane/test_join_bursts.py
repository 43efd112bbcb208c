"""Joins and leaves that cross nodes are coalesced like local ones (docs/protocol.md §13, docs/scale-out.md)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chatsrv.app import Server
from tests.helpers import Client, wait_until

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
