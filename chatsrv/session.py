"""One member of the chat: identity, per-member `seq`, counters, delivery.

A `Session` knows nothing about sockets: it hands encoded payloads to an
`Outbox` (put, flush, close) that a transport adapter provides. Only the
fan-out calls `deliver`, always while holding the registry lock, so `seq` numbers
(docs/protocol.md §3) are given in exactly the order payloads are queued.

Imports only `lanchat.wire` and `chatsrv.ratelimit`.
"""

from __future__ import annotations

import itertools
from typing import Any, Protocol

from chatsrv.ratelimit import TokenBucket
from lanchat.wire import SeqTracker


class Outbox(Protocol):
    """Where a session's outgoing payloads go (a socket writer, a datagram sender)."""

    def put(self, bodies: list[bytes], first_seq: int) -> bool:
        """Queue encoded payloads, numbered first_seq, first_seq + 1, ...

        Each body is `encode_payload` output without seq: the outbox splices
        the seq in while framing (`wire.frames_with_seq`, `wire.with_seq`).
        False when the peer is too slow to take them.
        """

    def flush(self) -> None:
        """Send what `put` queued. Called once per batch that delivered to this
        outbox, after the service lock is released (never under it)."""

    def close(self) -> None:
        """Flush what is queued if possible, then end the connection (called under the lock)."""


_session_ids = itertools.count(1)


class Session:
    """A connection (TCP) or registered peer (UDP) and its chat state."""

    def __init__(
        self,
        outbox: Outbox,
        address: Any,
        transport: str,
        max_frame: int,
        bucket: TokenBucket,
        now: float,
    ) -> None:
        self.id = next(_session_ids)
        self.outbox = outbox
        self.address = address
        self.transport = transport
        self.max_frame = max_frame
        self.bucket = bucket
        self.nick: str | None = None
        self.room_key: str | None = None
        self.seq = 0  # last seq given to this member
        self.sent = 0  # payloads sent to the member
        self.received = 0  # payloads received from the member
        self.errors_in_a_row = 0
        self.last_seen = now
        self.closed = False  # no longer in the service; the adapter should hang up
        self.client_seq = SeqTracker()
        self.extra: dict[str, Any] = {}  # adapter-owned details shown in stats
        self.features: frozenset[str] = frozenset()  # what `hello.features` asked for and the server knows

    @property
    def joined(self) -> bool:
        return self.nick is not None and not self.closed

    def describe(self) -> str:
        """Short human label for logs: nick (or #id) and address."""
        host = self.address[0] if isinstance(self.address, tuple) else self.address
        port = self.address[1] if isinstance(self.address, tuple) and len(self.address) > 1 else ""
        who = self.nick or f"#{self.id}"
        if port == 0:  # no peer has port 0: a stand-in for a member of another node (chatsrv.standins)
            return f"{who} [{self.transport} {host} on another node]"
        return f"{who} [{self.transport} {host}:{port}]"

    def deliver(self, bodies: list[bytes]) -> bool:
        """Splice the next seq numbers into encoded payloads and queue them.

        Returns False when the outbox overflowed (the member is too slow).
        """
        first = self.seq + 1
        self.seq += len(bodies)
        self.sent += len(bodies)
        return self.outbox.put(bodies, first)
