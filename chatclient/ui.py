"""The terminal chat UI: the only module that imports prompt_toolkit.

Layout: incoming lines are printed *above* a pinned input line with
`prompt_async` (inside `patch_stdout`, so a stray write from anywhere can
never break the line being typed), and a bottom toolbar shows who and where
you are and how the connection is doing. We chose this over a full-screen
layout with its own scrollable history because the history then stays in the
terminal's own scrollback: the mouse wheel, Shift-PageUp, the terminal's
search and copy-with-the-mouse all work as students expect, text survives
the program's exit (handy for copying a transcript), and there is no
scrolling code of ours to get wrong. The price is that old lines are not
re-wrapped when the window is resized, which a chat can live with.

Lines are printed in batches: everything that arrives within 10 ms goes
out in one `run_in_terminal` (one redraw of the prompt), so a burst of
history or a busy room neither flickers nor falls behind (measured with a
fake server: 5,000 messages arriving one by one took 5.9 s to show when
every line redrew the prompt, 0.8 s batched).

Owns: the prompt and its key handling, Tab completion, the toolbar, paste
confirmation, the bell, and the connection's life (ping every 5 s,
reconnect with backoff over TCP, "lost" detection over UDP). Everything
else is reused: `commands` parses (and generates /help), `state` turns
payloads into `Line`s, `render` styles and sanitizes them. Must not import
sockets or anything from chatsrv; the network is reached only through the
`Transport` interface, so TCP and UDP look the same here.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app_or_none, run_in_terminal
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import ColorDepth, Output
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.renderer import print_formatted_text as print_fragments
from prompt_toolkit.shortcuts import CompleteStyle, choice
from prompt_toolkit.styles import Style

from chatclient import commands, discovery, render
from chatclient.state import ClientState, Line, alternative_nick
from chatclient.transport import Transport, TransportError

Connect = Callable[[], Awaitable[Transport]]
Sleep = Callable[[float], Awaitable[None]]

PING_EVERY = 5.0  # seconds between round-trip pings (the toolbar's rtt)
FIRST_PING_AFTER = 0.5
BACKOFF_FIRST = 1.0  # first wait before reconnecting, then doubled ...
BACKOFF_LIMIT = 30.0  # ... up to this
WELCOME_TIMEOUT = 10.0
BYE_WAIT = 1.0  # how long /quit waits for the server to close after bye
PASTE_CONFIRM_OVER = 5  # a paste of more lines asks first
PASTE_BURST = 10  # pasted lines sent at once; the rest paced below the rate limit
PASTE_PACE = 0.25  # seconds between the paced ones (the server's default is 5/s)
UDP_JOIN_TRIES = 3  # a /join over UDP is sent up to 3 times ...
UDP_JOIN_WAIT = 1.0  # ... a second apart, until its welcome arrives
PRINT_BATCH_DELAY = 0.01  # lines arriving within 10 ms share one redraw of the prompt
NICK_TRIES = 9  # nick_2 ... nick_9 when ours was taken during a reconnect

STYLE = Style.from_dict({"prompt": "bold", "bottom-toolbar": "reverse"})


def backoff_delays(first: float = BACKOFF_FIRST, limit: float = BACKOFF_LIMIT) -> Iterator[float]:
    """1, 2, 4, 8, 16, 30, 30, ... seconds: quick when the server blinks, gentle when it is down."""
    delay = first
    while True:
        yield min(delay, limit)
        delay = min(delay * 2, limit)


class ChatCompleter(Completer):
    """Tab completion from `commands.complete` (the command table says what completes to what)."""

    def __init__(self, state: ClientState) -> None:
        self.state = state

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        # Names come from the network: offer only ones that are safe to insert as typed.
        nicks = [nick for nick in self.state.completion_nicks() if render.sanitize(nick) == nick]
        rooms = [room for room in self.state.rooms if render.sanitize(room) == room]
        for suggestion in commands.complete(document.text_before_cursor, nicks, rooms):
            yield Completion(suggestion.text, -suggestion.replaces, display=suggestion.display, display_meta=suggestion.meta)


class ChatUI:
    """One chat session in a terminal: prompt, toolbar, and the connection behind them."""

    def __init__(
        self,
        connect: Connect,
        nick: str | None,
        room: str,
        address: str,
        *,
        colour: bool = True,
        login_name: str = "guest",
        input: Input | None = None,
        output: Output | None = None,
        ping_every: float = PING_EVERY,
        backoff: Callable[[], Iterator[float]] = backoff_delays,
        sleep: Sleep = asyncio.sleep,  # how reconnect waits (tests pass a fake)
        password: str | None = None,  # asked for when the server answers auth_failed
    ) -> None:
        self.connect = connect
        self.password = password
        self.address = address
        self.colour = colour
        self.login_name = login_name
        self.ping_every = ping_every
        self.backoff = backoff
        self.sleep = sleep
        self.state = ClientState(nick=nick or "", room=room)
        self.ask_nick = nick is None
        self.transport: Transport | None = None
        self.phase = "connecting"  # connecting, connected, reconnecting, lost, closed
        self.retry_at = 0.0  # monotonic time of the next reconnect attempt
        self.attempt = 0
        self.last_heard = time.monotonic()
        self.quitting = False
        self.reconnect_allowed = True
        self.asking: str | None = None  # the question being asked, if any
        self.quiet_rooms = 0  # our own automatic `rooms` requests whose answer is not shown
        self.color_depth = ColorDepth.DEPTH_8_BIT if colour else ColorDepth.DEPTH_1_BIT
        self.session: PromptSession[str] = PromptSession(
            input=input,
            output=output,
            completer=ChatCompleter(self.state),
            complete_while_typing=False,  # Tab asks; chat text should not pop menus up
            complete_style=CompleteStyle.MULTI_COLUMN,
            reserve_space_for_menu=3,
            bottom_toolbar=self.toolbar,
            refresh_interval=0.5,  # the reconnect countdown ticks
            erase_when_done=True,  # the server's echo of our line is what stays
            style=STYLE,
            color_depth=self.color_depth,
        )
        self.output = self.session.output
        self._pending: list[Line] = []
        self._bell = False
        self._tasks: list[asyncio.Future[Any]] = []

    # --- showing things --------------------------------------------------

    def toolbar(self) -> render.Fragments:
        status, level = self.status()
        return render.status_bar(self.state, self.address, status, level, self.colour, self.output.get_size().columns)

    def status(self) -> tuple[str, str]:
        """The connection state for the toolbar, and how worried to look."""
        if self.phase == "connected":
            return "connected", "ok"
        if self.phase == "reconnecting":
            left = max(0, round(self.retry_at - time.monotonic()))
            return f"reconnecting in {left} s (try {self.attempt})", "warn"
        if self.phase == "lost":
            return "server lost (no answer)", "bad"
        if self.phase == "closed":
            return "disconnected", "bad"
        return "connecting", "warn"

    def prompt(self) -> render.Fragments:
        return [("class:prompt", f"[{render.sanitize(self.state.room)}] ")]

    def show(self, lines: list[Line], bell: bool = False) -> None:
        """Queue lines to print above the prompt, in batches (a busy room must not redraw per line)."""
        if not lines:
            return
        if not self._pending:
            asyncio.get_running_loop().call_later(PRINT_BATCH_DELAY, self._flush)
        self._pending.extend(lines)
        self._bell = self._bell or bell

    def info(self, text: str, kind: str = "info") -> None:
        self.show([Line(kind, text, time.time())])

    def _flush(self) -> None:
        lines, self._pending = self._pending, []
        bell, self._bell = self._bell, False
        if not lines:
            return
        # Our own wrap, one cell short of the width: see render.wrap for why.
        width = max(20, self.output.get_size().columns - 1)
        text: render.Fragments = []
        for line in lines:
            # Styles are fixed strings from render, never network text (a style
            # containing "[ZeroWidthEscape]" would be written raw).
            text.extend(render.fragments(line, self.colour, width))
        formatted = FormattedText(text)

        def write() -> None:
            print_fragments(self.output, formatted, STYLE, color_depth=self.color_depth)
            if bell:
                # The only BEL that reaches the terminal is this one, ours;
                # a BEL inside network text was made visible by sanitize.
                self.output.bell()
            self.output.flush()

        running = get_app_or_none()  # the chat prompt, or a question such as the paste confirmation
        if running is not None and running.is_running:
            run_in_terminal(write)
        else:
            write()

    def refresh(self) -> None:
        if self.session.app.is_running:
            self.session.app.invalidate()

    # --- the session -----------------------------------------------------

    async def run(self) -> int:
        """Ask for a nick if needed, connect, join, chat until the user leaves; the exit code."""
        if self.ask_nick:
            nick = await self._ask("your nick: ", self.login_name)
            if nick is None:
                return 0
            self.state.nick = nick
        try:
            self.transport = await self.connect()
        except TransportError as error:
            print(f"chatclient: {error}", file=sys.stderr)
            return 1
        self.state.transport = self.transport.name
        try:
            if not await self._first_join():
                return 1
            self._tasks = [asyncio.ensure_future(self._receive_loop()), asyncio.ensure_future(self._ping_loop())]
            for task in self._tasks:
                task.add_done_callback(self._task_ended)
            self._catch_signals()
            with patch_stdout():
                await self._input_loop()
            return 0
        finally:
            await self._leave()

    async def _ask(self, question: str, default: str, erase: bool = False, secret: bool = False) -> str | None:
        """A one-off question on the terminal; None when the user presses Ctrl-C or Ctrl-D.

        A `default` is offered in brackets and taken on a bare Enter; the input
        line starts empty, so typing a name does not add to the default. With
        `secret` the answer is typed blind (shown as stars) and never goes
        into any history.
        """
        if default:
            question = f"{question.rstrip().rstrip(':')} [{default}]: "
        asker: PromptSession[str] = PromptSession(
            input=self.session.input,
            output=self.output,
            color_depth=self.color_depth,
            style=STYLE,
            bottom_toolbar=self.toolbar if self.phase == "connected" else None,
            erase_when_done=erase,
        )
        self.asking = question
        try:
            answer = (await asker.prompt_async(question, is_password=secret)).strip()
            return answer or default
        except (KeyboardInterrupt, EOFError):
            return None
        finally:
            self.asking = None

    async def _first_join(self) -> bool:
        """Join at start-up; a taken or invalid nick, or a needed password, is asked for."""
        while True:
            assert self.transport is not None
            try:
                result = await self._join(self.transport)
            except TransportError as error:
                print(f"chatclient: {error}", file=sys.stderr)
                return False
            if result == "ok":
                return True
            if result == "auth_failed":
                # The server closed (TCP) or forgot (UDP) us: ask, then try on a fresh connection.
                if not await self._ask_password():
                    return False
                continue
            if result in ("nick_taken", "nick_invalid"):
                suggestion = alternative_nick(self.state.nick, 2) if result == "nick_taken" else self.login_name
                nick = await self._ask("another nick: ", suggestion)
                if nick is None:
                    return False
                self.state.nick = nick
                continue
            if result == "timeout":
                print(f"chatclient: no welcome from {self.address} within {WELCOME_TIMEOUT:g} s", file=sys.stderr)
            elif result == "closed":
                print(f"chatclient: {self.address} closed the connection before welcome", file=sys.stderr)
            return False

    async def _ask_password(self) -> bool:
        """Ask for the server password (docs/protocol.md, operators and access) and reconnect."""
        password = await self._ask("password: ", "", erase=True, secret=True)
        if not password:
            return False
        self.password = password
        if self.transport is not None:
            await self.transport.close()
        self.transport = None
        self.state.new_connection()
        self.state.needs_password = False
        try:
            self.transport = await self.connect()
        except TransportError as error:
            print(f"chatclient: {error}", file=sys.stderr)
            return False
        return True

    async def _join(self, transport: Transport) -> str:
        """Say hello with our nick and room; "ok", "closed", "timeout" or the error code.

        Everything that arrives meanwhile is shown. Over UDP the transport
        itself answers a `challenge` and resends a lost hello (docs/protocol.md §2);
        it raises TransportError when the server never answers.
        """
        hello: dict[str, Any] = {"type": "hello", "nick": self.state.nick, "room": self.state.room}
        if self.password is not None:
            hello["password"] = self.password
        await transport.send(hello)
        deadline = time.monotonic() + WELCOME_TIMEOUT
        while True:
            try:
                payload = await asyncio.wait_for(transport.receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return "timeout"
            if payload is None:
                return "closed"
            kind = payload.get("type")
            self.last_heard = time.monotonic()
            self.show(self.state.apply(payload, time.time()))
            if kind == "welcome":
                self.phase = "connected"
                await self._ask_rooms(transport)
                self.refresh()
                return "ok"
            if kind == "error":
                return str(payload.get("code", "error"))

    async def _ask_rooms(self, transport: Transport) -> None:
        """Learn the room names for Tab completion, without printing the answer."""
        self.quiet_rooms += 1
        await transport.send({"type": "rooms"})

    async def _input_loop(self) -> None:
        while not self.quitting:
            try:
                text = await self.session.prompt_async(self.prompt)
            except (KeyboardInterrupt, EOFError):
                return
            if "\n" in text:
                await self._paste(text)
                continue
            action = commands.parse(text)
            if action is not None and not await self.perform(action):
                return

    async def perform(self, action: commands.Action) -> bool:
        """Carry out one typed line; False when the user quits."""
        if isinstance(action, commands.Problem):
            self.info(action.message, "error")
        elif isinstance(action, commands.Send):
            if action.payload.get("type") == "rooms":
                self.quiet_rooms = 0  # asked for by hand: show the answer (even if ours got lost over UDP)
            if await self.send(action.payload) and action.payload.get("type") == "join" and self.state.transport == "udp":
                self._tasks.append(asyncio.ensure_future(self._confirm_join(str(action.payload["room"]))))
        elif action.name == "quit":
            return False
        elif action.name == "help":
            self.info("\n".join(commands.help_lines()))  # one block: the clock once, the rest indented
        elif action.name == "ping":
            await self.send({"type": "ping", "id": "user", "t": time.time()})
        elif action.name == "stats":
            await self.send({"type": "stats"})
        elif action.name == "topic":
            topic = self.state.topic
            self.info(f"topic of {self.state.room}: {topic}" if topic else f"{self.state.room} has no topic")
        else:
            self.info(f"/{action.name} is not available in this client", "error")
        return True

    async def send(self, payload: dict[str, Any]) -> bool:
        """Send if connected; otherwise say so (the line is still in the Up history)."""
        if self.phase != "connected" or self.transport is None:
            self.info(f"not sent: {self.status()[0]} (Up brings the line back)", "error")
            return False
        try:
            await self.transport.send(payload)
        except TransportError as error:
            self.info(f"not sent: {error}", "error")
            return False
        return True

    async def _paste(self, text: str) -> None:
        """A multi-line paste: one message per line, after asking when it is long."""
        lines = [line for line in text.split("\n") if line.strip()]
        if len(lines) > PASTE_CONFIRM_OVER:
            answer = await self._ask(f"send {len(lines)} pasted lines as {len(lines)} messages? [y/N] ", "", erase=True)
            if (answer or "").lower() not in ("y", "yes"):
                self.info("paste not sent (Up brings it back)")
                return
        # Pasted lines are text, never commands: a pasted "/quit" is said, not run.
        self._tasks.append(asyncio.ensure_future(self._send_lines(lines)))

    async def _confirm_join(self, room: str) -> None:
        """Over UDP the `join` or its `welcome` can be lost: ask again until we are there.

        Joining the room you are in just repeats the welcome (docs/protocol.md §4),
        so asking twice is harmless.
        """
        for _ in range(UDP_JOIN_TRIES - 1):
            await asyncio.sleep(UDP_JOIN_WAIT)
            if self.state.room.casefold() == room.casefold() or self.phase != "connected" or self.transport is None:
                return
            try:
                await self.transport.send({"type": "join", "room": room})
            except TransportError:
                return

    async def _send_lines(self, lines: list[str]) -> None:
        for number, line in enumerate(lines):
            if number >= PASTE_BURST:
                await asyncio.sleep(PASTE_PACE)  # stay under the server's rate limit
            if not await self.send({"type": "say", "text": line}):
                return

    # --- the connection's life ---------------------------------------------

    async def _receive_loop(self) -> None:
        while not self.quitting:
            transport = self.transport
            if transport is None:
                return
            try:
                payload = await transport.receive()
            except TransportError as error:
                self.info(str(error), "error")
                payload = None
            if payload is None:
                if self.quitting or not await self._reconnect():
                    return
                continue
            await self._handle(payload)

    async def _handle(self, payload: dict[str, Any]) -> None:
        """One payload from the server during the chat."""
        self.last_heard = time.monotonic()
        if self.phase == "lost":
            self.phase = "connected"
            self.info("the server answers again")
        kind = payload.get("type")
        lines = self.state.apply(payload, time.time())
        if kind == "rooms" and self.quiet_rooms:
            self.quiet_rooms -= 1
            lines = []
        if kind == "left" and str(payload.get("nick", "")).casefold() == self.state.nick.casefold() and payload.get("reason") == "kicked":
            self.reconnect_allowed = False  # coming straight back after a kick would be rude
        # A bell for a mention or a whisper as it happens, never for old history.
        bell = kind in ("message", "whisper") and any(line.mention for line in lines)
        self.show(lines, bell)
        if kind == "welcome" and self.transport is not None:
            await self._ask_rooms(self.transport)  # after /join: the room list may have grown
        self.refresh()

    async def _reconnect(self) -> bool:
        """The session ended: retry with backoff, hello with the same nick and room; False when giving up.

        Over TCP that is a closed connection; over UDP the transport ends the
        session when the server has forgotten us (`not_joined`, after a
        restart or a long silence), and a fresh transport joins again.
        """
        if self.transport is not None:
            await self.transport.close()
        self.transport = None
        self.state.new_connection()
        if not self.reconnect_allowed:
            self.phase = "closed"
            self.info(f"disconnected from {self.address}; /quit to leave", "error")
            self.refresh()
            return False
        self.info(f"connection to {self.address} lost; reconnecting", "error")
        wanted = self.state.nick
        for attempt, delay in enumerate(self.backoff(), 1):
            self.attempt = attempt
            self.phase = "reconnecting"
            self.retry_at = time.monotonic() + delay
            self.refresh()
            await self.sleep(delay)
            if self.quitting:
                return False
            self.phase = "connecting"
            self.refresh()
            try:
                transport = await self.connect()
            except TransportError:
                continue
            self.transport = transport
            try:
                result = await self._join(transport)
                number = 2
                while result == "nick_taken" and number <= NICK_TRIES:
                    self.state.nick = alternative_nick(wanted, number)
                    self.info(f"{wanted} was taken while you were away: you are {self.state.nick} now", "notice")
                    number += 1
                    result = await self._join(transport)
            except TransportError:
                result = "closed"
            if result == "ok":
                self.info(f"reconnected to {self.address}")
                return True
            self.transport = None
            await transport.close()
            self.state.new_connection()
            if result == "auth_failed":
                self.phase = "closed"
                self.refresh()
                return False
        return False

    def ping_interval(self) -> float:
        """Every 5 s, or more often when a UDP server forgets silent peers sooner (§2)."""
        if self.state.transport == "udp" and self.state.peer_timeout:
            return min(self.ping_every, self.state.peer_timeout / 3)
        return self.ping_every

    async def _ping_loop(self) -> None:
        """Measure the round trip; over UDP, notice a server that stopped answering."""
        # The first ping waits for the prompt to be up: measured while the UI is
        # still starting, the round trip would include our own start-up time.
        await asyncio.sleep(min(FIRST_PING_AFTER, self.ping_interval()))
        while not self.quitting:
            if self.phase in ("connected", "lost") and self.transport is not None:
                try:
                    await self.transport.send({"type": "ping", "id": "rtt", "t": time.time()})
                except TransportError:
                    pass  # the receive loop notices a broken TCP connection
                timeout = self.state.peer_timeout
                silent = time.monotonic() - self.last_heard
                if self.state.transport == "udp" and timeout and self.phase == "connected" and silent > timeout:
                    self.phase = "lost"
                    self.info(f"no answer from {self.address} for {timeout:g} s: server lost", "error")
                    self.refresh()
            await asyncio.sleep(self.ping_interval())

    def _task_ended(self, task: asyncio.Future[Any]) -> None:
        """A bug in a background task must not leave a UI that silently stopped receiving."""
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        self.quitting = True
        if self.session.app.is_running:
            self.session.app.exit(exception=error)

    def _catch_signals(self) -> None:
        """SIGTERM or a closed terminal (SIGHUP) leave like /quit: bye, terminal restored."""
        try:
            loop = asyncio.get_running_loop()
            for number in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(number, self._stop_prompt)
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            pass  # not the main thread, or not Unix: Ctrl-C and Ctrl-D still work

    def _stop_prompt(self) -> None:
        self.quitting = True
        if self.session.app.is_running:
            self.session.app.exit(exception=EOFError())

    async def _leave(self) -> None:
        """Say bye, give the server a moment to close, stop our tasks, close."""
        self.quitting = True
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGHUP):
            try:
                loop.remove_signal_handler(number)
            except (NotImplementedError, RuntimeError, ValueError, AttributeError):
                pass
        receiver = self._tasks[0] if self._tasks else None
        for task in self._tasks[1:]:
            task.cancel()
        transport = self.transport
        if transport is not None and self.phase in ("connected", "lost"):
            try:
                await transport.send({"type": "bye"})
                if receiver is not None:
                    # The server answers bye by closing; what it sent before arrives first.
                    await asyncio.wait_for(asyncio.shield(receiver), BYE_WAIT)
            except (TransportError, asyncio.TimeoutError):
                pass
        if receiver is not None:
            receiver.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.transport is not None:
            await self.transport.close()
        if self._pending:
            self._flush()


def main_sync(
    connect: Connect, nick: str | None, room: str, address: str, colour: bool, login_name: str, password: str | None = None
) -> int:
    """Run the UI until the user leaves; the process exit code."""
    ui = ChatUI(connect, nick, room, address, colour=colour, login_name=login_name, password=password)
    try:
        return asyncio.run(ui.run())
    except KeyboardInterrupt:
        return 130  # Ctrl-C while connecting, before the prompt took the keyboard


def pick_server(servers: Sequence[discovery.FoundServer], udp: bool = False) -> discovery.FoundServer | None:
    """Several servers answered discovery: a pick list (arrows or a number, then Enter).

    Returns the server chosen, or None for `q` or Ctrl-C. Names and rooms come
    from the network: `discovery.describe` sanitizes them.
    """
    bindings = KeyBindings()

    @bindings.add("q")
    def _quit(event: KeyPressEvent) -> None:
        event.app.exit(result=-1)

    try:
        index = choice(
            message=f"{len(servers)} lanchat servers answered. Which one do you join?",
            options=[(number, discovery.describe(server, udp)) for number, server in enumerate(servers)],
            bottom_toolbar=" arrows or a number, Enter: join   q: quit   (by hand: chatclient --host ADDRESS) ",
            key_bindings=bindings,
        )
    except KeyboardInterrupt:
        return None
    return servers[index] if 0 <= index < len(servers) else None
