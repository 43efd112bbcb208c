"""One simulated client and what a phase counts.

Owns: `Tally` (what one phase observed, summed over its connections) and
`Conn` (one client: socket, buffers, join state), with the state only some
clients have split off: `Outgoing` (a sender's queued messages and, over UDP,
its window of unechoed ones) and `UdpSession` (cookie, hello retries, pings,
sequence numbers).
Must not import: the codecs, the loop or anything above them at run time
(the names under TYPE_CHECKING are for annotations only).
"""
from __future__ import annotations

import socket
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .codecs import Codec
    from .loop import Loop

#: The only address the benchmark ever talks to (servers, TCP and UDP clients).
LOOPBACK = "127.0.0.1"
#: Clients may speak *from* other loopback addresses (127.0.0.0/8 is all this machine),
#: so that a server's per-address limits see a class of machines (scenario abuse).


class Tally:
    """What one phase of a scenario observed, summed over its connections."""

    def __init__(self, want_latency: bool = False) -> None:
        self.received = 0
        self.bytes = 0
        self.last_delivery = 0.0
        self.last_bytes = 0.0
        self.latencies: list[float] | None = [] if want_latency else None
        self.departures: dict[str, tuple[str, float]] = {}
        self.errors: Counter[str] = Counter()
        self.gaps = 0
        self.reordered = 0

    def departed(self, nick: str, reason: str, now: float) -> None:
        self.departures.setdefault(nick.casefold(), (reason, now))


class Outgoing:
    """A sender's queue: `to_send` more copies of `frame`; over UDP at most `window` unechoed."""

    __slots__ = ("acked", "frame", "last_ack", "own_mark", "sent", "to_send", "window")

    def __init__(self) -> None:
        self.frame = b""
        self.to_send = 0
        self.sent = 0
        #: Over UDP the sender counts the echoes of its own messages by this marker.
        self.own_mark: bytes | None = None
        self.acked = 0
        self.window = 0
        self.last_ack = 0.0


class UdpSession:
    """The datagram client's own state: handshake, keep-alive and sequence numbers."""

    __slots__ = ("cookie", "hello_at", "ping_every", "seq_high", "token", "tries")

    def __init__(self) -> None:
        self.cookie: str | None = None
        #: `,"token":"…"}` from the welcome: every later datagram must carry it (docs/protocol.md §8).
        self.token = b""
        self.hello_at = 0.0
        self.tries = 0
        self.ping_every = 10.0
        self.seq_high = 0

    def stamped(self, data: bytes) -> bytes:
        """A JSON payload with the session's token added (unchanged before the welcome)."""
        return data[:-1] + self.token if self.token and data.endswith(b"}") else data


class Conn:
    """One simulated client: a socket, its buffers, its join state and its counters."""

    __slots__ = (
        "alias", "closed", "connecting", "count_only", "datagram", "failed", "inbuf", "index", "last_send",
        "loop", "mask", "nick", "out", "outbuf", "proto", "reading", "ready", "received", "room", "scan",
        "sock", "source", "tail", "tally", "udp",
    )

    def __init__(self, loop: Loop, proto: Codec, tally: Tally, index: int, nick: str, room: str) -> None:
        self.loop = loop
        self.proto = proto
        self.tally = tally
        self.index = index
        self.nick = nick
        self.room = room
        self.alias: str | None = None
        self.sock: socket.socket | None = None
        #: The loopback address this client speaks from (None: the kernel picks, 127.0.0.1).
        self.source: str | None = None
        #: Whether this is a datagram client (`datagram` is set); a plain bool for the loop's hot path.
        self.udp = proto.udp
        self.mask = 0
        self.connecting = False
        self.ready = False
        self.failed: str | None = None
        self.closed = False
        self.reading = True
        #: An idle member of a huge room: parked once joined, read by the loop's sweep.
        self.scan = False
        #: After joining, count markers without walking frames.
        self.count_only = False
        self.tail = b""
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.received = 0
        self.last_send = 0.0
        self.out = Outgoing()
        self.datagram = UdpSession() if proto.udp else None

    @property
    def name(self) -> str:
        """The name other members see (ncat assigns its own)."""
        return self.alias or self.nick

    def set_ready(self) -> None:
        if not self.ready and not self.failed:
            self.ready = True
            self.loop.ready_count += 1
            if self.scan:
                self.loop.park(self)

    def set_failed(self, why: str) -> None:
        if not self.ready and not self.failed:
            self.failed = why
            self.loop.failed_count += 1
