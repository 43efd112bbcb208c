"""Attack: one IPv6 host with many addresses (issue 14, item 3, second half).

A machine on an IPv6 LAN can give itself any address of its /64. Per-address
limits, bans and the wrong-password slow-down used to count full addresses,
so such a host was as many "hosts" as it liked. Now all of them count an
IPv6 peer by its /64 (`chatsrv.access.address_key`, the same key discovery's
per-source budget uses).
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from chatsrv.access import DEFAULT_IPV6_PREFIX, Access, FailureTracker, address_key, set_ipv6_prefix
from chatsrv.discovery import source_key
from chatsrv.service import ChatService
from lanchat.wire import ProtocolError
from tests.helpers import wait_until
from tests.support.fakes import Clock, FakeOutbox


def _v6(host: str, port: int = 40000) -> tuple[str, int, int, int]:
    return (host, port, 0, 0)


def test_two_addresses_of_one_slash_64_are_one_key() -> None:
    assert address_key(_v6("2001:db8::1")) == address_key(_v6("2001:db8::ffff:1234", 50000)) == "2001:db8::/64"
    assert address_key(_v6("2001:db8:0:1::1")) != address_key(_v6("2001:db8::1"))
    assert address_key(("::ffff:10.0.0.7", 1, 0, 0)) == address_key(("10.0.0.7", 2)) == "10.0.0.7"
    assert address_key("fe80::1%eth0") == "fe80::1"  # link-local: all share fe80::/64, so each counts alone
    assert source_key(_v6("2001:db8::1")) == address_key(_v6("2001:db8::1"))  # discovery charges the same key


def test_per_ip_limit_counts_a_slash_64_as_one_host() -> None:
    """--max-per-ip 2: a third address of the same /64 is server_full; another /64 still gets in."""
    service = ChatService(clock=Clock(), max_per_ip=2)
    service.connect(FakeOutbox(), _v6("2001:db8::1"), "tcp", 65536)
    service.connect(FakeOutbox(), _v6("2001:db8::2"), "tcp", 65536)
    with pytest.raises(ProtocolError) as refused:
        service.connect(FakeOutbox(), _v6("2001:db8::3"), "tcp", 65536)
    assert refused.value.code == "server_full" and "2001:db8::/64" in refused.value.message
    service.connect(FakeOutbox(), _v6("2001:db8:0:1::1"), "tcp", 65536)


def test_closing_gives_the_slash_64_its_slot_back() -> None:
    service = ChatService(clock=Clock(), max_per_ip=1)
    first = service.connect(FakeOutbox(), _v6("2001:db8::1"), "tcp", 65536)
    service.disconnect(first, "lost")
    service.connect(FakeOutbox(), _v6("2001:db8::2"), "tcp", 65536)


def test_a_ban_covers_the_whole_slash_64_and_unban_lifts_it() -> None:
    access = Access()
    access.ban(ipaddress.ip_address("2001:db8::1"))
    assert access.refusal(_v6("2001:db8::beef")) is not None
    assert access.refusal(_v6("2001:db8:0:1::1")) is None
    assert access.unban(ipaddress.ip_address("2001:db8::2"))  # any address of the /64 names the ban
    assert access.refusal(_v6("2001:db8::beef")) is None
    access.ban(ipaddress.ip_address("10.0.0.1"))  # IPv4 stays one address
    assert access.refusal(("10.0.0.1", 1)) is not None and access.refusal(("10.0.0.2", 1)) is None


def test_wrong_passwords_from_many_addresses_of_a_slash_64_add_up() -> None:
    """Hopping to another address of the same /64 does not reset the wrong-password slow-down."""
    access = Access(password="right", failures=FailureTracker(free_tries=2))
    for n in range(2):
        with pytest.raises(ProtocolError):
            access.check_password(_v6(f"2001:db8::{n + 1}"), "wrong", now=100.0)
    with pytest.raises(ProtocolError) as refused:
        access.check_password(_v6("2001:db8::99"), "right", now=100.0)
    assert "try again" in refused.value.message
    access.check_password(_v6("2001:db8:0:1::1"), "right", now=100.0)  # another /64 is not slowed down
    # The operator secret's slow-down (chatsrv.operators) passes plain host strings: counted the same.
    assert access.failures.failures("2001:db8::1234") == 2


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_over_ipv6_loopback_per_ip_limit_applies(make_server) -> None:
    """End to end on ::1: with --max-per-ip 1 a second connection is server_full."""
    server = make_server("--host", "::1", "--max-per-ip", "1", "--no-udp")
    first = socket.create_connection(("::1", server.port), timeout=5)
    try:
        wait_until(lambda: len(server.service.sessions) == 1)
        with socket.create_connection(("::1", server.port), timeout=5) as second:
            data = b""
            while chunk := second.recv(4096):
                data += chunk
            assert b"server_full" in data and b"::/64" in data
    finally:
        first.close()


def test_link_local_addresses_count_each_alone() -> None:
    """Every link-local address is in fe80::/64, whoever owns it: one student's slow-down must not hit the class."""
    assert address_key(_v6("fe80::1")) != address_key(_v6("fe80::2"))
    tracker = FailureTracker(free_tries=0)
    tracker.failed("fe80::1", 100.0)
    assert tracker.wait_left("fe80::2", 100.0) == 0.0
    assert tracker.wait_left("fe80::1", 100.0) > 0.0


def test_ipv6_prefix_128_counts_each_address(make_server) -> None:  # type: ignore[no-untyped-def]
    """`--ipv6-prefix 128` (a class sharing one /64): two addresses of one /64 are two hosts for --max-per-ip."""
    try:
        make_server("--ipv6-prefix", "128")
        assert address_key(_v6("2001:db8::1")) == "2001:db8::1"
        service = ChatService(clock=Clock(), max_per_ip=1)
        service.connect(FakeOutbox(), _v6("2001:db8::1"), "tcp", 65536)
        service.connect(FakeOutbox(), _v6("2001:db8::2"), "tcp", 65536)
        set_ipv6_prefix(48)
        assert address_key(_v6("2001:db8:0:1::1")) == address_key(_v6("2001:db8:0:2::1")) == "2001:db8::/48"
    finally:
        set_ipv6_prefix(DEFAULT_IPV6_PREFIX)
    assert address_key(_v6("2001:db8::1")) == "2001:db8::/64"
