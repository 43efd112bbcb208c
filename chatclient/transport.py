"""TCP and UDP transports behind one async interface.

`open_transport(...)` returns an object with `send(payload)`,
`receive() -> payload | None` (None once the server is gone) and `close()`.
The TCP transport frames with `lanchat.wire` and can report, for every
`recv`, its size and where frame boundaries fell (`--trace-wire`). The UDP
transport sends one datagram per payload and does what UDP needs and TCP
does for free (docs/protocol.md §2, §3): the cookie handshake, retrying a `hello`
that may have been lost, keepalive pings, a `seq` on everything it sends, and,
once the `welcome` gave it one, the session's `token` on every datagram
(docs/protocol.md §8: the server drops datagrams from our address without it).
Imports: lanchat.wire, and lanchat.netinfo for how an address is shown.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

from lanchat.i18n import _, ngettext, os_reason
from lanchat.netinfo import shown_address
from lanchat.wire import HEADER, FrameDecoder, ProtocolError, decode_payload, encode_frame, encode_payload

CLIENT_MAX_FRAME = 16 * 1024 * 1024  # accept whatever a server announces, within reason


class TransportError(Exception):
    """The server cannot be reached or the connection broke; message is for people."""


class Transport(Protocol):
    name: str
    address: str  # the server's host:port, as shown to people

    async def send(self, payload: dict[str, Any]) -> None: ...

    async def receive(self) -> dict[str, Any] | None: ...

    async def close(self) -> None: ...


class TCPTransport:
    """Length-framed JSON over one TCP connection (docs/protocol.md §2)."""

    name = "tcp"

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trace: Callable[[str], None] | None = None
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(CLIENT_MAX_FRAME)
        self._ready: list[dict[str, Any]] = []
        self._trace = trace
        self._pending = 0  # stream bytes of a frame begun but not finished (for the trace)
        self.address = ""  # set by connect

    @classmethod
    async def connect(
        cls, host: str, port: int, timeout: float = 10.0, trace: Callable[[str], None] | None = None
    ) -> TCPTransport:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except asyncio.TimeoutError:
            raise TransportError(
                _("cannot connect to {host}:{port}: no answer after {timeout:g} s").format(
                    host=host, port=port, timeout=timeout
                )
            ) from None
        except ConnectionRefusedError:
            raise TransportError(
                _("cannot connect to {host}:{port}: connection refused (is chatsrv running there?)").format(
                    host=host, port=port
                )
            ) from None
        except OSError as error:
            raise TransportError(
                _("cannot connect to {host}:{port}: {strerror}").format(
                    host=host, port=port, strerror=os_reason(error)
                )
            ) from None
        transport = cls(reader, writer, trace)
        transport.address = shown_address(host, port)
        return transport

    async def send(self, payload: dict[str, Any]) -> None:
        try:
            self._writer.write(encode_frame(encode_payload(payload)))
            await self._writer.drain()
        except (ConnectionError, OSError) as error:
            raise TransportError(_("connection lost: {error}").format(error=error)) from None

    async def receive(self) -> dict[str, Any] | None:
        while not self._ready:
            try:
                data = await self._reader.read(65536)
            except (ConnectionError, OSError):
                return None
            if not data:
                return None
            frames = self._decoder.feed(data)
            if self._trace is not None:
                self._trace(trace_chunk(len(data), frames, self._pending))
                self._pending = pending_after(len(data), frames, self._pending)
            if self._decoder.error is not None:
                raise TransportError(
                    _("the server sent a broken frame: {message}").format(message=self._decoder.error.message)
                )
            for frame in frames:
                try:
                    self._ready.append(decode_payload(frame))
                except ProtocolError:
                    continue  # a server bug must not kill the client; skip the payload
        return self._ready.pop(0)

    async def close(self) -> None:
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass


def pending_after(size: int, frames: list[bytes], pending_before: int) -> int:
    """Bytes of an unfinished frame after a recv: what was pending, plus the recv, minus whole frames."""
    return pending_before + size - sum(HEADER.size + len(frame) for frame in frames)


def trace_chunk(size: int, frames: list[bytes], pending_before: int = 0) -> str:
    """Describe one recv for --trace-wire: its size and where frame boundaries fell in it.

    `pending_before` is how many bytes of an unfinished frame earlier recvs
    delivered (header included). A frame is shown as [4+N]: the length
    prefix and N payload bytes (docs/protocol.md §2).
    """
    parts: list[str] = []
    whole = list(frames)
    if pending_before and whole:
        first = whole.pop(0)
        parts.append(
            _("end of a frame begun earlier ({size} bytes, [4+{payload}] in all)").format(
                size=HEADER.size + len(first) - pending_before, payload=len(first))
        )
    parts.extend(f"[4+{len(frame)}]" for frame in whole)
    after = pending_after(size, frames, pending_before)
    if after and not frames and pending_before:
        parts.append(_("middle of a frame ({size} bytes; {after} of it so far)").format(size=size, after=after))
    elif after:
        parts.append(_("start of the next frame ({after} bytes)").format(after=after))
    count = ngettext("{count} complete frame", "{count} complete frames", len(frames)).format(count=len(frames))
    return _("recv {size} bytes, {count}: ").format(size=size, count=count) + " | ".join(parts)


# --- UDP (docs/protocol.md §2) ------------------------------------------------------

HELLO_TRIES = 3  # a hello (or its answer) can be lost too: try this many times ...
HELLO_INTERVAL = 1.0  # ... this many seconds apart
_GAVE_UP = object()  # queued when every hello went unanswered
_ENDED = object()  # queued when the session is over (bye sent, server gone)


class _Datagrams(asyncio.DatagramProtocol):
    """Collects received datagrams in a queue for `UDPTransport.receive`."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.refused = False  # an ICMP "port unreachable" came back: nothing listens there

    def datagram_received(self, data: bytes, address: Any) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError):
            self.refused = True


