"""TCP frames refused for a broken header reach the teacher's console as one readable line, a few per address."""

from __future__ import annotations

import logging
import struct

import pytest

from chatsrv.app import Server
from chatsrv.mistakes import BURST
from tests.conftest import ServerFactory
from tests.helpers import Client, dumps, wait_until


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if "framing mistake" in record.getMessage()]


@pytest.fixture
def tcp_server(make_server: ServerFactory, caplog: pytest.LogCaptureFixture) -> Server:
    caplog.set_level(logging.WARNING, logger="chatsrv")
    return make_server("--rate", "0")


def test_a_native_order_header_is_logged_with_the_peer(tcp_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """`struct.pack('<i', n)` (a tutorial's native order) gets a warning naming the address and the server's reason."""
    body = dumps({"type": "hello", "nick": "alice"})
    with Client(tcp_server.port) as client:
        client.send_raw(struct.pack("<i", len(body)) + body)
        errors = client.wait_closed()
        host, port = client.sock.getsockname()
    assert errors[0]["code"] == "frame_too_large"
    line = wait_until(lambda: _lines(caplog))[0]
    assert f"framing mistake from {host}:{port}: " in line
    assert errors[0]["message"] in line


def test_a_text_line_at_the_tcp_port_is_logged(tcp_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """`nc` typing `hello` at the framed port shows up as a framing mistake."""
    with Client(tcp_server.port) as client:
        client.send_raw(b"hello\n")
        client.wait_closed()
    line = wait_until(lambda: _lines(caplog))[0]
    assert line.endswith("; the read began b'hello\\n' (6 bytes)")


def test_a_reconnecting_client_gets_a_few_lines_per_interval(
    tcp_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten broken connections in a row from one address make BURST lines, not ten (and nothing else at info)."""
    for _ in range(10):
        with Client(tcp_server.port) as client:
            client.send_raw(b"GET / HTTP/1.0\r\n\r\n")
            client.wait_closed()
    wait_until(lambda: len(_lines(caplog)) >= BURST)
    assert len(_lines(caplog)) == BURST
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "protocol error from" in r.getMessage()]
