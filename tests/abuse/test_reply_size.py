"""Attack: replies larger than announced (issue 14, item 6).

`welcome`, `users` and `rooms` grew with the class and could exceed the
`max_frame` (TCP) or datagram limit (UDP) the server announced: a client that
trusts the announcement refuses the frame, and over UDP anything over 65,507
bytes cannot be sent at all. Now each is trimmed to fit, with `truncated`
saying how many entries were left out (docs/protocol.md §8). The unit tests
in tests/unit/test_service_hardening.py do the same with 5,000 members.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chatsrv.app import Server
from lanchat.wire import FrameDecoder
from tests.conftest import ServerFactory
from tests.helpers import Client, UDPClient

LIMIT = 512
MEMBERS = 30


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    """A server announcing 512-byte frames and datagrams, with no per-address limit (every test client is local)."""
    return make_server("--rate", "0", "--max-frame", str(LIMIT), "--max-datagram", str(LIMIT), "--max-per-ip", "0")


def _nick(n: int) -> str:
    return f"member{n:02d}".ljust(24, "x")


def test_users_and_welcome_fit_max_frame_over_tcp(clients: Callable[..., Client]) -> None:
    """With 30 members of 24-character nicks, welcome, users and rooms each fit 512 bytes and say what they left out."""
    for n in range(MEMBERS):
        clients().join(_nick(n))
    newcomer = clients()
    newcomer.decoder = FrameDecoder(LIMIT)  # trusts the announcement: a larger frame is an error
    welcome = newcomer.join("newcomer")
    assert welcome["max_frame"] == LIMIT
    assert welcome["truncated"] == MEMBERS + 1 - len(welcome["users"]) > 0
    newcomer.send({"type": "who"})
    users = newcomer.expect("users")
    assert users["truncated"] == MEMBERS + 1 - len(users["users"]) > 0
    newcomer.send({"type": "rooms"})
    assert newcomer.expect("rooms")["rooms"] == [{"name": "lobby", "users": MEMBERS + 1}]
    newcomer.send({"type": "ping", "id": "still here"})
    assert newcomer.expect("pong", id="still here")
    assert newcomer.decoder.error is None


def test_users_and_welcome_fit_the_datagram_over_udp(
    clients: Callable[..., Client], udp_clients: Callable[..., UDPClient]
) -> None:
    """A UDP newcomer among 30 members gets a welcome and a users reply within the 512-byte datagram limit."""
    for n in range(MEMBERS):
        clients().join(_nick(n))
    newcomer = udp_clients()
    welcome = newcomer.join("newcomer")
    assert welcome["truncated"] == MEMBERS + 1 - len(welcome["users"]) > 0
    newcomer.send({"type": "who"})
    users = newcomer.expect("users")
    assert users["truncated"] == MEMBERS + 1 - len(users["users"]) > 0
    assert newcomer.datagrams and all(len(datagram) <= LIMIT for datagram in newcomer.datagrams)
