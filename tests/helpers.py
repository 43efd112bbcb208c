"""Test helpers: a blocking protocol client and bounded waiting.

Every wait has a deadline; nothing sleeps and hopes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from lanchat.wire import FrameDecoder, decode_payload, encode_frame, encode_payload

TIMEOUT = 5.0


def gated(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> threading.Event:
    """Make `owner.name` wait (at most 10 s) until the returned event is set, then run as before."""
    gate = threading.Event()
    original = getattr(owner, name)

    def held(*args: Any, **kwargs: Any) -> Any:
        gate.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, held)
    return gate


def wait_until(condition: Callable[[], Any], timeout: float = TIMEOUT, interval: float = 0.01) -> Any:
    """Poll `condition` until it is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {condition}")
        time.sleep(interval)


class _Expecting:
    """`expect` on top of a `recv(timeout)` that returns the next payload."""

    def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        raise NotImplementedError

    def expect(self, kind: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """Skip payloads until one of type `kind` (with `fields`) arrives; return it."""
        deadline = time.monotonic() + timeout
        while True:
            payload = self.recv(max(0.01, deadline - time.monotonic()))
            if payload.get("type") == kind and all(payload.get(k) == v for k, v in fields.items()):
                return payload
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind} {fields} in time")


class Client(_Expecting):
    """A raw protocol client over TCP for tests (blocking, with timeouts)."""

    def __init__(
        self, port: int, host: str = "127.0.0.1", source: str | None = None, rcvbuf: int | None = None
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.decoder = FrameDecoder(16 * 1024 * 1024)
        self.inbox: list[dict[str, Any]] = []
        self.closed = False

    def __enter__(self):  # returns self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, payload: dict[str, Any]) -> None:
        self.sock.sendall(encode_frame(encode_payload(payload)))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, timeout: float) -> bool:
        """Read once; False on EOF."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return False
        for frame in self.decoder.feed(data):
            self.inbox.append(decode_payload(frame))
        return True

    def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next payload; AssertionError if none arrives in time."""
        deadline = time.monotonic() + timeout
        while not self.inbox:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no payload arrived in time")
            try:
                if not self._fill(left):
                    raise AssertionError("connection closed while waiting for a payload")
            except TimeoutError:
                raise AssertionError("no payload arrived in time") from None
        return self.inbox.pop(0)

    def wait_closed(self, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Read until the server closes; return everything received meanwhile."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("server did not close the connection")
            try:
                self._fill(left)
            except TimeoutError:
                raise AssertionError("server did not close the connection") from None
        received, self.inbox = self.inbox, []
        return received

    def join(self, nick: str, room: str | None = None, features: list[str] | None = None) -> dict[str, Any]:
        hello: dict[str, Any] = {"type": "hello", "nick": nick}
        if room is not None:
            hello["room"] = room
        if features is not None:
            hello["features"] = features
        self.send(hello)
        return self.expect("welcome")


def raw_json(text: str) -> bytes:
    """A frame around arbitrary bytes of text (for malformed-payload tests)."""
    data = text.encode("utf-8")
    return encode_frame(data)


def dumps(payload: Any) -> bytes:
    return encode_frame(json.dumps(payload).encode())


class UDPClient(_Expecting):
    """A raw protocol client over UDP for tests: numbered sends, bounded receives.

    Every datagram received is kept in `datagrams` (raw bytes) so tests can
    count what the server sent to this address.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", source: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((source, 0))
        self.server = (host, port)
        self.seq = 0
        self.inbox: list[dict[str, Any]] = []
        self.datagrams: list[bytes] = []
        self.token: str | None = None  # from the welcome; sent on every later datagram (docs/protocol.md §8)

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.sock.close()

    def send(self, payload: dict[str, Any], numbered: bool = True) -> None:
        """Send one payload; with `numbered`, add this client's next seq (docs/protocol.md §3).

        Once a welcome gave this client its token, every payload carries it
        (unless the payload already says which token, or None to send none).
        """
        if numbered:
            self.seq += 1
            payload = {**payload, "seq": self.seq}
        if self.token is not None and "token" not in payload:
            payload = {**payload, "token": self.token}
        payload = {key: value for key, value in payload.items() if not (key == "token" and value is None)}
        self.sock.sendto(encode_payload(payload), self.server)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def token_field(self) -> bytes:
        """`"token":"…"`, for raw datagrams that must still come from this member."""
        assert self.token is not None, "no welcome yet"
        return b'"token":"%s"' % self.token.encode()

    def recv_datagram(self, timeout: float = TIMEOUT) -> bytes | None:
        """The next datagram from the server, or None if none arrives within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, sender = self.sock.recvfrom(65536)
            except TimeoutError:
                return None
            if sender[:2] == self.server:
                self.datagrams.append(data)
                return data

    def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next payload; AssertionError if none arrives in time."""
        if self.inbox:
            return self.inbox.pop(0)
        data = self.recv_datagram(timeout)
        if data is None:
            raise AssertionError("no datagram arrived in time")
        payload = decode_payload(data)
        if payload.get("type") == "welcome" and isinstance(payload.get("token"), str):
            self.token = payload["token"]
        return payload

    def join(self, nick: str, room: str | None = None) -> dict[str, Any]:
        """The cookie handshake: hello, challenge, hello with the cookie, welcome."""
        hello: dict[str, Any] = {"type": "hello", "nick": nick}
        if room is not None:
            hello["room"] = room
        self.send(hello)
        challenge = self.expect("challenge")
        self.send({**hello, "cookie": challenge["cookie"]})
        return self.expect("welcome")
