"""Lab bots: small chat clients that speak docs/protocol.md themselves and write down everything.

Owns: `TCPBot` (length-framed stream, §2) and `UDPBot` (one payload per
datagram, the cookie handshake of §2, hello retries), both on asyncio
protocols so every `recv` is seen as it happened. A bot records the server
`seq` of each payload in arrival order (§3), each lab message's send and
arrival time, application bytes and packets both ways, and a timeline of
events (for the `restart` scenario).

Bots do not spawn `chatclient`: a lab needs exact timestamps and counters,
and a student can read here, in one place, what a client must do.

Imports: `lanchat.wire` (framing and payload codec) and `lanchat_lab.measure`.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from lanchat import platforms
from lanchat.i18n import _
from lanchat.wire import FrameDecoder, ProtocolError, decode_payload, encode_frame, encode_payload
from lanchat_lab.measure import parse_lab_text

MAX_FRAME = 16 * 1024 * 1024
UDP_RECEIVE_BUFFER = 1 << 20  # room for bursts, so the kernel does not add loss of its own


class LabError(Exception):
    """A lab run cannot go on; the message is one line for the person at the keyboard."""


class LabUnavailable(LabError):
    """This machine lacks what the scenario needs (a tool such as ip, nft or tc, or AF_PACKET): chatlab exits 2."""


class Bot:
    """What TCP and UDP bots share: the payload handler and the records."""

    transport = "?"

    def __init__(self, nick: str, room: str, clock: Callable[[], float] = time.time) -> None:
        self.nick = nick
        self.room = room
        self.clock = clock
        self.seqs: list[int] = []
        self.arrivals: list[list[Any]] = []
        self.events: list[tuple[float, str]] = []
        self.errors: dict[str, int] = {}
        self.lefts: list[tuple[float, dict[str, Any]]] = []  # (arrival, `left` payload): the slow scenario watches them
        self.last_pong = 0.0
        self.stats: dict[str, Any] | None = None
        self.pongs: dict[Any, float] = {}  # ping id -> arrival time
        self.sent_messages = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.packets_in = 0
        self.packets_out = 0
        self.join_started: float | None = None
        self.join_seconds: float | None = None
        self.joined = asyncio.Event()
        self.closed = asyncio.Event()  # the server hung up (TCP) or we closed
        self.received_any = asyncio.Event()
        self.last_arrival = 0.0
        self.notice_texts: list[str] = []
        self._client_seq = 0

    # --- sending -------------------------------------------------------------

    def _transmit(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def send(self, payload: dict[str, Any]) -> None:
        """Send one payload with our own `seq` (docs/protocol.md §3: the server counts our gaps)."""
        self._client_seq += 1
        self._transmit({**payload, "seq": self._client_seq})

    def say(self, text: str) -> None:
        self.sent_messages += 1
        self.send({"type": "say", "text": text})

    def ping(self, ping_id: Any) -> None:
        self.send({"type": "ping", "id": ping_id, "t": self.clock()})

    def request_stats(self) -> None:
        self.send({"type": "stats"})

    def bye(self) -> None:
        self.send({"type": "bye"})

    def close(self) -> None:
        raise NotImplementedError

    def pause_reading(self) -> None:
        """Stop reading (the `slow` scenario's stuck member): the kernel's buffer fills up."""
        transport = getattr(self, "_transport", None)
        if transport is not None:
            transport.pause_reading()

    def resume_reading(self) -> None:
        transport = getattr(self, "_transport", None)
        if transport is not None:
            transport.resume_reading()

    # --- receiving -----------------------------------------------------------

    def note(self, text: str) -> None:
        """Add an event to this bot's timeline."""
        self.events.append((self.clock(), text))

    def handle(self, payload: dict[str, Any], now: float) -> None:
        """One payload from the server, received at `now`."""
        seq = payload.get("seq")
        if type(seq) is int and seq > 0:
            self.seqs.append(seq)
        self.last_arrival = now
        self.received_any.set()
        kind = payload.get("type")
        if kind == "message":
            parsed = parse_lab_text(str(payload.get("text", "")))
            if parsed is not None:
                origin, index, sent_at = parsed
                self.arrivals.append([origin, index, sent_at, now])
        elif kind == "pong":
            self.pongs.setdefault(payload.get("id"), now)
            self.last_pong = now
        elif kind == "welcome":
            if self.join_started is not None and self.join_seconds is None:
                self.join_seconds = now - self.join_started
            if not self.joined.is_set():
                self.note(f"welcome in {payload.get('room')} (seq {seq})")
            self.joined.set()
        elif kind == "challenge":
            self.on_challenge(payload)
        elif kind == "stats":
            self.stats = payload
        elif kind == "left":
            self.lefts.append((now, payload))
            if str(payload.get("nick", "")).casefold() == self.nick.casefold():
                self.note(f"removed by the server (reason {payload.get('reason')})")
        elif kind == "notice":
            self.notice_texts.append(str(payload.get("text", "")))
            self.note(f"notice: {payload.get('text')}")
        elif kind == "error":
            code = str(payload.get("code", "?"))
            self.errors[code] = self.errors.get(code, 0) + 1
            self.on_error(code, payload)

    def on_challenge(self, payload: dict[str, Any]) -> None:
        """Only UDP servers challenge."""

    def on_error(self, code: str, payload: dict[str, Any]) -> None:
        """Hook for subclasses."""

    def record(self) -> dict[str, Any]:
        """What this bot measured, as JSON-able data (see `lanchat_lab.measure`)."""
        return {
            "nick": self.nick,
            "transport": self.transport,
            "join_seconds": self.join_seconds,
            "seqs": self.seqs,
            "arrivals": self.arrivals,
            "sent_messages": self.sent_messages,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "packets_in": self.packets_in,
            "packets_out": self.packets_out,
            "retransmits": None,
            "stats": self.stats,
            "errors": self.errors,
            "events": self.events,
        }


# --- TCP ---------------------------------------------------------------------------


def tcp_info(sock: socket.socket) -> dict[str, int] | None:
    """Segments in/out and retransmissions from Linux `TCP_INFO`, or None where unavailable.

    Offsets are those of `struct tcp_info` in linux/tcp.h (stable ABI):
    tcpi_total_retrans at 100, tcpi_segs_out at 136, tcpi_segs_in at 140.
    """
    raw = platforms.read_tcp_info(sock, 144)  # platform hook: Linux only (these offsets are Linux's)
    if raw is None:
        return None
    (total_retrans,) = struct.unpack_from("I", raw, 100)
    segs_out, segs_in = struct.unpack_from("II", raw, 136)
    return {"segs_in": segs_in, "segs_out": segs_out, "retransmits": total_retrans}


class _StreamProtocol(asyncio.Protocol):
    def __init__(self, bot: TCPBot) -> None:
        self.bot = bot

    def data_received(self, data: bytes) -> None:
        self.bot.on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.bot.on_connection_lost(exc)


class TCPBot(Bot):
    """A bot over one TCP connection: 4-byte length prefix, then the JSON payload."""

    transport = "tcp"

    def __init__(
        self,
        nick: str,
        room: str,
        clock: Callable[[], float] = time.time,
        receive_buffer: int | None = None,
    ) -> None:
        super().__init__(nick, room, clock)
        self.receive_buffer = receive_buffer
        self._transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder(MAX_FRAME)
        self._tcp_finished = {"segs_in": 0, "segs_out": 0, "retransmits": 0}  # closed connections
        self._tcp_current: dict[str, int] | None = None  # latest TCP_INFO of the open one
        self._have_tcp_info = True
        self.lost_at: float | None = None  # when the connection last ended

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def connect(self, host: str, port: int, timeout: float = 5.0) -> None:
        """Open the connection; raises OSError (e.g. ConnectionRefusedError) or TimeoutError."""
        loop = asyncio.get_running_loop()
        self._decoder = FrameDecoder(MAX_FRAME)
        self.closed.clear()
        self.joined.clear()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if self.receive_buffer is not None:
                # Set before connect: the window is negotiated in the handshake (docs/testing.md #5).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
            transport, _ = await loop.create_connection(lambda: _StreamProtocol(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self._transport = transport

    async def join(self, host: str, port: int, timeout: float = 5.0) -> float:
        """Connect, say hello, wait for welcome; returns the seconds it took."""
        self.join_started = self.clock()
        self.join_seconds = None
        await self.connect(host, port, timeout)
        self.send({"type": "hello", "nick": self.nick, "room": self.room})
        try:
            await asyncio.wait_for(self.joined.wait(), timeout)
        except asyncio.TimeoutError:
            raise LabError(
                _("{nick}: no welcome over TCP from {host}:{port} within {timeout:g} s").format(
                    nick=self.nick, host=host, port=port, timeout=timeout
                )
            ) from None
        assert self.join_seconds is not None
        return self.join_seconds

    def _transmit(self, payload: dict[str, Any]) -> None:
        if not self.connected:
            return
        data = encode_frame(encode_payload(payload))
        self.bytes_out += len(data)
        assert self._transport is not None
        self._transport.write(data)

    def on_data(self, data: bytes) -> None:
        now = self.clock()
        self.bytes_in += len(data)
        frames = self._decoder.feed(data)
        for frame in frames:
            try:
                payload = decode_payload(frame)
            except ProtocolError:
                self.errors["client_decode"] = self.errors.get("client_decode", 0) + 1
                continue
            self.handle(payload, now)
        if self._decoder.error is not None and self._transport is not None:
            self.errors["broken_frame"] = self.errors.get("broken_frame", 0) + 1
            self._transport.abort()

    def on_connection_lost(self, exc: Exception | None) -> None:
        # asyncio closes the socket only after this returns: TCP_INFO is still readable.
        self.lost_at = self.clock()
        self._finish_tcp_info()
        self._transport = None
        self.closed.set()

    def _read_tcp_info(self) -> None:
        """Snapshot TCP_INFO of the open connection (counters only grow, so the last one wins)."""
        if self._transport is None:
            return
        sock = self._transport.get_extra_info("socket")
        info = tcp_info(sock) if sock is not None else None
        if info is None:
            self._have_tcp_info = False
        self._tcp_current = info

    def _finish_tcp_info(self) -> None:
        """The connection ends: fold its last snapshot into the totals."""
        self._read_tcp_info()
        if self._tcp_current is not None:
            for key, value in self._tcp_current.items():
                self._tcp_finished[key] += value
        self._tcp_current = None

    def close(self) -> None:
        if self._transport is not None:
            self._finish_tcp_info()
            transport, self._transport = self._transport, None
            transport.close()
        self.closed.set()

    def abort(self) -> None:
        if self._transport is not None:
            transport, self._transport = self._transport, None
            transport.abort()
        self.closed.set()

    def record(self) -> dict[str, Any]:
        self._read_tcp_info()
        totals = dict(self._tcp_finished)
        for key, value in (self._tcp_current or {}).items():
            totals[key] += value
        data = super().record()
        if self._have_tcp_info:
            data["packets_in"] = totals["segs_in"]
            data["packets_out"] = totals["segs_out"]
            data["retransmits"] = totals["retransmits"]
        else:
            data["packets_in"] = data["packets_out"] = None
        return data


# --- UDP ---------------------------------------------------------------------------


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, bot: UDPBot) -> None:
        self.bot = bot

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.bot.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.bot.errors["socket_error"] = self.bot.errors.get("socket_error", 0) + 1


class UDPBot(Bot):
    """A bot over UDP: one payload per datagram, no connection, nothing guaranteed.

    The socket is *not* connected: `sendto` to a server that is gone succeeds
    silently, which is exactly what the `restart` scenario shows.
    """

    transport = "udp"

    def __init__(
        self, nick: str, room: str, clock: Callable[[], float] = time.time, receive_buffer: int = UDP_RECEIVE_BUFFER
    ) -> None:
        super().__init__(nick, room, clock)
        self.receive_buffer = receive_buffer
        self._transport: asyncio.DatagramTransport | None = None
        self.server: tuple[str, int] | None = None
        self.cookie: str | None = None
        self.token: str | None = None  # from the welcome; on every later datagram (docs/protocol.md §8)
        self.not_joined_at: float | None = None

    async def open(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            sock.setblocking(False)
            transport, _ = await loop.create_datagram_endpoint(lambda: _DatagramProtocol(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self._transport = transport
        self.server = (host, port)

    def hello(self) -> None:
        """Send hello, with the cookie once the server has challenged us (docs/protocol.md §2)."""
        payload: dict[str, Any] = {"type": "hello", "nick": self.nick, "room": self.room}
        if self.cookie is not None:
            payload["cookie"] = self.cookie
        self.send(payload)

    async def join(self, host: str, port: int, timeout: float = 5.0, retry: float = 0.25) -> float:
        """hello -> challenge -> hello with cookie -> welcome, resending hello every `retry` s."""
        if self._transport is None:
            await self.open(host, port)
        return await self.rejoin(timeout, retry)

    async def rejoin(self, timeout: float = 5.0, retry: float = 0.25) -> float:
        self.joined.clear()
        self.cookie = None
        self.token = None
        self.join_started = self.clock()
        self.join_seconds = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.hello()
            try:
                await asyncio.wait_for(self.joined.wait(), min(retry, max(0.001, deadline - time.monotonic())))
            except asyncio.TimeoutError:
                continue
            assert self.join_seconds is not None
            return self.join_seconds
        raise LabError(
            _("{nick}: no welcome over UDP from {server} within {timeout:g} s (is UDP enabled on the server?)").format(
                nick=self.nick, server=self.server, timeout=timeout
            )
        )

    def on_challenge(self, payload: dict[str, Any]) -> None:
        cookie = payload.get("cookie")
        if isinstance(cookie, str) and not self.joined.is_set():
            self.cookie = cookie
            self.hello()  # answer at once; the retry loop covers a lost answer

    def on_error(self, code: str, payload: dict[str, Any]) -> None:
        if code == "not_joined" and self.joined.is_set():
            # A server that restarted has forgotten us: the first sign a UDP client gets.
            self.not_joined_at = self.clock()
            self.note("server answered not_joined: it has forgotten us (restarted?)")
            self.joined.clear()

    def _transmit(self, payload: dict[str, Any]) -> None:
        if self._transport is None or self.server is None:
            return
        if self.token is not None:
            # The server drops datagrams from our address that do not carry it.
            payload = {**payload, "token": self.token}
        data = encode_payload(payload)
        self.bytes_out += len(data)
        self.packets_out += 1
        self._transport.sendto(data, self.server)

    def on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        now = self.clock()
        self.bytes_in += len(data)
        self.packets_in += 1
        try:
            payload = decode_payload(data)
        except ProtocolError:
            self.errors["client_decode"] = self.errors.get("client_decode", 0) + 1
            return
        if payload.get("type") == "welcome" and isinstance(payload.get("token"), str):
            self.token = payload["token"]
        self.handle(payload, now)

    def close(self) -> None:
        if self._transport is not None:
            transport, self._transport = self._transport, None
            transport.close()
        self.closed.set()


async def until(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Wait (bounded) until `condition()` holds; returns whether it did."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


def _synced(bot: Bot) -> bool:
    return "sync" in bot.pongs


def _each_moved_on(bots: list[Bot], before: dict[int, tuple[bool, bool]]) -> Callable[[], bool]:
    """A condition: every bot got a new answer (pong or stats) since `before` was taken."""
    return lambda: all((_synced(bot), bot.stats is not None) != before[id(bot)] for bot in bots)


async def sync_and_collect(bots: list[Bot], timeout: float = 5.0, retry: float = 0.2) -> None:
    """Make sure every bot has heard the last word, then fetch its server-side stats.

    Each bot pings until a pong comes back (for UDP: anything missing below
    that pong's seq is really lost, not still on its way), then asks for
    `stats`; both are resent every `retry` s because over UDP the request or
    the answer may be lost too.
    """
    deadline = time.monotonic() + timeout
    for bot in bots:
        bot.stats = None
        bot.pongs.pop("sync", None)
    pending = list(bots)
    while pending and time.monotonic() < deadline:
        for bot in pending:
            if not _synced(bot):
                bot.ping("sync")
            else:
                bot.request_stats()
        before = {id(bot): (_synced(bot), bot.stats is not None) for bot in pending}
        await until(_each_moved_on(pending, before), retry)
        pending = [bot for bot in pending if bot.stats is None]
