"""Attack: a join/leave storm from one address (T2 item 1).

16 threads connecting, saying hello and bye in a loop opened 13,588 sessions
in 10 s: an honest member got 25,000 joined/left lines, and the log and the
store grew with every one. Now each address (chatsrv.access.address_key) has
a budget for new sessions (a burst of SESSION_BURST, then --session-rate per
second), refused before hello with a fatal `rate_limited` (docs/protocol.md §7.1).
"""

from __future__ import annotations

import logging

import pytest

from chatsrv.app import Server
from chatsrv.mistakes import BURST
from chatsrv.service import SESSION_BURST, ChatService
from lanchat.wire import ProtocolError, encode_frame, encode_payload
from tests.conftest import ServerFactory
from tests.helpers import Client
from tests.support.fakes import Clock, FakeOutbox


def _open(service: ChatService, host: str) -> None:
    session = service.connect(FakeOutbox(), (host, 40000), "tcp", 65536)
    service.disconnect(session, "lost")


def test_a_burst_then_one_per_second_per_address() -> None:
    clock = Clock()
    service = ChatService(clock=clock, session_rate=1.0)
    for _ in range(SESSION_BURST):
        _open(service, "10.0.0.1")
    with pytest.raises(ProtocolError) as refused:
        _open(service, "10.0.0.1")
    assert refused.value.code == "rate_limited" and refused.value.fatal and "10.0.0.1" in refused.value.message
    _open(service, "10.0.0.2")  # another address has its own budget
    clock.now += 1.0
    _open(service, "10.0.0.1")  # a second later, one more
    with pytest.raises(ProtocolError):
        _open(service, "10.0.0.1")


def test_off_with_rate_zero() -> None:
    service = ChatService(clock=Clock(), session_rate=0.0)
    for _ in range(SESSION_BURST * 3):
        _open(service, "10.0.0.1")


@pytest.fixture
def limited_server(make_server: ServerFactory) -> Server:
    return make_server()  # the default flags: the session budget is on


@pytest.mark.timeout(60)
def test_a_storm_from_one_address_reaches_an_honest_member_a_few_times(
    limited_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """3 x SESSION_BURST hello/bye rounds from 127.0.0.41: alice sees at most about SESSION_BURST joins,
    and the console a few refusal lines, not one per connection."""
    caplog.set_level(logging.INFO, logger="chatsrv")
    refused = 0
    with Client(limited_server.port) as alice:
        alice.join("alice")
        for round_ in range(3 * SESSION_BURST):
            with Client(limited_server.port, source="127.0.0.41") as storm:
                hello = {"type": "hello", "nick": f"x{round_}"}
                try:
                    storm.send_raw(encode_frame(encode_payload(hello)) + encode_frame(encode_payload({"type": "bye"})))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused and closed before the hello arrived
                received = storm.wait_closed()
                refused += any(payload.get("code") == "rate_limited" for payload in received)
        assert refused >= 3 * SESSION_BURST - SESSION_BURST - 3  # a few may be earned back while the test runs
        alice.send({"type": "ping", "id": "end"})
        joins = 0
        while (payload := alice.recv())["type"] != "pong":
            joins += payload["type"] == "joined"
    assert joins <= SESSION_BURST + 3
    refusal_lines = [r for r in caplog.records if r.levelno >= logging.INFO and "new connections" in r.getMessage()]
    assert 1 <= len(refusal_lines) <= BURST
