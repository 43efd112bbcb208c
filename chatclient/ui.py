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
confirmation, the bell, and the questions the session asks (nick, password).
The connection's life (join, reconnect, ping, "lost", bye) is
`chatclient.session`'s; this module is its `Listener` and drives it.
Everything else is reused: `commands` parses (and generates /help), `state`
turns payloads into `Line`s, `render` styles and sanitizes them. Must not
import sockets, transports or anything from chatsrv.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app_or_none, run_in_terminal
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys
from prompt_toolkit.output import ColorDepth, Output
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.renderer import print_formatted_text as print_fragments
from prompt_toolkit.shortcuts import CompleteStyle, choice
from prompt_toolkit.styles import Style

from chatclient import commands, discovery, render
from chatclient.lines import Line
from chatclient.session import ChatSession
from chatclient.sessiontypes import PING_EVERY, Connect, Habits, Phase, Sleep, backoff_delays
from chatclient.state import ClientState, alternative_nick
from lanchat import platforms
from lanchat.i18n import _

PASTE_CONFIRM_OVER = 5  # a paste of more lines asks first
PASTE_BURST = 10  # pasted lines sent at once; the rest paced below the rate limit
PASTE_PACE = 0.25  # seconds between the paced ones (the server's default is 5/s)
PRINT_BATCH_DELAY = 0.01  # lines arriving within 10 ms share one redraw of the prompt

STYLE = Style.from_dict({"prompt": "bold", "bottom-toolbar": "reverse"})



def offering(question: str, default: str) -> str:
    """`question` with `default` in brackets before its colon: `your nick [ann]: `, `你的昵称 [ann]：`."""
    stem = question.rstrip()
    colon = "：" if stem.endswith("：") else ": "  # a Chinese prompt ends in a wide colon, and keeps it
    return f"{stem.rstrip(':：')} [{default}]{colon}"

class _StepAside(Exception):
    """Ends the chat prompt for a moment so that a question (a password, a nick) can be asked."""


def _chat_keys() -> KeyBindings:
    """Keys the chat handles itself, over prompt_toolkit's defaults.

    Mouse reports are ignored: the chat does not turn mouse reporting on, so
    one can only be typed (an ESC [ M or ESC [ < ... sequence pasted or typed
    by hand), and prompt_toolkit's own parser of them crashes on malformed
    ones ("not enough values to unpack"), which stopped the prompt.
    """
    bindings = KeyBindings()

    @bindings.add(Keys.Vt100MouseEvent)
    def _ignore_mouse(event: KeyPressEvent) -> None:
        pass

    return bindings
def _nothing() -> None:
    pass


class ChatCompleter(Completer):
    """Tab completion from `commands.complete` (the command table says what completes to what)."""

    def __init__(self, state: ClientState) -> None:
        self.state = state

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        # Names come from the network: offer only ones that are safe to insert as typed.
        nicks = [nick for nick in self.state.completion_nicks() if render.sanitize(nick) == nick]
        rooms = [room for room in self.state.rooms if render.sanitize(room) == room]
        for suggestion in commands.complete(document.text_before_cursor, nicks, rooms):
            yield Completion(
                suggestion.text, -suggestion.replaces, display=suggestion.display, display_meta=suggestion.meta
            )


