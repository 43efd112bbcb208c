"""LAN discovery, server side: a `discover` probe in, one `server_info` reply out.

Owns what a server tells a stranger who asks "is there a chat here?"
(docs/protocol.md, "Extension: discovery"): its name, ports, version, how
many users, the busiest rooms, whether a password is needed. No socket:
the UDP adapter (`chatsrv.udp`) hands over the byte budget for one probe and
sends the bytes it gets back, or nothing.

Two safety rules live here:

- **No amplification** (docs/protocol.md §2): the reply never exceeds the budget
  the adapter computes, 3 times the probe's size. A client pads its probe
  so the whole answer fits; for a smaller probe the room list is cut to the
  busiest rooms that fit, then left out, and when even that is too big
  (a bare 19-byte `{"type":"discover"}`) there is no reply at all.
- **Nothing secret**: never a nick, only counts; and while the server needs
  a password, no room names either. An address the server would refuse
  (`--allow`, `--deny`, a ban) gets no answer at all.

Answering costs a few hundred microseconds on the one thread that serves
UDP chat, so replies are rate-limited in two steps: first per source (the
IP address; a whole IPv6 /64, which one machine can fill with addresses),
then for the whole server (a global cap: a whole class starting at once fits
its burst). A source over its own budget is refused before it costs a global
token, so one noisy source cannot silence the rest: it gets its few replies
a second and the others keep theirs. The per-source buckets are bounded
(`MAX_SOURCES`, least recently seen forgotten first). A probe too small for
any answer is dropped before any work.

Imports: chatsrv (the version), access (address keys), ratelimit, service, wire. Never udp, tcp or app.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatsrv import __version__
from chatsrv.access import address_key
from chatsrv.ratelimit import TokenBucket
from chatsrv.service import ChatService
from lanchat.wire import encode_payload, with_seq

# One reply fits one Ethernet frame (1500 - 20 IP - 8 UDP = 1472 bytes) with
# room to spare for tunnels and VPN headers: a fragmented datagram is lost
# whenever any of its fragments is, which on Wi-Fi is often.
MAX_REPLY = 1400
NAME_LIMIT = 64  # characters of the server name put in a reply
# No reply is shorter than this ({"type":"server_info","id":"…","name":"", … ,"seq":0}):
# a smaller budget is refused before the service is even looked at.
SMALLEST_REPLY = 140
REPLY_RATE = 100.0  # replies per second, for the whole server, on average ...
REPLY_BURST = 200  # ... and at once: 30 students probing twice on two addresses fit easily
# Per source: a client probes twice per search (chatclient.discovery), so a
# student who searches again and again stays well inside this; a script
# flooding from one machine gets SOURCE_RATE replies a second, no more.
SOURCE_RATE = 2.0
SOURCE_BURST = 20
MAX_SOURCES = 4096  # per-source buckets kept; enough for any LAN, bounded against address sprays
_SMALLEST_ROOM = len(b'{"name":"a","users":1},')


def password_required(service: ChatService) -> bool:
    """Whether joining needs a password (`chatsrv --password`, kept by the service's access rules)."""
    return service.access.password is not None


def source_key(address: Any) -> str:
    """Who a probe's budget is charged to: its IPv4 address, or its IPv6 /64 (the port never counts).

    The same key as every other per-address limit and ban (`chatsrv.access.address_key`).
    """
    return address_key(address)


@dataclass(frozen=True)
class Snapshot:
    """What a reply says, read from the service in one go (under its lock)."""

    name: str
    users: int
    rooms: list[dict[str, Any]]  # {"name", "users"}, busiest first
    password_required: bool


def snapshot(service: ChatService) -> Snapshot:
    """Read name, counts and rooms from the service; nicks never leave it."""
    with service.registry.lock:
        users = len(service.registry.by_nick)
        listing: list[dict[str, Any]] = service.registry.listing()
    # Rooms with history only are listed by `/rooms` so a class finds them again; a pick list counts people.
    rooms = sorted((room for room in listing if room["users"]), key=lambda room: -room["users"])  # stable sort
    return Snapshot(service.server_name, users, rooms, password_required(service))


def build_reply(
    state: Snapshot, *, server_id: str, tcp_port: int, udp_port: int, budget: int
) -> bytes | None:
    """The encoded `server_info` (with `seq` 0) in at most `budget` bytes, or None.

    Pure: the same snapshot and budget always give the same bytes.
    """
    name = state.name if len(state.name) <= NAME_LIMIT else state.name[: NAME_LIMIT - 1] + "…"
    info: dict[str, Any] = {
        "type": "server_info",
        "id": server_id,
        "name": name,
        "version": __version__,
        "tcp_port": tcp_port,
        "udp_port": udp_port,
        "users": state.users,
        "room_count": len(state.rooms),
        "password_required": state.password_required,
    }

    def encoded(rooms: list[dict[str, Any]] | None) -> bytes:
        payload = info if rooms is None else {**info, "rooms": rooms}
        return with_seq(encode_payload(payload), 0)  # seq 0: an unregistered address (docs/protocol.md §3)

    if state.password_required:
        # Room names say what a class is doing; behind a password they stay private.
        body = encoded(None)
        return body if len(body) <= budget else None
    full = encoded(state.rooms)
    if len(full) <= budget:
        return full
    # Too big: keep the busiest rooms that fit (binary search on how many; a
    # room entry takes at least _SMALLEST_ROOM bytes, which bounds the list).
    low, high = 0, min(len(state.rooms), budget // _SMALLEST_ROOM)
    while low < high:
        middle = (low + high + 1) // 2
        if len(encoded(state.rooms[:middle])) <= budget:
            low = middle
        else:
            high = middle - 1
    body = encoded(state.rooms[:low]) if low else encoded(None)
    return body if len(body) <= budget else None


class Discovery:
    """Answers probes for one server: its ports, and a random id per run.

    The id lets a client recognise one server that answered on several of
    its addresses (loopback and LAN, or two network cards).
    """

    def __init__(
        self,
        service: ChatService,
        *,
        tcp_port: int,
        udp_port: int,
        clock: Callable[[], float] = time.monotonic,
        rate: float = REPLY_RATE,
        burst: int = REPLY_BURST,
        source_rate: float = SOURCE_RATE,
        source_burst: int = SOURCE_BURST,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        self.service = service
        self.tcp_port = tcp_port
        self.udp_port = udp_port
        self.server_id = secrets.token_hex(4)
        self.clock = clock
        self.bucket = TokenBucket(rate, burst, clock())  # the global cap
        self.source_rate = source_rate
        self.source_burst = source_burst
        self.max_sources = max_sources
        # One bucket per source, least recently seen first (a dict keeps insertion
        # order; a source seen again moves to the end). Only the UDP thread uses it.
        self._sources: dict[str, TokenBucket] = {}

    def _source_allows(self, address: Any, now: float) -> bool:
        """Take a token from this probe's source; False when it has used its budget."""
        key = source_key(address)
        sources = self._sources
        bucket = sources.pop(key, None)
        if bucket is None:
            if len(sources) >= self.max_sources:
                del sources[next(iter(sources))]  # forget the source seen longest ago
            bucket = TokenBucket(self.source_rate, self.source_burst, now)
        sources[key] = bucket
        return bucket.allow(now)

    def reply(self, address: Any, budget: int) -> bytes | None:
        """The reply to a probe from `address`, within `budget` bytes.

        None: the probe is too small for any answer, the address may not
        connect, or there were too many probes lately (from its source, or
        from everyone).
        """
        if budget < SMALLEST_REPLY:
            return None
        if self.service.access.refusal(address) is not None:
            return None  # a refused address learns nothing about the server, not even that it exists
        now = self.clock()
        # Per source first: a flooding source must not spend the tokens everyone shares.
        if not self._source_allows(address, now) or not self.bucket.allow(now):
            return None
        return build_reply(
            snapshot(self.service),
            server_id=self.server_id,
            tcp_port=self.tcp_port,
            udp_port=self.udp_port,
            budget=min(budget, MAX_REPLY),
        )
