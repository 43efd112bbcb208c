"""Attack: datagrams forged from a registered UDP member's address and port (issue 15, item 1).

A second socket cannot send from another socket's port on loopback, so the
forger builds whole IPv4 packets (IP header and UDP header by hand, with
the victim's 127.0.0.1:port as the source) and sends them on a raw socket
(`AF_INET, SOCK_RAW, IPPROTO_RAW`: root, or CAP_NET_RAW). Before the session
token, such packets made the operator announce, kick a student, make itself
say things, and leave; a forged `who` made the server send the victim a reply
200 times its size. Now every one of them is dropped (docs/protocol.md §8).
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from lanchat.wire import encode_payload
from tests.helpers import Client, UDPClient, wait_until

OP_SECRET = "forge-test-secret"
_ids = itertools.count(0x4C00)


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the ones' complement of the ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def forged_packet(source: tuple[str, int], destination: tuple[str, int], payload: bytes) -> bytes:
    """An IPv4 packet carrying one UDP datagram from `source` to `destination`, whoever sends it."""
    source_ip, destination_ip = socket.inet_aton(source[0]), socket.inet_aton(destination[0])
    udp_length = 8 + len(payload)
    pseudo_header = source_ip + destination_ip + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_length)
    header = struct.pack("!HHHH", source[1], destination[1], udp_length, 0)
    checksum = internet_checksum(pseudo_header + header + payload) or 0xFFFF  # 0 would mean "no checksum"
    udp = struct.pack("!HHHH", source[1], destination[1], udp_length, checksum) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), next(_ids), 0, 64, socket.IPPROTO_UDP, 0, source_ip, destination_ip
    )
    ip = ip[:10] + struct.pack("!H", internet_checksum(ip)) + ip[12:]
    return ip + udp


@pytest.fixture
def raw_socket() -> Iterator[socket.socket]:
    """A raw IPv4 socket that sends packets with our own IP header; skipped without the right to open one."""
    if os.geteuid() != 0:
        pytest.skip("forging a source address needs a raw socket: run as root (or with CAP_NET_RAW)")
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except PermissionError:
        pytest.skip("this machine refuses raw sockets even to root (no CAP_NET_RAW)")
    with sock:
        yield sock


def until_pong(client: Client | UDPClient, marker: str) -> list[dict[str, Any]]:
    """Everything the client receives before the pong to its ping `marker` (a barrier)."""
    client.send({"type": "ping", "id": marker})
    received = []
    while True:
        payload = client.recv()
        if payload.get("type") == "pong" and payload.get("id") == marker:
            return received
        received.append(payload)


def test_forged_datagrams_from_the_operators_address_are_dropped(make_server, raw_socket: socket.socket) -> None:
    """Forged say, announce, kick, who and bye from a UDP operator's address: no effect, no reply; it goes on."""
    server = make_server("--rate", "0", "--op-secret", OP_SECRET)
    assert server.udp is not None
    teacher = UDPClient(server.udp.port)
    bob = Client(server.port)
    try:
        teacher.join("teacher")
        teacher.send({"type": "op", "secret": OP_SECRET})
        teacher.expect("notice", event="op")
        bob.join("bob")
        teacher.expect("joined", nick="bob")
        victim = server.udp.peer(teacher.address)
        assert victim is not None
        forged = [
            encode_payload({"type": "say", "text": "homework is cancelled", "seq": teacher.seq + 1}),
            encode_payload({"type": "announce", "text": "the test is tomorrow"}),
            encode_payload({"type": "kick", "nick": "bob", "reason": "forged"}),
            encode_payload({"type": "who"}),
            encode_payload({"type": "rooms"}),
            encode_payload({"type": "bye"}),
        ]
        for payload in forged:
            raw_socket.sendto(forged_packet(teacher.address, ("127.0.0.1", server.udp.port), payload), ("127.0.0.1", 0))
        # Every forged datagram reached the server and was counted as dropped.
        wait_until(lambda: victim.extra["stats"]["bad_token"] == len(forged))

        # Nothing came back to the victim's address: not the who, not an error (the barrier is its own ping).
        assert until_pong(teacher, "after-forgery") == []
        # Bob saw no message, no announcement, no kick, no departure.
        seen_by_bob = until_pong(bob, "after-forgery")
        assert [p for p in seen_by_bob if p["type"] in ("message", "notice", "left", "renamed")] == []
        assert not bob.closed

        # The real teacher is still there, still an operator, and is heard.
        assert server.udp.peer(teacher.address) is victim and victim.joined
        teacher.send({"type": "say", "text": "the real teacher"})
        assert bob.expect("message")["text"] == "the real teacher"
        teacher.send({"type": "stats"})
        assert teacher.expect("stats")["bad_token"] == len(forged)
        teacher.send({"type": "bye"})
        wait_until(lambda: server.udp.peer_count() == 0)
    finally:
        teacher.close()
        bob.close()


def test_a_forged_datagram_never_gets_a_reply_larger_than_itself(make_server, raw_socket: socket.socket) -> None:
    """A small forged `who` and an oversized forged datagram from a member's address get nothing back at all."""
    server = make_server("--rate", "0")
    assert server.udp is not None
    uma = UDPClient(server.udp.port)
    crowd: list[Client] = []
    try:
        uma.join("uma")
        for number in range(10):  # one after the other: at most 8 connections from one address may wait for hello
            crowd.append(Client(server.port))
            crowd[-1].join(f"member{number:02d}_with_a_long_nick"[:24])
        victim = server.udp.peer(uma.address)
        assert victim is not None
        destination = ("127.0.0.1", server.udp.port)
        small = encode_payload({"type": "who"})
        big = b"{" + b" " * (server.udp.max_datagram + 100) + b"}"
        for payload in (small, big):
            raw_socket.sendto(forged_packet(uma.address, destination, payload), ("127.0.0.1", 0))
        wait_until(lambda: victim.extra["stats"]["bad_token"] == 2)
        # Before the barrier's pong only the crowd's joins arrived: no users list, no error.
        received = until_pong(uma, "barrier")
        assert [p["type"] for p in received] == ["joined"] * len(crowd)
        # The same small who from the real member is answered (and much larger than the forged one was).
        uma.send({"type": "who"})
        assert len(uma.expect("users")["users"]) == 11
    finally:
        uma.close()
        for member in crowd:
            member.close()
