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

from chatsrv.wire import FrameDecoder, ProtocolError, decode_payload, encode_frame, encode_payload

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
                self._trace(trace_chunk(len(data), frames, self._decoder))
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


def trace_chunk(size: int, frames: list[bytes], decoder: FrameDecoder) -> str:
    """Describe one recv for --trace-wire: size, whole frames, bytes held for the next."""
    sizes = " + ".join(f"[4+{len(frame)}]" for frame in frames) or "no complete frame"
    held = f", {decoder.buffered} bytes held for the next frame" if decoder.buffered else ""
    return f"recv {size} bytes: {len(frames)} frame(s) {sizes}{held}"
