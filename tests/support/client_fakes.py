"""A fake server behind the client's Transport interface, for session and UI tests without sockets.

`FakeServer` answers the way docs/protocol.md says a server does (welcome to
hello, pong to ping, close after bye), records everything the client sent,
and lets a test push any payload to the client, refuse connections, or go
silent. No sockets, no threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from chatclient.transport import TransportError


class FakeTransport:
    """One connection to a FakeServer, with the same interface as TCPTransport."""

    def __init__(self, server: FakeServer, name: str) -> None:
        self.server = server
        self.name = name
        self.address = server.address
        self.incoming: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.closed = False
        self.seq = 0

    def push(self, payload: dict[str, Any]) -> None:
        """The server sends `payload` (with the next seq, §3)."""
        self.seq += 1
        self.incoming.put_nowait({**payload, "seq": self.seq})

    def drop(self) -> None:
        """The connection breaks: receive() returns None."""
        self.incoming.put_nowait(None)

    async def send(self, payload: dict[str, Any]) -> None:
        if self.closed:
            raise TransportError("connection lost: closed")
        self.server.sent.append(payload)
        self.server.answer(self, payload)

    async def receive(self) -> dict[str, Any] | None:
        return await self.incoming.get()

    async def close(self) -> None:
        self.closed = True
        self.incoming.put_nowait(None)


class FakeServer:
    """Answers hello/ping/bye/rooms like chatsrv; everything else is recorded only."""

    def __init__(
        self,
        transport: str = "tcp",
        users: tuple[str, ...] = ("bob", "carol"),
        rooms: tuple[str, ...] = ("lobby", "physics"),
        address: str = "fake:9009",
    ) -> None:
        self.address = address  # what its transports say they are connected to
        self.transport_name = transport
        self.users = list(users)
        self.rooms = list(rooms)
        self.sent: list[dict[str, Any]] = []
        self.connections: list[FakeTransport] = []
        self.refuse = 0  # refuse this many connection attempts
        self.taken: set[str] = set()  # nicks that get nick_taken
        self.silent = False  # stop answering (a dead UDP server)
        self.peer_timeout: float | None = None
        self.history: list[dict[str, Any]] = []

    @property
    def current(self) -> FakeTransport:
        return self.connections[-1]

    async def connect(self) -> FakeTransport:
        if self.refuse:
            self.refuse -= 1
            raise TransportError("cannot connect to fake: connection refused")
        connection = FakeTransport(self, self.transport_name)
        self.connections.append(connection)
        return connection

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [payload for payload in self.sent if payload.get("type") == kind]

    def answer(self, connection: FakeTransport, payload: dict[str, Any]) -> None:
        if self.silent:
            return
        kind = payload.get("type")
        if kind == "hello":
            if payload["nick"] in self.taken:
                connection.push({"type": "error", "code": "nick_taken", "message": "taken"})
                return
            welcome: dict[str, Any] = {
                "type": "welcome",
                "nick": payload["nick"],
                "room": payload.get("room", "lobby"),
                "users": [payload["nick"], *self.users],
                "history": self.history,
                "server": {"name": "fake", "version": "0"},
                "transport": self.transport_name,
                "max_frame": 65536,
                "ts": time.time(),
            }
            if self.peer_timeout is not None:
                welcome["peer_timeout"] = self.peer_timeout
            connection.push(welcome)
        elif kind == "ping":
            connection.push({"type": "pong", "id": payload.get("id"), "t": payload.get("t"), "ts": time.time()})
        elif kind == "rooms":
            connection.push({"type": "rooms", "rooms": [{"name": name, "users": 1} for name in self.rooms]})
        elif kind == "bye":
            connection.drop()


async def until(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll `condition` inside the event loop until truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


def run(coroutine: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine(), 20))


class RecordingListener:
    """A `chatclient.session.Listener` that records everything and answers questions from lists."""

    def __init__(self, nicks: list[str | None] | None = None, passwords: list[str | None] | None = None) -> None:
        self.lines: list[Any] = []  # chatclient.state.Line, in the order shown
        self.bells = 0
        self.changes = 0
        self.nicks = list(nicks or [])  # answers to ask_nick, in order; None (or none left) gives up
        self.passwords = list(passwords or [])
        self.asked: list[str] = []  # "nick:<code>" or "password", in order
        self.reasons: list[str] = []  # what `ended` was told
        self.crashes: list[BaseException] = []

    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def show(self, lines: list[Any], bell: bool = False) -> None:
        self.lines.extend(lines)
        self.bells += bell

    def changed(self) -> None:
        self.changes += 1

    async def ask_nick(self, code: str) -> str | None:
        self.asked.append(f"nick:{code}")
        return self.nicks.pop(0) if self.nicks else None

    async def ask_password(self) -> str | None:
        self.asked.append("password")
        return self.passwords.pop(0) if self.passwords else None

    def ended(self, reason: str) -> None:
        self.reasons.append(reason)

    def crashed(self, error: BaseException) -> None:
        self.crashes.append(error)


class PasswordServer(FakeServer):
    """A fake chatsrv --password: a hello without the right one gets auth_failed and is closed."""

    def __init__(self, password: str, **options: Any) -> None:
        super().__init__(**options)
        self.password = password

    def answer(self, connection: FakeTransport, payload: dict[str, Any]) -> None:
        if payload.get("type") == "hello" and payload.get("password") != self.password:
            message = "wrong password" if "password" in payload else "this server needs a password"
            connection.push({"type": "error", "code": "auth_failed", "message": message})
            connection.drop()
            return
        super().answer(connection, payload)
