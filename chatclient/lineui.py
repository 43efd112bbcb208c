"""Plain line mode: stdin lines in, one readable line per event out.

For pipes, scripts and bots (and `--plain`). Reuses `commands`, `state` and
`render` unchanged. EOF on stdin says `bye` and exits 0; a refused or
dropped connection prints a clear message and exits 1.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any, TextIO

from chatclient import commands, render
from chatclient.state import ClientState, Line
from chatclient.transport import Transport, TransportError

WELCOME_TIMEOUT = 10.0
BYE_WAIT = 2.0


class LineClient:
    def __init__(
        self, transport: Transport, state: ClientState, out: TextIO, room: str, address: str, password: str | None = None
    ) -> None:
        self.transport = transport
        self.password = password
        self.state = state
        self.out = out
        self.room = room
        self.address = address
        self.ping_id = 0

    def show(self, lines: list[Line]) -> None:
        for line in lines:
            print(render.plain(line), file=self.out, flush=True)

    def info(self, text: str) -> None:
        self.show([Line("info", text, time.time())])

    async def join(self) -> bool:
        """Say hello and wait for welcome; False (after explaining) when refused."""
        hello: dict[str, Any] = {"type": "hello", "nick": self.state.nick, "room": self.room}
        if self.password is not None:
            hello["password"] = self.password
        await self.transport.send(hello)
        deadline = time.monotonic() + WELCOME_TIMEOUT
        while time.monotonic() < deadline:
            try:
                payload = await asyncio.wait_for(self.transport.receive(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            if payload is None:
                print(f"chatclient: {self.address} closed the connection before welcome", file=sys.stderr)
                return False
            self.show(self.state.apply(payload, time.time()))
            if payload.get("type") == "welcome":
                return True
            if payload.get("type") == "error":
                if self.state.needs_password:
                    hint = "add --password SECRET" if self.password is None else "check --password"
                    print(f"chatclient: {self.address} did not let us in ({hint})", file=sys.stderr)
                return False
        print(f"chatclient: no welcome from {self.address} within {WELCOME_TIMEOUT:g} s", file=sys.stderr)
        return False

    async def perform(self, action: commands.Action) -> bool:
        """Carry out one typed line; False when the user quits."""
        if isinstance(action, commands.Problem):
            self.show([Line("error", action.message, time.time())])
        elif isinstance(action, commands.Send):
            await self.transport.send(action.payload)
        elif action.name == "quit":
            return False
        elif action.name == "help":
            for text in commands.help_lines():
                print(text, file=self.out, flush=True)
        elif action.name == "ping":
            await self.transport.send({"type": "ping", "id": "user", "t": time.time()})
        elif action.name == "stats":
            await self.transport.send({"type": "stats"})
        elif action.name == "topic":
            topic = self.state.topic
            self.info(f"topic of {self.state.room}: {topic}" if topic else f"{self.state.room} has no topic")
        return True

    async def pump(self) -> bool:
        """Print incoming payloads until the server closes; True if it closed cleanly."""
        while True:
            payload = await self.transport.receive()
            if payload is None:
                return False
            self.show(self.state.apply(payload, time.time()))
            if not self.state.connected:
                return True  # kicked (over UDP nothing closes): the session is over


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], stream: TextIO) -> None:
    """Thread: feed stdin lines into the loop; None marks EOF."""
    try:
        for line in stream:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
    finally:
        loop.call_soon_threadsafe(queue.put_nowait, None)


async def run(
    transport: Transport,
    nick: str,
    room: str,
    address: str,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    password: str | None = None,
) -> int:
    state = ClientState(nick=nick, room=room, transport=transport.name)
    client = LineClient(transport, state, out, room, address, password)
    try:
        if not await client.join():
            return 1
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(target=_stdin_lines, args=(loop, lines, stdin), daemon=True, name="stdin").start()
        receiver = asyncio.ensure_future(client.pump())
        try:
            while True:
                getter = asyncio.ensure_future(lines.get())
                done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if receiver in done:
                    getter.cancel()
                    receiver.result()
                    ended = "an operator ended your session (see above)" if state.ended else f"connection to {address} lost"
                    print(f"chatclient: {ended}", file=sys.stderr)
                    return 1
                line = getter.result()
                if line is None:
                    break
                action = commands.parse(line)
                if action is not None and not await client.perform(action):
                    break
            await transport.send({"type": "bye"})
            # The server answers bye by closing; everything it sent before arrives first.
            try:
                await asyncio.wait_for(asyncio.shield(receiver), BYE_WAIT)
            except asyncio.TimeoutError:
                pass
            return 0
        finally:
            receiver.cancel()
    except TransportError as error:
        print(f"chatclient: {error}", file=sys.stderr)
        return 1
    finally:
        await transport.close()


def main_sync(transport_factory: Any, nick: str, room: str, address: str, password: str | None = None) -> int:
    async def go() -> int:
        try:
            transport = await transport_factory()
        except TransportError as error:
            print(f"chatclient: {error}", file=sys.stderr)
            return 1
        return await run(transport, nick, room, address, password=password)

    return asyncio.run(go())
