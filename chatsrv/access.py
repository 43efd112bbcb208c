"""Who may come in: address rules, session bans, the server password, and
the slow-down for repeated wrong secrets from one address.

docs/protocol.md, "Extension: operators and access". The service asks
`Access` at two points: `check_address` when a connection or UDP peer is
admitted (before anything else: before limits, before `hello`), and
`check_password` when a `hello` arrives. Secrets are compared in constant
time, length included (`hmac.compare_digest` of SHA-256 digests), so the time
an answer takes tells a guesser neither how many leading characters were
right nor how long the secret is.

Pure: no sockets, no threads, no clock (callers pass `now`). The service
calls it under its lock. Imports only the standard library and lanchat.wire.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from collections.abc import Iterable
from typing import Any

from lanchat.reasons import Said, say
from lanchat.wire import ProtocolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    """`192.168.1.0/24`, `10.0.0.7` or `::1` as a network; ValueError if it is none."""
    return ipaddress.ip_network(text.strip(), strict=False)


def host_address(address: Any) -> IPAddress | None:
    """The IP address of a socket address (`(host, port, ...)` or a host string).

    An IPv4 client of a dual-stack (`::`) server shows up as `::ffff:a.b.c.d`;
    it is turned back into `a.b.c.d` so that `--allow 192.168.1.0/24` still
    matches it. A scope (`fe80::1%eth0`) is dropped. None for anything that
    is not an IP address (a Unix socket in a test, say).
    """
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# How many leading bits of an IPv6 address name one host for limits and bans (--ipv6-prefix):
# set once at start by `set_ipv6_prefix`, read by every address_key call after.
DEFAULT_IPV6_PREFIX = 64
_ipv6_prefix = DEFAULT_IPV6_PREFIX
_LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")


def set_ipv6_prefix(bits: int) -> None:
    """Count an IPv6 peer by its first `bits` bits from now on (64: its /64; 128: each address)."""
    global _ipv6_prefix
    if not 0 <= bits <= 128:
        raise ValueError(f"an IPv6 prefix is 0 to 128 bits, not {bits}")
    _ipv6_prefix = bits


def address_key(address: Any) -> str:
    """Who a limit or a ban is charged to: an IPv4 address, or an IPv6 prefix (a /64 unless set otherwise).

    One machine on an IPv6 LAN can give itself any of the 2**64 addresses of
    its /64 (privacy addresses change daily anyway), so per-address limits
    and bans that looked at full IPv6 addresses would count it as that many
    hosts. A classroom's machines share one /64 too, though, so the prefix is
    a flag (`--ipv6-prefix`, 128 counts each address). Link-local addresses
    (fe80::/10) are all in fe80::/64 whoever owns them, so each counts alone.
    `::ffff:a.b.c.d` counts as `a.b.c.d`; a scope is dropped; the port never
    counts. Anything that is not an IP address is its own key.
    """
    ip = address if isinstance(address, IPAddress) else host_address(address)
    if ip is None:
        return str(address[0]) if isinstance(address, tuple) and address else str(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if _ipv6_prefix >= 128 or ip in _LINK_LOCAL:
            return str(ip)
        return str(ipaddress.IPv6Network((ip, _ipv6_prefix), strict=False))
    return str(ip)


def secrets_match(given: str | None, expected: str) -> bool:
    """True when `given` equals `expected`, compared in constant time, length included.

    `hmac.compare_digest` returns at once when the lengths differ, which tells
    a guesser the secret's length; comparing SHA-256 digests (always 32 bytes)
    does not.
    """
    if given is None:
        return False
    given_digest = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    expected_digest = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(given_digest, expected_digest)


class FailureTracker:
    """Counts wrong passwords and operator secrets per address, and slows guessers down.

    The first `free_tries` failures cost nothing (people mistype). After
    that, each further failure makes the address wait twice as long as the
    last time before its next attempt is even looked at (1, 2, 4 ... s, at
    most `max_wait`). Nothing sleeps: an attempt during the wait is simply
    refused with the time left, so no server thread is ever held up. One
    success, or `forget_after` seconds of quiet, clears an address.
    Memory is bounded: at most `max_hosts` addresses are remembered.
    An address is counted by `address_key` (an IPv6 /64 as one), whatever
    form the caller passes it in, so a guesser cannot reset its count by
    hopping to another address of its own network.
    """

    def __init__(
        self,
        free_tries: int = 3,
        max_wait: float = 60.0,
        forget_after: float = 600.0,
        max_hosts: int = 4096,
    ) -> None:
        self.free_tries = free_tries
        self.max_wait = max_wait
        self.forget_after = forget_after
        self.max_hosts = max_hosts
        self._hosts: dict[str, tuple[int, float]] = {}  # host -> (failures, time of the last)

    def wait_left(self, host: str, now: float) -> float:
        """Seconds `host` must still wait before its next attempt counts (0: go ahead)."""
        host = address_key(host)
        entry = self._hosts.get(host)
        if entry is None:
            return 0.0
        failures, last = entry
        if now - last >= self.forget_after:
            del self._hosts[host]
            return 0.0
        if failures < self.free_tries:
            return 0.0
        wait = min(self.max_wait, 2.0 ** (failures - self.free_tries))
        return max(0.0, last + wait - now)

    def failed(self, host: str, now: float) -> None:
        """Record one wrong secret from `host`."""
        host = address_key(host)
        failures, _ = self._hosts.pop(host, (0, now))
        self._hosts[host] = (failures + 1, now)  # re-inserted: dict order is oldest first
        if len(self._hosts) > self.max_hosts:
            for stale in [h for h, (_, last) in self._hosts.items() if now - last >= self.forget_after]:
                del self._hosts[stale]
            while len(self._hosts) > self.max_hosts:
                del self._hosts[next(iter(self._hosts))]

    def succeeded(self, host: str) -> None:
        self._hosts.pop(address_key(host), None)

    def failures(self, host: str) -> int:
        return self._hosts.get(address_key(host), (0, 0.0))[0]


class Access:
    """The server's door: `--allow`/`--deny` networks, bans, and `--password`.

    A denied address wins over an allowed one; once any `--allow` is given,
    only the networks listed may connect. Bans (`kick` with `ban`) last until
    an operator lifts them; the service keeps them in the store across
    restarts (chatsrv.continuity), except with `--db :memory:`. An IPv6 ban
    covers the banned address's whole /64 (`address_key`), since one machine
    can pick any address in it.
    """

    def __init__(
        self,
        *,
        allow: Iterable[Network] = (),
        deny: Iterable[Network] = (),
        password: str | None = None,
        failures: FailureTracker | None = None,
    ) -> None:
        self.allow = tuple(allow)
        self.deny = tuple(deny)
        self.password = password or None
        self.failures = failures or FailureTracker()
        self.banned: set[str] = set()  # address keys: an IPv4 address or an IPv6 /64

    # --- addresses --------------------------------------------------------

    def refusal(self, address: Any) -> Said | None:
        """Why `address` may not connect, or None when it may."""
        if not (self.allow or self.deny or self.banned):
            return None  # the common case costs one test
        ip = host_address(address)
        if ip is None:
            return say("ip_only") if self.allow else None
        key = address_key(ip)
        if key in self.banned:
            return say("banned", host=key)
        if any(ip in network for network in self.deny):
            return say("address_refused", host=str(ip))
        if self.allow and not any(ip in network for network in self.allow):
            return say("address_refused", host=str(ip))
        return None

    def check_address(self, address: Any) -> None:
        """Raise a fatal `not_allowed` if `address` is denied, not allowed or banned."""
        reason = self.refusal(address)
        if reason is not None:
            raise ProtocolError("not_allowed", reason, fatal=True)

    def ban(self, ip: IPAddress) -> None:
        """Keep `ip` out, with its whole /64 when it is an IPv6 address."""
        self.banned.add(address_key(ip))

    def unban(self, ip: IPAddress) -> bool:
        """Lift the ban covering `ip` (its /64 for IPv6); False when none did."""
        key = address_key(ip)
        if key in self.banned:
            self.banned.discard(key)
            return True
        return False

    # --- the password -----------------------------------------------------

    def check_password(self, address: Any, given: str | None, now: float) -> None:
        """Raise a fatal `auth_failed` unless `given` is the server password.

        A missing password is not counted as a guess (a client that did not
        know one was needed); a wrong one is, and an address that guessed
        wrong too often is refused without looking, until its wait is over.
        """
        if self.password is None:
            return
        host = address_key(address)
        wait = self.failures.wait_left(host, now)
        if wait > 0:
            raise ProtocolError(
                "auth_failed", say("password_wait", host=host, seconds=math.ceil(wait)), fatal=True
            )
        if given is None:
            raise ProtocolError("auth_failed", say("password_needed"), fatal=True)
        if not secrets_match(given, self.password):
            self.failures.failed(host, now)
            raise ProtocolError("auth_failed", say("password_wrong"), fatal=True)
        self.failures.succeeded(host)
