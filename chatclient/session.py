"""One chat session's life, shared by both faces (the terminal UI and line mode).

Owns the connection from the first connect to the last close: opening the
transport, `hello` and the wait for `welcome`, asking again for a password
or a nick when the server refuses them, reconnecting with backoff (with
`nick_2` ... when ours was taken meanwhile), the round-trip ping and "server
lost" over UDP, and `bye` with the wait for the server to close. `phase` is
the one answer to "am I still in the session?": the faces and the ping read
it, and only this module changes it.

    CONNECTING -> JOINING -> IN_ROOM <-> LOST (UDP server silent, then heard again)
         ^           |          |
         |           v          v  connection ended (reconnect allowed)
         +----- RECONNECTING <--+
    any phase -> CLOSING (bye sent) -> CLOSED; refused, kicked or given up -> CLOSED

The faces only render and read keys. The session reports to a `Listener`
(lines to show, "something changed", "ask for a nick / password", "ended on
its own", "crashed") and takes commands (`start`, `perform`, `send`, `quit`).
Must not import prompt_toolkit, sockets or chatsrv: the network is reached
only through the `Transport` interface, so TCP and UDP look the same here.
`Phase`, `Habits` and `Listener` are in chatclient.sessiontypes; reconnecting
is the `Reconnecting` part (chatclient.reconnect) mixed into `ChatSession`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from chatclient import commands, longtext
from chatclient.lines import Line
from chatclient.reconnect import Reconnecting
from chatclient.sessiontypes import INTERACTIVE, PING_EVERY, Connect, Habits, Listener, Phase, Sleep, backoff_delays
from chatclient.state import MUTE_ENDED, ClientState
from chatclient.transport import Transport, TransportError
from lanchat.i18n import _
from lanchat.protocol import BATCH_JOINS, MAX_TEXT

WELCOME_TIMEOUT = 10.0  # seconds from hello to welcome before giving up
# How long quitting waits for the server to close after `bye`. The wait ends as
# soon as the server closes (milliseconds normally; at once over UDP, which has
# nothing to close), so the cap costs only when the server does not answer; it
# is 2 s, not less, so that a script's last lines still arrive on a loaded machine.
BYE_WAIT = 2.0
FIRST_PING_AFTER = 0.5
PING_GRACE = 1.0  # a pong later than the next ping plus this counts as missed
SPLIT_BURST = 10  # parts of a long text sent at once; the rest paced below the server's rate limit
SPLIT_PACE = 0.25  # seconds between the paced ones (the server's default is 5 messages/s)
MUTE_SLACK = 0.05  # a timed mute is cleared this long after its end, never before it
ANSWERED = ("say", "whisper")  # payloads the server answers with an echo to the sender (or an error)
UDP_JOIN_TRIES = 3  # a /join over UDP is sent up to 3 times ...
UDP_JOIN_WAIT = 1.0  # ... a second apart, until its welcome arrives


class ChatSession(Reconnecting):
    """The connection's life for one user; see the module docstring."""

    def __init__(
        self,
        connect: Connect,
        nick: str,
        room: str,
        address: str,
        listener: Listener,
        *,
        password: str | None = None,
        habits: Habits = INTERACTIVE,
        backoff: Callable[[], Iterator[float]] = backoff_delays,
        sleep: Sleep = asyncio.sleep,  # how reconnect waits (tests pass a fake)
        welcome_timeout: float = WELCOME_TIMEOUT,
    ) -> None:
        self.connect = connect
        self.address = address
        self.listener = listener
        self.password = password
        self.habits = habits
        self.backoff = backoff
        self.sleep = sleep
        self.welcome_timeout = welcome_timeout
        self.state = ClientState(nick=nick, room=room)
        self.phase = Phase.CONNECTING
        self.transport: Transport | None = None
        self.failure: str | None = None  # why start() failed, for people; None when the user gave up
        self.retry_at = 0.0  # monotonic time of the next reconnect attempt
        self.attempt = 0
        self.last_heard = time.monotonic()
        self._quitting = False
        self._quiet_rooms = 0  # our own automatic `rooms` requests whose answer is not shown
        self._mute_timer: asyncio.Future[None] | None = None
        self._mute_clock_for: float | None = None  # the mute end the timer is set for
        self._unanswered = 0  # says and whispers sent whose echo (or error) has not arrived yet
        self._errors_seen = 0  # errors received so far: a refused UDP /join is not asked again
        self._all_answered = asyncio.Event()
        self._all_answered.set()
        self._receiver: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Future[Any]] = []
        self._over = asyncio.Event()  # set when the session ended on its own, or a task crashed
        self._crash: BaseException | None = None
        self._op_secret: str | None = None  # the secret last sent with /op, to regain operator after a reconnect
        self._regaining_op = False  # our automatic `op` after a reconnect waits for its answer

    # --- what the faces read -----------------------------------------------

    @property
    def in_session(self) -> bool:
        """Whether we are in a room: IN_ROOM, or LOST (still in, but the UDP server has gone quiet)."""
        return self.phase in (Phase.IN_ROOM, Phase.LOST)

    def status(self) -> tuple[str, str]:
        """The phase in words for a status bar, and how worried to look (ok, warn, bad)."""
        if self.phase is Phase.IN_ROOM:
            silent = self.silent_for()
            if silent is not None:
                return _("no answer for {silent} s").format(silent=silent), "warn"
            return _("connected"), "ok"
        if self.phase is Phase.RECONNECTING:
            left = max(0, round(self.retry_at - time.monotonic()))
            return _("reconnecting in {left} s (try {attempt})").format(left=left, attempt=self.attempt), "warn"
        if self.phase is Phase.LOST:
            return _("server lost (no answer for {silent} s)").format(
                silent=int(time.monotonic() - self.last_heard)
            ), "bad"
        if self.phase is Phase.CLOSED:
            return _("disconnected"), "bad"
        if self.phase is Phase.CLOSING:
            return _("leaving"), "warn"
        return _("connecting"), "warn"

    def silent_for(self) -> int | None:
        """Whole seconds since the server last answered, once a ping went unanswered; None while it answers.

        Pings go every `ping_interval()` and are answered in milliseconds, so a
        silence longer than an interval and a second means one was missed: the
        bar then says so (a dead UDP server is noticed only by this) instead
        of "connected" and the last round trip for up to `peer_timeout` seconds.
        """
        if self.habits.ping_every is None or not self.in_session:
            return None
        silent = time.monotonic() - self.last_heard
        if silent <= self.ping_interval() + PING_GRACE:
            return None
        return int(silent)

    def ping_interval(self) -> float:
        """Every 5 s, or more often when a UDP server forgets silent peers sooner (docs/protocol.md §2)."""
        every = self.habits.ping_every if self.habits.ping_every is not None else PING_EVERY
        if self.state.transport == "udp" and self.state.peer_timeout:
            return min(every, self.state.peer_timeout / 3)
        return every

    async def wait_over(self) -> None:
        """Return when the session ended on its own (after `Listener.ended`); raise what a task crashed with."""
        await self._over.wait()
        if self._crash is not None:
            raise self._crash

    # --- commands from the faces -------------------------------------------

    async def start(self) -> bool:
        """Connect and join, asking the listener when refused; then receive (and ping) in the background.

        False when it cannot go on: `failure` says why, or is None when the
        user gave up at a question (or the server refused for a reason it showed).
        """
        if not await self._open():
            return False
        while True:
            assert self.transport is not None
            try:
                result = await self._join(self.transport)
            except TransportError as error:
                return await self._fail(str(error))
            if result == "ok":
                break
            if result == "auth_failed":
                # The server closed (TCP) or forgot (UDP) us: ask, then try on a fresh connection.
                password = await self.listener.ask_password()
                if not password:
                    return await self._fail(None)
                self.password = password
                await self._drop_transport()
                self.state.needs_password = False
                if not await self._open():
                    return False
                continue
            if result in ("nick_taken", "nick_invalid"):
                nick = await self.listener.ask_nick(result)
                if nick is None:
                    return await self._fail(None)
                self.state.nick = nick
                continue
            if result == "timeout":
                return await self._fail(
                    _("no welcome from {address} within {welcome_timeout:g} s").format(
                        address=self.address, welcome_timeout=self.welcome_timeout
                    )
                )
            if result == "closed":
                return await self._fail(
                    _("{address} closed the connection before welcome").format(address=self.address)
                )
            return await self._fail(None)  # refused for a reason the server gave (shown above)
        self._receiver = self._background(self._receive_loop())
        if self.habits.ping_every is not None:
            self._background(self._ping_loop())
        return True

    async def perform(self, action: commands.Action) -> None:
        """Carry out one typed line that needs no face of its own (/help and /quit do)."""
        if isinstance(action, commands.Problem):
            self._say(action.message, "error")
        elif isinstance(action, commands.Send):
            if action.payload.get("type") == "rooms":
                self._quiet_rooms = 0  # asked for by hand: show the answer (even if ours got lost over UDP)
            await self.send(action.payload)
        elif action.name == "ping":
            await self.send({"type": "ping", "id": "user", "t": time.time()})
        elif action.name == "stats":
            await self.send({"type": "stats"})
        elif action.name == "topic":
            topic = self.state.topic
            self._say(
                _("topic of {room}: {topic}").format(room=self.state.room, topic=topic)
                if topic
                else _("{room} has no topic").format(room=self.state.room)
            )
        else:
            self._say(_("/{name} is not available in this client").format(name=action.name), "error")

    async def send(self, payload: dict[str, Any]) -> bool:
        """Send if in the room with a server that answers; otherwise say so (the terminal keeps the line in Up).

        A `say` or `whisper` whose text is over the server's limit goes as
        several messages, cut at white space (`chatclient.longtext`), and the
        user is told how many.
        """
        text = payload.get("text")
        if payload.get("type") in ("say", "whisper") and isinstance(text, str):
            parts = longtext.split_text(text)
            if len(parts) > 1:
                return await self._send_parts(payload, parts)
        return await self._send_one(payload)

    async def _send_parts(self, payload: dict[str, Any], parts: list[str]) -> bool:
        for number, part in enumerate(parts):
            if number >= SPLIT_BURST:
                await asyncio.sleep(SPLIT_PACE)  # stay under the server's rate limit
            if not await self._send_one({**payload, "text": part}):
                if number:
                    self._say(
                        _("only the first {number} of {count} parts were sent").format(number=number, count=len(parts)),
                        "error",
                    )
                return False
        self._say(
            _("that text was over {limit:,} characters: sent as {count} messages").format(
                limit=MAX_TEXT, count=len(parts)
            )
        )
        return True

    async def _send_one(self, payload: dict[str, Any]) -> bool:
        if self.phase is not Phase.IN_ROOM or self.transport is None:
            self._say(_("not sent: {status} (Up brings the line back)").format(status=self.status()[0]), "error")
            return False
        try:
            await self.transport.send(payload)
        except TransportError as error:
            self._say(_("not sent: {error}").format(error=error), "error")
            return False
        if payload.get("type") in ANSWERED:
            self._unanswered += 1
            self._all_answered.clear()
        if payload.get("type") == "op":
            self._op_secret = str(payload.get("secret"))
        if payload.get("type") == "join" and self.state.transport == "udp" and self.habits.confirm_udp_join:
            self._background(self._confirm_join(str(payload["room"]), self._errors_seen))
        return True

    async def quit(self) -> None:
        """Say bye when in the room, give the server a moment to close, stop the tasks, close. Safe to repeat."""
        self._quitting = True
        receiver = self._receiver
        for task in self._tasks:
            if task is not receiver:
                task.cancel()
        transport = self.transport
        if transport is not None and self.in_session:
            self._set_phase(Phase.CLOSING)
            try:
                if self._unanswered and self.state.transport == "udp":
                    # Over UDP nothing orders our bye after the echoes of our last lines
                    # (TCP's close does): wait for them first, as long as quitting waits anyway.
                    await asyncio.wait_for(self._all_answered.wait(), BYE_WAIT)
            except asyncio.TimeoutError:
                pass
            try:
                await transport.send({"type": "bye"})
                if receiver is not None and not receiver.done():
                    # The server answers bye by closing; what it sent before arrives first.
                    await asyncio.wait_for(asyncio.shield(receiver), BYE_WAIT)
            except (TransportError, asyncio.TimeoutError):
                pass
        if receiver is not None:
            receiver.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._drop_transport()
        if self.phase is not Phase.CLOSED:
            self._set_phase(Phase.CLOSED)

    # --- joining -------------------------------------------------------------

    async def _open(self) -> bool:
        """A fresh transport; False (with `failure` set) when it cannot be opened."""
        self._set_phase(Phase.CONNECTING)
        try:
            self.transport = await self.connect()
        except TransportError as error:
            return await self._fail(str(error))
        self.address = self.transport.address  # with several --host, the one that answered
        self.state.transport = self.transport.name
        return True

    async def _fail(self, failure: str | None) -> bool:
        self.failure = failure
        await self._drop_transport()
        self._set_phase(Phase.CLOSED)
        return False

    async def _join(self, transport: Transport, quiet: str = "") -> str:
        """Say hello with our nick and room; "ok", "closed", "timeout" or the error code.

        Everything that arrives meanwhile is shown, but an error whose code is `quiet` (the caller says it).
        Over UDP the transport itself answers a `challenge` and resends a lost hello (docs/protocol.md §2);
        it raises TransportError when the server never answers.
        """
        self._set_phase(Phase.JOINING)
        hello: dict[str, Any] = {
            "type": "hello",
            "nick": self.state.nick,
            "room": self.state.room,
            "features": [BATCH_JOINS],  # bursts of joins and leaves as one `members` (docs/protocol.md §13)
        }
        if self.password is not None:
            hello["password"] = self.password
        await transport.send(hello)
        deadline = time.monotonic() + self.welcome_timeout
        while True:
            try:
                payload = await asyncio.wait_for(transport.receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return "timeout"
            if payload is None:
                return "closed"
            kind = payload.get("type")
            self.last_heard = time.monotonic()
            lines = self.state.apply(payload, time.time())
            if not (kind == "error" and quiet and payload.get("code") == quiet):
                self.listener.show(lines)
            if kind == "welcome":
                self._set_phase(Phase.IN_ROOM)
                self._watch_mute()
                await self._ask_rooms(transport)
                self.listener.changed()
                return "ok"
            if kind == "error":
                return str(payload.get("code", "error"))

    async def _ask_rooms(self, transport: Transport) -> None:
        """Learn the room names for Tab completion, without showing the answer."""
        if self.habits.learn_rooms:
            self._quiet_rooms += 1
            await transport.send({"type": "rooms"})

    async def _confirm_join(self, room: str, errors: int) -> None:
        """Over UDP the `join` or its `welcome` can be lost: ask again until we are there.

        Joining the room you are in just repeats the welcome (docs/protocol.md §4),
        so asking twice is harmless. `errors`: errors received before the join was sent.
        """
        for _attempt in range(UDP_JOIN_TRIES - 1):
            await asyncio.sleep(UDP_JOIN_WAIT)
            if (
                self.state.room.casefold() == room.casefold()
                or self.phase is not Phase.IN_ROOM
                or self.transport is None
                or self._errors_seen != errors  # the join was answered with a refusal: asking again repeats it
            ):
                return
            try:
                await self.transport.send({"type": "join", "room": room})
            except TransportError:
                return

    # --- in the room -----------------------------------------------------------

    async def _receive_loop(self) -> None:
        # Receiving goes on while quitting: what the server sent before it closes
        # (the answer to our last line, say) is still shown; quit() ends the wait.
        while True:
            transport = self.transport
            if transport is None:
                return
            problem: str | None = None
            try:
                payload = await transport.receive()
            except TransportError as error:
                problem = str(error)
                payload = None
            if payload is not None and await self._handle(payload):
                continue
            if self._quitting or not await self._connection_ended(problem):
                return

    async def _handle(self, payload: dict[str, Any]) -> bool:
        """One payload from the server in the room; False when the server says our session is over."""
        self.last_heard = time.monotonic()
        if self.phase is Phase.LOST:
            self._set_phase(Phase.IN_ROOM)
            self._say(_("the server answers again"))
        kind = payload.get("type")
        if kind == "error":
            self._errors_seen += 1
        if self._unanswered and self._answers_us(payload):
            self._unanswered -= 1
            if not self._unanswered:
                self._all_answered.set()
        if self._regaining_op and self._answer_to_regain(payload):
            return True
        lines = self.state.apply(payload, time.time())
        self._watch_mute()
        if kind == "rooms" and self._quiet_rooms:
            self._quiet_rooms -= 1
            lines = []
        # A bell for a mention or a whisper as it happens, never for old history.
        bell = kind in ("message", "whisper") and any(line.mention for line in lines)
        self.listener.show(lines, bell)
        if kind == "welcome" and self.transport is not None:
            await self._ask_rooms(self.transport)  # after /join: the room list may have grown
        self.listener.changed()
        # The server sends `left` about us only when our session ends (kicked, shutdown):
        # nothing more will come on this connection (over UDP nothing closes it).
        return self.state.connected

    async def _ping_loop(self) -> None:
        """Measure the round trip; over UDP, notice a server that stopped answering."""
        # The first ping waits for the face to be up: measured while it is still
        # starting, the round trip would include the client's own start-up time.
        await asyncio.sleep(min(FIRST_PING_AFTER, self.ping_interval()))
        while not self._quitting:
            if self.in_session and self.transport is not None:
                try:
                    await self.transport.send({"type": "ping", "id": "rtt", "t": time.time()})
                except TransportError:
                    pass  # the receive loop notices a broken TCP connection
                timeout = self.state.peer_timeout
                silent = time.monotonic() - self.last_heard
                if self.silent_for() is not None:
                    self.state.rtt = None  # the last round trip says nothing about a server that stopped answering
                if self.state.transport == "udp" and timeout and self.phase is Phase.IN_ROOM and silent > timeout:
                    self._set_phase(Phase.LOST)
                    self._say(
                        _("no answer from {address} for {timeout:g} s: server lost").format(
                            address=self.address, timeout=timeout
                        ),
                        "error",
                    )
            await asyncio.sleep(self.ping_interval())

    def _watch_mute(self) -> None:
        """A timed mute: make sure something notices its end (the server may say nothing).

        One clock at a time, set for the current end: a mute lifted, lengthened
        or given again replaces the clock set for the old one.
        """
        until = self.state.muted_until
        if until == self._mute_clock_for:
            return
        if self._mute_timer is not None:
            self._mute_timer.cancel()
            self._mute_timer = None
        self._mute_clock_for = until
        if until is not None:
            self._mute_timer = self._background(self._mute_clock(until))

    async def _mute_clock(self, until: float) -> None:
        """Clear the timed mute ending at `until` when its time is up, and say so."""
        await asyncio.sleep(max(0.0, until - time.time()) + MUTE_SLACK)
        if self.state.muted_until == until and self.state.mute_ended(time.time()):
            self._mute_clock_for = None
            self._say(_(MUTE_ENDED), "notice")
            self.listener.changed()

    # --- small helpers -----------------------------------------------------------

    def _answers_us(self, payload: dict[str, Any]) -> bool:
        """The echo of something we said or whispered, or an error (which answers what we sent)."""
        kind = payload.get("type")
        if kind == "error":
            return True
        return kind in ("message", "whisper") and str(payload.get("from", "")).casefold() == self.state.nick.casefold()

    def _set_phase(self, phase: Phase) -> None:
        self.phase = phase
        self.listener.changed()

    def _say(self, text: str, kind: str = "info") -> None:
        self.listener.show([Line(kind, text, time.time())])

    def _end(self, reason: str) -> bool:
        """Over on its own: CLOSED, the listener told why. Always False (for `return self._end(...)`)."""
        self._set_phase(Phase.CLOSED)
        self._over.set()
        self.listener.ended(reason)
        return False

    async def _drop_transport(self) -> None:
        """Close the current transport; the next one counts seq from 1 again (docs/protocol.md §3)."""
        transport, self.transport = self.transport, None
        self._unanswered = 0  # what was said on that connection will not be answered on the next
        self._all_answered.set()
        if transport is not None:
            await transport.close()
            self.state.new_connection()

    def _background(self, work: Awaitable[None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(work)
        task.add_done_callback(self._task_ended)
        self._tasks.append(task)
        return task

    def _task_ended(self, task: asyncio.Future[Any]) -> None:
        """A bug in a background task must not leave a face that silently stopped receiving."""
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        self._quitting = True
        self._crash = error
        self._over.set()
        self.listener.crashed(error)