class ChatUI:
    """One chat session in a terminal: prompt and toolbar, driving a `ChatSession` as its listener."""

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
        password_first: bool = False,  # discovery said the server wants one: ask before the first hello
    ) -> None:
        self.colour = colour
        self.login_name = login_name
        self.session = ChatSession(
            connect,
            nick or "",
            room,
            address,
            self,
            password=password,
            habits=Habits(ping_every=ping_every),
            backoff=backoff,
            sleep=sleep,
        )
        self.state: ClientState = self.session.state
        self.ask_nick_first = nick is None
        self.ask_password_first = password_first and password is None
        self.leaving = False  # the prompt loop stops (the user quits, a signal, or a crash)
        self._release_signals: Callable[[], None] = _nothing  # undoes _catch_signals
        self.asking: str | None = None  # the question being asked, if any
        self.color_depth = ColorDepth.DEPTH_8_BIT if colour else ColorDepth.DEPTH_1_BIT
        self.prompt_session: PromptSession[str] = PromptSession(
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
            key_bindings=_chat_keys(),
        )
        self.output = self.prompt_session.output
        self._pending: list[Line] = []
        self._bell = False
        self._tasks: list[asyncio.Future[Any]] = []
        # Questions from the session waiting for the chat prompt to step aside.
        self._questions: list[tuple[str, str, bool, bool, asyncio.Future[str | None]]] = []

    # --- showing things (the session's Listener) ------------------------------

    def toolbar(self) -> render.Fragments:
        status, level = self.session.status()
        columns, closed = self.output.get_size().columns, self.session.phase is Phase.CLOSED
        address = self.session.address  # with several --host, the node it is on now
        return render.status_bar(self.state, address, status, level, self.colour, columns, users_known=not closed)

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

    def changed(self) -> None:
        if self.prompt_session.app.is_running:
            self.prompt_session.app.invalidate()

    async def ask_nick(self, code: str) -> str | None:
        """A taken nick: nick_2 offered; an invalid one: the login name offered."""
        suggestion = alternative_nick(self.state.nick, 2) if code == "nick_taken" else self.login_name
        return await self._ask_now(_("another nick: "), suggestion)

    async def ask_password(self) -> str | None:
        """The server's password (docs/protocol.md, operators and access), typed blind.

        Also while chatting: a server restarted with --password wants it on the reconnect.
        """
        if self.session.attempt:  # reconnecting, not starting
            self.info(
                _("{address} now needs a password: type it (Ctrl-C gives up)").format(address=self.session.address),
                "notice",
            )
        return await self._ask_now(_("password: "), "", erase=True, secret=True)

    def ended(self, reason: str) -> None:
        self.info(_("disconnected: {reason}. /quit to leave").format(reason=reason), "error")

    def crashed(self, error: BaseException) -> None:
        """A bug in a background task ends the prompt with that error instead of a UI that stopped receiving."""
        self.leaving = True
        if self.prompt_session.app.is_running:
            self.prompt_session.app.exit(exception=error)

    # --- the user's side ---------------------------------------------------------

    async def run(self) -> int:
        """Ask for a nick if needed, connect, join, chat until the user leaves; the exit code."""
        if self.ask_nick_first:
            nick = await self._ask(_("your nick: "), self.login_name)
            if nick is None:
                return 0
            self.state.nick = nick
        if self.ask_password_first:
            # Known to be needed: asking first spares the user a refusal before the question.
            password = await self._ask(_("password: "), "", erase=True, secret=True)
            if password is None:
                return 0
            self.session.password = password
        try:
            if not await self.session.start():
                if self.session.failure is not None:
                    print(f"chatclient: {self.session.failure}", file=sys.stderr)
                return 1
            self._catch_signals()
            with patch_stdout():
                await self._input_loop()
            return 0
        finally:
            await self._leave()

    async def _ask_now(self, question: str, default: str, erase: bool = False, secret: bool = False) -> str | None:
        """A question from the session: when the chat prompt is up, it steps aside for it (and comes back)."""
        app = self.prompt_session.app
        if not app.is_running or self.leaving:
            return await self._ask(question, default, erase, secret)
        answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._questions.append((question, default, erase, secret, answer))
        app.exit(exception=_StepAside())
        return await answer

    async def _answer_questions(self) -> None:
        """Ask what the session is waiting for, between two chat prompts."""
        while self._questions:
            question, default, erase, secret, answer = self._questions.pop(0)
            if not answer.done():
                answer.set_result(await self._ask(question, default, erase, secret))

    async def _ask(self, question: str, default: str, erase: bool = False, secret: bool = False) -> str | None:
        """A one-off question on the terminal; None when the user presses Ctrl-C or Ctrl-D.

        A `default` is offered in brackets and taken on a bare Enter; the input
        line starts empty, so typing a name does not add to the default. With
        `secret` the answer is typed blind (shown as stars) and never goes
        into any history.
        """
        if default:
            question = offering(question, default)
        asker: PromptSession[str] = PromptSession(
            input=self.prompt_session.input,
            output=self.output,
            color_depth=self.color_depth,
            style=STYLE,
            bottom_toolbar=self.toolbar if self.session.phase is Phase.IN_ROOM else None,
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

    async def _input_loop(self) -> None:
        typed = ""  # a half-typed line kept while a question was asked
        while not self.leaving:
            try:
                text = await self.prompt_session.prompt_async(self.prompt, default=typed)
            except _StepAside:
                typed = self.prompt_session.default_buffer.text
                await self._answer_questions()
                continue
            except (KeyboardInterrupt, EOFError):
                return
            typed = ""
            if "\n" in text:
                await self._paste(text)
                continue
            action = commands.parse(text)
            if action is not None and not await self.perform(action):
                return

    async def perform(self, action: commands.Action) -> bool:
        """Carry out one typed line; False when the user quits."""
        if isinstance(action, commands.Local) and action.name == "quit":
            return False
        if isinstance(action, commands.Local) and action.name == "help":
            lines = "\n".join(commands.help_lines())
            self.info(lines)  # one block: the clock once, the rest indented
        else:
            await self.session.perform(action)
        return True

    async def _paste(self, text: str) -> None:
        """A multi-line paste: one message per line, after asking when it is long."""
        lines = [line for line in text.split("\n") if line.strip()]
        if len(lines) > PASTE_CONFIRM_OVER:
            answer = await self._ask(
                _("send {count} pasted lines as {count} messages? [y/N] ").format(count=len(lines)), "", erase=True
            )
            if (answer or "").lower() not in ("y", "yes"):
                self.info(_("paste not sent (Up brings it back)"))
                return
        # Pasted lines are text, never commands: a pasted "/quit" is said, not run.
        self._tasks.append(asyncio.ensure_future(self._send_lines(lines)))

    async def _send_lines(self, lines: list[str]) -> None:
        for number, line in enumerate(lines):
            if number >= PASTE_BURST:
                await asyncio.sleep(PASTE_PACE)  # stay under the server's rate limit
            if not await self.session.send({"type": "say", "text": line}):
                return

    def _catch_signals(self) -> None:
        """SIGTERM, a closed terminal (SIGHUP) or console window (SIGBREAK) leave like /quit: bye, terminal restored."""
        # Platform hook: lanchat.platforms picks add_signal_handler or its Windows fallback.
        self._release_signals = platforms.catch_leave_signals(asyncio.get_running_loop(), self._stop_prompt)

    def _stop_prompt(self) -> None:
        self.leaving = True
        if self.prompt_session.app.is_running:
            self.prompt_session.app.exit(exception=EOFError())

    async def _leave(self) -> None:
        """Stop our own tasks, let the session say bye and close, print what is still queued."""
        self.leaving = True
        self._release_signals()
        self._release_signals = _nothing
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for *_rest, answer in self._questions:
            if not answer.done():
                answer.set_result(None)  # nobody is left to ask
        await self.session.quit()
        if self._pending:
            self._flush()


def main_sync(
    connect: Connect,
    nick: str | None,
    room: str,
    address: str,
    colour: bool,
    login_name: str,
    password: str | None = None,
    password_first: bool = False,
) -> int:
    """Run the UI until the user leaves; the process exit code."""
    platforms.console_safe_stdio()  # platform hook: error lines never raise UnicodeEncodeError
    ui = ChatUI(
        connect,
        nick,
        room,
        address,
        colour=colour,
        login_name=login_name,
        password=password,
        password_first=password_first,
    )
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
            message=_("{count} lanchat servers answered. Which one do you join?").format(count=len(servers)),
            options=[(number, discovery.describe(server, udp)) for number, server in enumerate(servers)],
            bottom_toolbar=_(" arrows or a number, Enter: join   q: quit   (by hand: chatclient --host ADDRESS) "),
            key_bindings=bindings,
        )
    except KeyboardInterrupt:
        return None
    return servers[index] if 0 <= index < len(servers) else None
