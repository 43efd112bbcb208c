"""After a failure every node's lists are true again (issue 20, docs/scale-out.md "When something fails"):
a `left` for a member nobody listed, a short outage of one node's link, a heartbeat that lapsed while linked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatsrv.app import Server
from tests.backplane import stream
from tests.backplane.conftest import Redis
from tests.helpers import Client


def until_message(client: Client, text: str) -> list[dict[str, Any]]:
    """Every payload `client` gets up to the message `text` (sent after the rest), that one left out."""
    seen: list[dict[str, Any]] = []
    while True:
        payload = client.recv()
        if payload.get("type") == "message" and payload.get("text") == text:
            return seen
        seen.append(payload)


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
