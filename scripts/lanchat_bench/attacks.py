"""The attackers of scenario abuse: what a student with a script runs against the class's server.

Owns: one function per attack of issue 14 (room flood, `1e999` pings over
TCP and UDP, drips before hello, a discovery flood, a ping flood with huge
ids, big requests, junk datagrams, zero-width floods), their counters
(`AttackStats`) and `Attackers`, which runs them all at once in threads and
always joins them. Each attack speaks from its own loopback address (so a
server's per-address limits see one machine each) to the server on
127.0.0.1, paces itself with a monotonic clock, reads and drops whatever
the server answers (an attacker that stopped reading would only be dropped
as slow, which tests nothing), and when the server closes it, counts that
and comes back, like a script in a `while true` loop. Every loop ends by
the `stop` event or its deadline; every socket is closed.
Must not import: the loop, the launchers or anything above them; uses the
standard library and the codecs' framing only.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .codecs import frame, json_bytes

Address = tuple[str, int]
#: Attackers speak from 127.0.2.N: never an honest member's 127.0.1.N.
ATTACKER_NET = "127.0.2."
#: Where a TCP attacker waits before it comes back after being closed (a script's retry).
COME_BACK_AFTER = 0.1


@dataclass
class AttackStats:
    """What one attack did: frames or datagrams sent, and how often the server closed or refused it."""

    sent: int = 0
    closed: int = 0
    #: Error codes the server answered with (counted by a cheap search, not decoded).
    errors: dict[str, int] = field(default_factory=dict)


def _paced(per_second: float, stop: threading.Event, deadline: float) -> Iterator[int]:
    """Yield how many sends are due so that about `per_second` happen until `deadline` or `stop`."""
    start = time.monotonic()
    sent = 0
    while not stop.is_set():
        now = time.monotonic()
        if now >= deadline:
            return
        due = int((now - start) * per_second) + 1 - sent
        if due <= 0:
            stop.wait(min(0.01, deadline - now))
            continue
        yield due
        sent += due


class _Tcp:
    """One attacker's TCP connection: connect from `source`, maybe say hello, send, drain what comes back."""

    def __init__(self, server: Address, source: str, stats: AttackStats) -> None:
        self.server = server
        self.source = source
        self.stats = stats
        self.sock: socket.socket | None = None

    def open(self, hello: dict[str, str] | None) -> bool:
        """Connect (and send `hello`); False when the server refused at once."""
        self.close()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.source, 0))
            sock.settimeout(2.0)
            sock.connect(self.server)
            if hello is not None:
                sock.sendall(frame(json_bytes(hello)))
        except OSError:
            sock.close()
            self.stats.closed += 1
            return False
        sock.setblocking(False)
        self.sock = sock
        return True

    def send(self, data: bytes) -> bool:
        """Send all of `data` within 2 s and drain the answers; False (and closed) when the server hung up."""
        if self.sock is None:
            return False
        view = memoryview(data)
        deadline = time.monotonic() + 2.0
        while view:
            if not self.drain():
                return False
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break  # the server stopped reading us: what did not fit is simply not sent
                time.sleep(0.001)
            except OSError:
                self._lost()
                return False
        return self.drain()

    def drain(self) -> bool:
        """Read and drop what the server sent; False (and closed) when it hung up."""
        if self.sock is None:
            return False
        for _ in range(64):  # bounded: a huge answer is read over several calls
            try:
                data = self.sock.recv(262144)
            except BlockingIOError:
                return True
            except OSError:
                self._lost()
                return False
            if not data:
                self._lost()
                return False
            _count_errors(data, self.stats)
        return True

    def _lost(self) -> None:
        self.stats.closed += 1
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


_ERROR_CODES = (b"rate_limited", b"bad_request", b"frame_too_large", b"server_full", b"timeout",
                b"text_too_long", b"room_invalid", b"internal_error", b"not_allowed")


def _count_errors(data: bytes, stats: AttackStats) -> None:
    if b'"error"' not in data:
        return
    for code in _ERROR_CODES:
        found = data.count(b'"' + code + b'"')
        if found:
            stats.errors[code.decode()] = stats.errors.get(code.decode(), 0) + found


