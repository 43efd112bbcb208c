"""Real TCP server on 127.0.0.1:0 with raw protocol clients."""

from __future__ import annotations


def test_three_clients_chat(clients) -> None:
    """Three clients in one room each receive every message, all in the same order."""
    alice, bob, carol = clients(), clients(), clients()
    welcome = alice.join("alice")
    assert welcome["seq"] == 1 and welcome["transport"] == "tcp" and welcome["users"] == ["alice"]
    bob.join("bob")
    carol.join("carol")
    alice.expect("joined", nick="bob")
    alice.expect("joined", nick="carol")
    bob.expect("joined", nick="carol")
    for sender, text in ((alice, "one"), (bob, "two"), (carol, "three")):
        sender.send({"type": "say", "text": text})
    orders = [[member.expect("message")["text"] for _ in range(3)] for member in (alice, bob, carol)]
    assert sorted(orders[0]) == ["one", "three", "two"]
    assert orders[0] == orders[1] == orders[2]  # one order for the whole room


def test_seq_counts_per_connection(clients) -> None:
    """Every payload to a connection carries seq 1, 2, 3 ... in send order."""
    alice = clients()
    seen = [alice.join("alice")["seq"]]
    for number in range(5):
        alice.send({"type": "ping", "id": number})
        seen.append(alice.expect("pong", id=number)["seq"])
    assert seen == [1, 2, 3, 4, 5, 6]