class UDPTransport:
    """JSON payloads, one per datagram, to one server address (docs/protocol.md §2).

    `send` numbers every payload (`seq` 1, 2, 3 ..., so the server can count
    what it lost); a `hello` is answered here when the server sends a
    `challenge` (the same hello again, with the cookie) and retried every
    second, up to 3 times in all. After the `welcome`, a keepalive `ping`
    goes out every `peer_timeout / 3` seconds so the server does not drop
    us for silence. Challenges are handled here and never reach the caller.
    """

    name = "udp"

    def __init__(
        self,
        endpoint: asyncio.DatagramTransport,
        datagrams: _Datagrams,
        host: str,
        port: int,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self._trace = trace
        self._endpoint = endpoint
        self._datagrams = datagrams
        self.host = host
        self.port = port
        self.address = shown_address(host, port)
        self.seq = 0  # last seq this client sent
        self._hello: dict[str, Any] | None = None
        self._cookie: str | None = None
        self._token: str | None = None  # from the welcome: proves our datagrams are ours (docs/protocol.md §8)
        self._answered = asyncio.Event()  # the hello got a welcome or an error
        self._joined = False
        self._nick: str | None = None
        self._ending = False
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def connect(cls, host: str, port: int, trace: Callable[[str], None] | None = None) -> UDPTransport:
        """Open a UDP socket aimed at host:port (nothing is sent yet: UDP has no connect)."""
        loop = asyncio.get_running_loop()
        try:
            addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as error:
            raise TransportError(
                _("cannot find {host}: {strerror}").format(host=host, strerror=os_reason(error))
            ) from None
        # The server listens on IPv4 (0.0.0.0) by default: prefer an IPv4 address for a name.
        addresses.sort(key=lambda info: info[0] != socket.AF_INET)
        family, _type, _proto, _name, address = addresses[0]
        datagrams = _Datagrams()
        try:
            endpoint, _protocol = await loop.create_datagram_endpoint(
                lambda: datagrams, remote_addr=(str(address[0]), int(address[1])), family=family
            )
        except OSError as error:
            raise TransportError(
                _("cannot reach {host}:{port} over UDP: {strerror}").format(
                    host=host, port=port, strerror=os_reason(error)
                )
            ) from None
        return cls(endpoint, datagrams, host, port, trace)

    def _transmit(self, payload: dict[str, Any]) -> None:
        self.seq += 1
        numbered = {**payload, "seq": self.seq}
        if self._token is not None:
            numbered["token"] = self._token
        self._endpoint.sendto(encode_payload(numbered))

    async def send(self, payload: dict[str, Any]) -> None:
        kind = payload.get("type")
        if kind == "hello" and not self._joined:
            self._hello = dict(payload)
            self._answered.clear()
            self._tasks.append(asyncio.ensure_future(self._say_hello()))
            return
        self._transmit(payload)
        if kind == "bye":
            # The server forgets us without an answer (docs/protocol.md §4): we are done.
            self._datagrams.queue.put_nowait(_ENDED)

    async def _say_hello(self) -> None:
        """Send the hello up to HELLO_TRIES times, HELLO_INTERVAL apart, until it is answered."""
        assert self._hello is not None
        for _try in range(HELLO_TRIES):
            self._transmit(self._hello_payload())
            try:
                await asyncio.wait_for(self._answered.wait(), HELLO_INTERVAL)
                return
            except asyncio.TimeoutError:
                continue
        self._datagrams.queue.put_nowait(_GAVE_UP)

    def _hello_payload(self) -> dict[str, Any]:
        assert self._hello is not None
        return {**self._hello, "cookie": self._cookie} if self._cookie else dict(self._hello)

    async def _keep_alive(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._transmit({"type": "ping", "id": "keepalive", "t": time.time()})

    async def receive(self) -> dict[str, Any] | None:
        while True:
            if self._ending and self._datagrams.queue.empty():
                return None
            item = await self._datagrams.queue.get()
            if item is _ENDED:
                self._ending = True
                continue
            if item is _GAVE_UP:
                raise TransportError(
                    _(
                        "no answer from {host}:{port} over UDP after "
                        "{HELLO_TRIES} tries: is the server running, is UDP blocked?"
                    ).format(host=self.host, port=self.port, HELLO_TRIES=HELLO_TRIES)
                )
            if self._trace is not None:
                # No length prefix, no stream: one recvfrom is exactly one datagram (docs/protocol.md §2).
                self._trace(
                    _("recvfrom {size} bytes: 1 datagram = 1 payload (no length prefix)").format(size=len(item))
                )
            try:
                payload = decode_payload(item)
            except ProtocolError:
                continue  # a broken datagram must not kill the client; skip it
            if self._digest(payload):
                return payload

    def _digest(self, payload: dict[str, Any]) -> bool:
        """Handle what the transport itself must act on; False to hide the payload."""
        kind = payload.get("type")
        if kind == "challenge":
            cookie = payload.get("cookie")
            if self._hello is not None and not self._joined and isinstance(cookie, str):
                self._cookie = cookie
                self._transmit(self._hello_payload())  # the same hello, now with the cookie
            return False
        if kind == "welcome":
            self._answered.set()
            if isinstance(payload.get("token"), str):
                self._token = payload["token"]
            self._nick = payload.get("nick") if isinstance(payload.get("nick"), str) else self._nick
            if not self._joined:
                self._joined = True
                timeout = payload.get("peer_timeout")
                if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
                    self._tasks.append(asyncio.ensure_future(self._keep_alive(max(0.1, timeout / 3))))
        elif kind == "error":
            if not self._joined:
                self._answered.set()  # refused (nick taken ...): the caller shows why
            elif payload.get("code") == "not_joined" and payload.get("seq") == 0:
                self._ending = True  # the server forgot us (silence, restart): this session is over
        elif kind == "renamed" and self._nick is not None and payload.get("old") == self._nick:
            self._nick = payload.get("new") if isinstance(payload.get("new"), str) else self._nick
        elif (
            kind == "left"
            and isinstance(self._nick, str)
            and str(payload.get("nick", "")).casefold() == self._nick.casefold()
        ):
            self._ending = True  # we are out (server shutdown): nothing more will come
        return True

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._endpoint.close()


async def open_transport(
    host: str, port: int, udp: bool = False, trace: Callable[[str], None] | None = None
) -> Transport:
    """A connected TCP transport, or a UDP one aimed at host:port; `trace` gets one line per recv."""
    if udp:
        return await UDPTransport.connect(host, port, trace=trace)
    return await TCPTransport.connect(host, port, trace=trace)
