"""Two nodes' members with look-alike nicks on a third node (chatsrv.standins `_make_way`, chatsrv.rooms).

Nicks are unique across nodes by their look-alike key, but a node can still hear of two at once: node X's
"bob" is gone (its node stopped answering, so Redis let node Y's "b0b" take the key), and this node reads
Y's join before its heartbeat check has noticed X is gone. The stale one leaves (lost); "b0b" is listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatsrv.app import Server
from tests.backplane import stream
from tests.backplane.conftest import Redis
from tests.helpers import Client


def test_a_look_alike_from_another_node_replaces_the_stale_stand_in_and_its_late_leave_removes_nobody(
    redis_server: Redis, make_server: Callable[..., Server]
) -> None:
    node = make_server("--rate", "0", "--backplane", redis_server.url)
    client = node.backplane.client
    for other in ("x", "y"):
        stream.alive(client, other)  # so the heartbeat check does not forget them meanwhile
    with Client(node.port) as carl:
        carl.join("carl")
        stream.add(client, {**stream.event("x", 1, stream.change("joined", "bob")), "t": "tcp", "a": "10.0.0.1"})
        stream.add(client, {**stream.event("y", 1, stream.change("joined", "b0b")), "t": "tcp", "a": "10.0.0.2"})
        stream.add(client, stream.event("x", 2, stream.change("left", "bob", reason="quit")))  # late, from x
        stream.add(client, stream.event("y", 2, stream.message("still here", nick="b0b")))
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] != "message":
            seen.append(carl.recv())
        assert [(p["type"], p["nick"], p.get("reason")) for p in seen[:3]] == [
            ("joined", "bob", None),
            ("left", "bob", "lost"),
            ("joined", "b0b", None),
        ]
        registry = node.service.registry
        with registry.lock:
            lobby = registry.room("lobby")
            assert lobby is not None and lobby.nicks() == ["b0b", "carl"]
            held = registry.find("bob")
            assert held is not None and held.nick == "b0b" and list(lobby.remote.values()) == [held]
