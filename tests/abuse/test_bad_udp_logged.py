"""Datagrams that are no lanchat payload reach the teacher's console as one readable line, a few per address."""

from __future__ import annotations

import logging
import struct

import pytest

from chatsrv.app import Server
from chatsrv.mistakes import BURST
from tests.conftest import ServerFactory
from tests.helpers import UDPClient, wait_until


def _lines(caplog: pytest.LogCaptureFixture, marker: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if marker in record.getMessage()]


@pytest.fixture
def udp_server(make_server: ServerFactory, caplog: pytest.LogCaptureFixture) -> Server:
    caplog.set_level(logging.WARNING, logger="chatsrv")
    return make_server("--rate", "0")


def test_a_bare_hello_datagram_is_logged_with_address_and_excerpt(
    udp_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """`sendto(b"hello")` gets no reply (3x rule) but a console line naming the peer and showing what it sent."""
    client = UDPClient(udp_server.port)
    try:
        client.send_raw(b"hello")
        line = wait_until(lambda: _lines(caplog, "not a lanchat payload"))[0]
        host, port = client.address
        assert f"from {host}:{port}" in line
        assert "b'hello' (5 bytes)" in line
        assert '{"type": "hello", "nick": "NAME"}' in line
        assert client.recv_datagram(timeout=0.2) is None
    finally:
        client.close()


def test_a_gbk_datagram_is_logged_printably(udp_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """Bytes that are not UTF-8 appear as \\xNN escapes, never raw on the console."""
    client = UDPClient(udp_server.port)
    try:
        client.send_raw("你好".encode("gbk") + b"\x1b[2J")
        line = wait_until(lambda: _lines(caplog, "not a lanchat payload"))[0]
        assert "b'\\xc4\\xe3\\xba\\xc3\\x1b[2J' (8 bytes)" in line
        assert line.isprintable()
    finally:
        client.close()


def test_a_looping_client_gets_a_few_lines_not_a_flood(udp_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """Fifty bad datagrams from one address make BURST lines; another address still gets its own."""
    first = UDPClient(udp_server.port)
    second = UDPClient(udp_server.port, source="127.0.0.2")
    try:
        for number in range(50):
            first.send_raw(struct.pack("i", number) + b"hi")
        first.send({"type": "hello", "nick": "alice"})  # its challenge comes after the fifty were handled
        first.expect("challenge")
        second.send_raw(b"GET / HTTP/1.0\r\n")
        wait_until(lambda: len(_lines(caplog, "not a lanchat payload")) == BURST + 1)
        lines = _lines(caplog, "not a lanchat payload")
        assert all("from 127.0.0.1:" in line for line in lines[:BURST])
        assert "from 127.0.0.2:" in lines[BURST]
    finally:
        first.close()
        second.close()