def _tcp_flood(server: Address, source: str, stop: threading.Event, deadline: float, stats: AttackStats,
               hello: dict[str, str], per_second: float, make: Callable[[int], bytes]) -> None:
    """Join with `hello`, then send `make(n)` `per_second` times a second; come back whenever closed."""
    conn = _Tcp(server, source, stats)
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            if not conn.open(hello):
                stop.wait(COME_BACK_AFTER)
                continue
            for due in _paced(per_second, stop, deadline):
                data = b"".join(make(stats.sent + n) for n in range(due))
                if not conn.send(data):
                    break
                stats.sent += due
            stop.wait(COME_BACK_AFTER)
    finally:
        conn.close()


def room_flood(server: Address, source: str, stop: threading.Event, deadline: float, stats: AttackStats) -> None:
    """New rooms with 4-byte letters in their names, each given one line of history (issue 14, item 1)."""
    def make(n: int) -> bytes:
        room = "\U0001d52f" * 24 + f"{n:06d}"
        return frame(json_bytes({"type": "join", "room": room})) + frame(json_bytes({"type": "say", "text": "x"}))
    _tcp_flood(server, source, stop, deadline, stats, {"type": "hello", "nick": "roomflood"}, 2000, make)


def infinite_pings(server: Address, source: str, stop: threading.Event, deadline: float, stats: AttackStats) -> None:
    """`{"type":"ping","t":1e999}` over TCP (issue 14, item 2)."""
    body = frame(b'{"type":"ping","id":"x","t":1e999}')
    _tcp_flood(server, source, stop, deadline, stats, {"type": "hello", "nick": "inf"}, 200, lambda n: body)


def ping_flood(server: Address, source: str, stop: threading.Event, deadline: float, stats: AttackStats) -> None:
    """Pings whose id is nearly a whole frame (issue 14, item 5)."""
    body = frame(json_bytes({"type": "ping", "id": "p" * 60000}))
    _tcp_flood(server, source, stop, deadline, stats, {"type": "hello", "nick": "pingflood"}, 200, lambda n: body)


def big_requests(server: Address, source: str, stop: threading.Event, deadline: float, stats: AttackStats) -> None:
    """Requests with the biggest answers (rooms, who) and frames just under the limit (issue 14, item 6)."""
    bodies = (
        frame(b'{"type":"rooms"}'),
        frame(b'{"type":"who"}'),
        frame(json_bytes({"type": "say", "text": "b" * 65000})),
    )
    _tcp_flood(server, source, stop, deadline, stats, {"type": "hello", "nick": "bigreq"}, 100,
               lambda n: bodies[n % len(bodies)])


def zero_width_flood(room: str) -> Callable[[Address, str, threading.Event, float, AttackStats], None]:
    """2,000 zero-width spaces a message, into the honest members' room (issue 14, item 8)."""
    body = frame(json_bytes({"type": "say", "text": "\u200b" * 2000}))

    def attack(server: Address, source: str, stop: threading.Event, deadline: float, stats: AttackStats) -> None:
        _tcp_flood(server, source, stop, deadline, stats, {"type": "hello", "nick": "zwflood", "room": room}, 20,
                   lambda n: body)
    return attack


def drips(server: Address, source: str, stop: threading.Event, deadline: float, stats: AttackStats) -> None:
    """Slowloris before hello: 12 connections from one address, each sending a byte a second (issue 14, item 3).

    A connection the server closed (deadline reached, or refused at once) is
    counted and opened again, so the server is always asked for 12.
    """
    hello = frame(json_bytes({"type": "hello", "nick": "slowloris"}))
    conns = [_Tcp(server, source, stats) for _ in range(12)]
    progress = [0] * len(conns)
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            for index, conn in enumerate(conns):
                if conn.sock is None:
                    progress[index] = 0
                    if not conn.open(None):
                        continue
                if progress[index] >= len(hello) - 1:
                    continue  # never the last byte: the hello stays unfinished
                if conn.send(hello[progress[index]:progress[index] + 1]):
                    progress[index] += 1
                    stats.sent += 1
            stop.wait(1.0)
    finally:
        for conn in conns:
            conn.close()


def _udp_socket(source: str, server: Address) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.connect(server)
    sock.setblocking(False)
    return sock


