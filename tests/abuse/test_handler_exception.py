"""Attack: a payload that hits a bug in a handler (issue 14, item 2).

Any exception while handling one payload must become an `error` with code
`internal_error` for that payload only (docs/protocol.md §7.3): the
connection or UDP peer stays, and the log gets one traceback per address per
window, however often the bug is hit. The bug is injected by replacing the
`stats` handler, since `1e999` (the original trigger) is now refused at decode.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chatsrv.app import Server
from chatsrv.messages import Stats
from chatsrv.session import Session
from tests.conftest import ServerFactory


def _break_stats(server: Server) -> None:
    def broken(session: Session, message: Any, now: float) -> None:
        raise ValueError("an injected bug")

    server.service._handlers[Stats] = broken


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.exc_info and "internal error" in record.getMessage()]


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    """A server (rate limit off) whose `stats` handler raises."""
    started = make_server("--rate", "0")
    _break_stats(started)
    return started


def test_a_raising_handler_over_tcp_answers_internal_error_and_the_connection_stays(
    clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten payloads that raise get ten internal_errors, one logged traceback, and the member can still chat."""
    caplog.set_level(logging.INFO, logger="chatsrv")
    mallory, bob = clients(), clients()
    mallory.join("mallory")
    bob.join("bob")
    for _ in range(10):
        mallory.send({"type": "stats"})
    codes = [mallory.expect("error")["code"] for _ in range(10)]
    assert codes == ["internal_error"] * 10
    mallory.send({"type": "say", "text": "still here"})
    assert bob.expect("message", **{"from": "mallory"})["text"] == "still here"
    assert len(_tracebacks(caplog)) == 1


def test_a_raising_handler_over_udp_answers_internal_error_and_the_peer_stays(
    udp_clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A UDP peer whose datagrams hit the bug gets internal_error for each, one traceback is logged, and it stays."""
    caplog.set_level(logging.INFO, logger="chatsrv")
    mallory, bob = udp_clients(), udp_clients()
    mallory.join("mallory")
    bob.join("bob")
    for _ in range(10):
        mallory.send({"type": "stats"})
    codes = [mallory.expect("error")["code"] for _ in range(10)]
    assert codes == ["internal_error"] * 10
    mallory.send({"type": "say", "text": "still here"})
    assert bob.expect("message", **{"from": "mallory"})["text"] == "still here"
    assert len(_tracebacks(caplog)) == 1
