"""Attack: text-door connections that never give a nick (T2 item 4).

112 door connections from 7 addresses that never typed a nick were all held
(16 per address), a framed newcomer then got server_full, and a blank line
every 5 s kept a door connection open past its 300 s (a timeout per recv).
Now a door connection without a nick is a newcomer (chatsrv.tcp.Newcomers),
counted with the framed port's (one count, the same caps), and the nick has
one deadline from accept.
"""

from __future__ import annotations

import time

import pytest

from chatsrv.app import Server
from tests.conftest import ServerFactory
from tests.helpers import Client
from tests.integration.test_text_door import TextClient


@pytest.fixture
def door(make_server: ServerFactory) -> Server:
    return make_server("--rate", "0", "--text-port", "0", "--max-waiting-per-ip", "2")


def test_door_connections_without_a_nick_count_as_newcomers(door: Server) -> None:
    """Two silent door connections fill the address's cap: a third (door or framed) is server_full."""
    assert door.text is not None
    silent = [TextClient(door.text.port), TextClient(door.text.port)]
    try:
        for client in silent:
            client.expect("nick")  # the greeting: the connection is held and counted
        third = TextClient(door.text.port)
        third.expect("not said hello")
        third.close()
        with Client(door.port) as framed:
            errors = framed.wait_closed()
        assert errors[0]["code"] == "server_full"
        silent[0].line("alice")  # a nick: no longer a newcomer, so a place is free again
        silent[0].expect("alice")
        with Client(door.port) as framed:
            framed.join("bob")
    finally:
        for client in silent:
            client.close()


@pytest.mark.timeout(30)
def test_the_nick_deadline_counts_from_accept_not_per_line(door: Server) -> None:
    """Blank lines every 0.1 s do not keep a door connection open past its deadline."""
    assert door.text is not None
    door.text.hello_timeout = 0.5
    client = TextClient(door.text.port)
    try:
        started = time.monotonic()
        while not client.closed and time.monotonic() - started < 5:
            try:
                client.line("")
            except OSError:
                break
            try:
                client.expect("no nick within", timeout=0.1)
                break
            except AssertionError:
                pass
        assert time.monotonic() - started < 3, "a blank line now and then kept the connection open"
    finally:
        client.close()
