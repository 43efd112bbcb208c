"""TCP (and later UDP) transports behind one async interface.

`open_transport(...)` returns an object with `send(payload)`,
`receive() -> payload | None` (None once the server is gone) and `close()`.
The TCP transport frames with `chatsrv.wire` and can report, for every
`recv`, its size and where frame boundaries fell (`--trace-wire`).
Imports: chatsrv.wire only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from chatsrv.wire import HEADER, FrameDecoder, ProtocolError, decode_payload, encode_frame, encode_payload

CLIENT_MAX_FRAME = 16 * 1024 * 1024  # accept whatever a server announces, within reason


class TransportError(Exception):
    """The server cannot be reached or the connection broke; message is for people."""


class Transport(Protocol):
    name: str

    async def send(self, payload: dict[str, Any]) -> None: ...

    async def receive(self) -> dict[str, Any] | None: ...

    async def close(self) -> None: ...


class TCPTransport:
    """Length-framed JSON over one TCP connection (PROTOCOL.md §2)."""

    name = "tcp"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trace: Callable[[str], None] | None = None) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(CLIENT_MAX_FRAME)
        self._ready: list[dict[str, Any]] = []
        self._trace = trace
        self._pending = 0  # stream bytes of a frame begun but not finished (for the trace)
        self._sent = 0

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float = 10.0, trace: Callable[[str], None] | None = None) -> TCPTransport:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except asyncio.TimeoutError:
            raise TransportError(f"cannot connect to {host}:{port}: no answer after {timeout:g} s") from None
        except ConnectionRefusedError:
            raise TransportError(f"cannot connect to {host}:{port}: connection refused (is chatsrv running there?)") from None
        except OSError as error:
            raise TransportError(f"cannot connect to {host}:{port}: {error.strerror or error}") from None
        return cls(reader, writer, trace)

    async def send(self, payload: dict[str, Any]) -> None:
        self._sent += 1
        try:
            self._writer.write(encode_frame(encode_payload(payload)))
            await self._writer.drain()
        except (ConnectionError, OSError) as error:
            raise TransportError(f"connection lost: {error}") from None

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
                raise TransportError(f"the server sent a broken frame: {self._decoder.error.message}")
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
    prefix and N payload bytes (PROTOCOL.md §2).
    """
    parts: list[str] = []
    whole = list(frames)
    if pending_before and whole:
        first = whole.pop(0)
        parts.append(f"end of a frame begun earlier ({HEADER.size + len(first) - pending_before} bytes, [4+{len(first)}] in all)")
    parts.extend(f"[4+{len(frame)}]" for frame in whole)
    after = pending_after(size, frames, pending_before)
    if after and not frames and pending_before:
        parts.append(f"middle of a frame ({size} bytes; {after} of it so far)")
    elif after:
        parts.append(f"start of the next frame ({after} bytes)")
    count = f"{len(frames)} complete frame{'s' if len(frames) != 1 else ''}"
    return f"recv {size} bytes, {count}: " + " | ".join(parts)
