"""Attack: a ping flood (issue 14, item 5).

Pings were free: never rate-limited, with an `id` as large as a frame, so 200
pings of 60 KB were all echoed (12 MB) under the global lock. Now a ping's
`id` is at most 64 characters, pings have their own budget (docs/protocol.md
§7.1), and refused pings count as errors like any other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from chatsrv.answers import PING_BURST
from chatsrv.app import Server
from tests.conftest import ServerFactory
from tests.helpers import Client
from tests.support.attacks import flood_pings


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    """A server with the default rate limits: the ones a real class runs with."""
    return make_server()


def _flood_and_collect(mallory: Client, id_size: int, seconds: float = 5.0) -> list[dict[str, Any]]:
    """Send 200 pings from `mallory` in a thread while reading every reply; returns the replies."""
    stop = threading.Event()
    flood = threading.Thread(
        target=flood_pings, args=(mallory.sock, stop), kwargs={"per_second": 1000, "seconds": 0.2, "id_size": id_size}
    )
    replies: list[dict[str, Any]] = []
    flood.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not mallory.closed:
            try:
                replies.append(mallory.recv(min(0.5, max(0.01, deadline - time.monotonic()))))
            except AssertionError:
                if not flood.is_alive() and not mallory.inbox:
                    break  # the flood is over and nothing more came for half a second
    finally:
        stop.set()
        flood.join(5)
    assert not flood.is_alive()
    return replies


def test_pings_with_huge_ids_are_not_echoed(clients: Callable[..., Client]) -> None:
    """200 pings with a 60 KB id each get no pong at all, and an honest member is not disturbed."""
    mallory, bob = clients(), clients()
    mallory.join("mallory")
    bob.join("bob")
    replies = _flood_and_collect(mallory, id_size=60_000)
    assert [r for r in replies if r["type"] == "pong"] == []
    assert {r.get("code") for r in replies if r["type"] == "error"} == {"bad_request"}
    bob.send({"type": "ping", "id": "bob"})
    assert bob.expect("pong", id="bob")


def test_a_ping_flood_is_rate_limited(clients: Callable[..., Client]) -> None:
    """200 small pings in 0.2 s get about a burst of pongs; the rest are rate_limited until the flooder is closed."""
    mallory, bob = clients(), clients()
    mallory.join("mallory")
    bob.join("bob")
    replies = _flood_and_collect(mallory, id_size=16)
    pongs = [r for r in replies if r["type"] == "pong"]
    assert PING_BURST <= len(pongs) <= PING_BURST + 5
    assert "rate_limited" in {r.get("code") for r in replies if r["type"] == "error"}
    assert bob.expect("left", nick="mallory")["reason"] == "error"  # refused pings count as errors
