"""A burst of joins against a real server (docs/protocol.md §13), and the handler threads behind it."""

from __future__ import annotations

import threading

from tests.helpers import Client


def test_a_burst_reaches_both_kinds_of_member_in_order(clients) -> None:
    """Eight quick joins: the batched member's `members` name all eight, the v1 member gets eight `joined`
    in the same order; the last newcomer's message comes after its join for both."""
    ann, bob = clients(), clients()
    assert ann.join("ann", features=["batch_joins"])["features"] == ["batch_joins"]
    bob.join("bob")
    ann.expect("members")  # bob's join
    newcomers = [clients() for _ in range(8)]
    for number, newcomer in enumerate(newcomers):
        newcomer.send({"type": "hello", "nick": f"n{number}"})
    for newcomer in newcomers:
        newcomer.expect("welcome")
    newcomers[-1].send({"type": "say", "text": "made it"})
    seen: list[str] = []
    while len(seen) < 8:
        payload = ann.recv()
        assert payload["type"] == "members", payload  # nothing else may come before the joins
        seen += [change["joined"] for change in payload["changes"]]
    assert sorted(seen) == [f"n{number}" for number in range(8)]  # in the order the server took them
    assert ann.expect("message")["text"] == "made it"
    assert [bob.recv()["nick"] for _ in range(8)] == seen
    assert bob.expect("message")["text"] == "made it"


def test_handler_threads_are_daemons_that_stop_joins(make_server) -> None:
    """Each connection's thread is a daemon thread (no per-accept scan of all threads) and stop() waits for it."""
    server = make_server("--rate", "0")
    before = set(threading.enumerate())
    with Client(server.tcp.port) as alice, Client(server.tcp.port) as bob:
        alice.join("alice")
        bob.join("bob")
        handlers = [thread for thread in threading.enumerate() if thread not in before]
        assert len(handlers) >= 2 and all(thread.daemon for thread in handlers)
        server.stop()
        assert not any(thread.is_alive() for thread in handlers)