def _udp_drain(sock: socket.socket, stats: AttackStats) -> list[bytes]:
    got: list[bytes] = []
    for _ in range(256):
        try:
            data = sock.recv(65536)
        except (BlockingIOError, ConnectionRefusedError):
            break
        _count_errors(data, stats)
        got.append(data)
    return got


def _udp_flood(server: Address, source: str, stop: threading.Event, deadline: float, stats: AttackStats,
               per_second: float, make: Callable[[int], bytes], hello: dict[str, str] | None = None) -> None:
    """Send `make(n)` datagrams; with `hello`, first join over UDP (challenge, cookie, welcome) if it can."""
    sock = _udp_socket(source, server)
    try:
        if hello is not None:
            _udp_join(sock, hello, stop, stats)
        for due in _paced(per_second, stop, deadline):
            for n in range(due):
                try:
                    sock.send(make(stats.sent + n))
                except (BlockingIOError, ConnectionRefusedError):
                    pass
            stats.sent += due
            _udp_drain(sock, stats)
    finally:
        sock.close()


def _udp_join(sock: socket.socket, hello: dict[str, str], stop: threading.Event, stats: AttackStats) -> bool:
    """The UDP handshake, tried for at most 2 s; an attack goes on either way."""
    payload = dict(hello)
    give_up = time.monotonic() + 2.0
    while not stop.is_set() and time.monotonic() < give_up:
        try:
            sock.send(json_bytes(payload))
        except (BlockingIOError, ConnectionRefusedError):
            pass
        stop.wait(0.1)
        for data in _udp_drain(sock, stats):
            if b'"welcome"' in data:
                return True
            if b'"challenge"' in data:
                cookie = data.split(b'"cookie":"', 1)[-1].split(b'"', 1)[0]
                payload = dict(hello, cookie=cookie.decode(errors="replace"))
    return False


def udp_infinite_pings(server: Address, source: str, stop: threading.Event, deadline: float,
                       stats: AttackStats) -> None:
    """`1e999` pings over UDP from a joined peer (issue 14, item 2)."""
    _udp_flood(server, source, stop, deadline, stats, 200, lambda n: b'{"type":"ping","id":"x","t":1e999}',
               hello={"type": "hello", "nick": "udpinf"})


def discovery_flood(server: Address, source: str, stop: threading.Event, deadline: float,
                    stats: AttackStats) -> None:
    """900 discovery probes a second from one socket (issue 14, item 4)."""
    probe = json_bytes({"type": "discover", "pad": "." * 440})
    _udp_flood(server, source, stop, deadline, stats, 900, lambda n: probe)


def junk_datagrams(server: Address, source: str, stop: threading.Event, deadline: float,
                   stats: AttackStats) -> None:
    """Datagrams of random bytes (issue 14, item 9)."""
    junk = [os.urandom(200) for _ in range(16)]
    _udp_flood(server, source, stop, deadline, stats, 500, lambda n: junk[n % len(junk)])


Attack = Callable[[Address, str, threading.Event, float, AttackStats], None]


def every_attack(room: str, udp: bool) -> dict[str, Attack]:
    """Every attack of issue 14, by name; the UDP ones only when the server serves UDP."""
    attacks: dict[str, Attack] = {
        "room flood": room_flood,
        "1e999 ping": infinite_pings,
        "drip before hello": drips,
        "ping flood": ping_flood,
        "big requests": big_requests,
        "zero-width flood": zero_width_flood(room),
    }
    if udp:
        attacks.update({
            "1e999 ping udp": udp_infinite_pings,
            "discovery flood": discovery_flood,
            "junk udp": junk_datagrams,
        })
    return attacks


class Attackers:
    """Every attack at once, each in its own thread from its own address, until `stop()`."""

    def __init__(self, server: Address, attacks: dict[str, Attack], seconds: float) -> None:
        self.stats = {name: AttackStats() for name in attacks}
        self._stop = threading.Event()
        deadline = time.monotonic() + seconds
        self._threads = [
            threading.Thread(target=attack, args=(server, f"{ATTACKER_NET}{n + 1}", self._stop, deadline,
                                                   self.stats[name]), name=f"attack {name}", daemon=True)
            for n, (name, attack) in enumerate(attacks.items())
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, wait: float = 10.0) -> bool:
        """Stop every attack; True when all threads ended within `wait` seconds."""
        self._stop.set()
        deadline = time.monotonic() + wait
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)
