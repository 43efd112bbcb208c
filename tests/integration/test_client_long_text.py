"""A text over the server's limit, sent by the real chatclient to a real chatsrv, arrives as several messages."""

from __future__ import annotations

import re

import pytest

from tests.integration.test_cli import client, finish, read_until, start_server


@pytest.mark.timeout(40)
def test_a_4500_character_text_arrives_as_three_messages_in_order() -> None:
    """Cut at word boundaries, in order, every word once; the sender is told how many messages it became."""
    server, port = start_server()  # the default rate limit: the parts must fit it
    alice = client(port, "alice")
    read_until(alice, r"you are alice in lobby")
    bob = client(port, "bob")
    try:
        read_until(bob, r"you are bob in lobby")
        read_until(alice, r"bob joined lobby")
        text = " ".join(f"w{number:04d}" for number in range(750)) + "!"
        assert len(text) == 4500
        assert alice.stdin is not None
        alice.stdin.write(text + "\n")
        alice.stdin.flush()
        told = read_until(alice, r"sent as \d+ messages")
        assert "sent as 3 messages" in told[-1]
        seen = read_until(bob, r"w0749!")
        parts = [line for line in seen if re.search(r"<alice> w\d{4}", line)]
        assert len(parts) == 3
        words = [word for line in parts for word in re.findall(r"w\d{4}!?", line)]
        assert words == text.split()
        assert not any("text_invalid" in line for line in told + seen)
    finally:
        for process in (alice, bob):
            if process.stdin:
                process.stdin.close()
        finish(alice, bob, server)
