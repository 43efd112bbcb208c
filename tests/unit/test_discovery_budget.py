"""Server discovery's reply budgets: per source, then a global cap (chatsrv.discovery)."""

from __future__ import annotations

import pytest

from chatsrv.discovery import MAX_REPLY, Discovery, source_key
from chatsrv.service import ChatService


def answering(now: list[float], **settings: float) -> Discovery:
    return Discovery(ChatService(rate=0), tcp_port=1, udp_port=1, clock=lambda: now[0], **settings)  # type: ignore[arg-type]


def answered(discovery: Discovery, address: tuple[str, int], probes: int) -> int:
    return sum(discovery.reply(address, MAX_REPLY) is not None for _ in range(probes))


def test_a_flooding_source_cannot_use_up_the_replies_of_others() -> None:
    """One source sending 900 probes gets its own burst; a second source is still answered every time."""
    now = [100.0]
    discovery = answering(now, rate=100, burst=200, source_rate=2, source_burst=20)
    assert answered(discovery, ("10.0.0.66", 5000), 900) == 20
    assert answered(discovery, ("10.0.0.7", 40000), 10) == 10


def test_a_source_refills_at_its_own_rate() -> None:
    """After its burst, a source gets source_rate replies per second, whatever port it uses."""
    now = [100.0]
    discovery = answering(now, source_rate=2, source_burst=3)
    assert [discovery.reply(("10.0.0.66", port), MAX_REPLY) is not None for port in range(4)] == [True] * 3 + [False]
    now[0] += 1.0
    assert answered(discovery, ("10.0.0.66", 9), 5) == 2


def test_the_global_cap_still_holds_across_sources() -> None:
    """Many sources within their own budgets are together held to the server's cap."""
    now = [100.0]
    discovery = answering(now, rate=1, burst=5, source_rate=2, source_burst=20)
    assert sum(answered(discovery, (f"10.0.1.{number}", 1), 1) for number in range(20)) == 5


def test_sources_kept_are_bounded() -> None:
    """A spray of source addresses keeps at most max_sources buckets."""
    now = [100.0]
    discovery = answering(now, rate=0, max_sources=8)
    for number in range(100):
        discovery.reply((f"10.0.{number // 250}.{number % 250}", 1), MAX_REPLY)
    assert len(discovery._sources) == 8


@pytest.mark.parametrize(
    ("address", "key"),
    [
        (("192.168.1.5", 1), "192.168.1.5"),
        (("2001:db8:1:2:aaaa::1", 1, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff::9", 7, 0, 0), "2001:db8:1:2::/64"),
        (("::ffff:10.1.2.3", 1, 0, 0), "10.1.2.3"),
        (("fe80::1%eth0", 1, 0, 2), "fe80::1"),  # link-local: every host shares fe80::/64
    ],
)
def test_source_key_is_the_ipv4_address_or_the_ipv6_64(address: tuple[object, ...], key: str) -> None:
    """The port never counts, and one IPv6 /64 is one source."""
    assert source_key(address) == key
