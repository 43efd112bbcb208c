"""Plain line mode: stdin lines in, one readable line per event out.

For pipes, scripts and bots (and `--plain`). Drives a `ChatSession` with the
SCRIPTED habits (no reconnect, no pings of its own) and is its `Listener`:
lines go to stdout as `render.plain` text (errors as the server's
`code: message` for scripts, the message in the chosen language when the
server sent its reason (docs/protocol.md §14), then what to do), and what ends the run goes
to stderr as one `chatclient: ...` line. EOF on stdin says `bye` and exits 0; a
refused or dropped connection exits 1. It cannot ask questions (stdin is the
chat), so a needed password or a taken nick ends the run with an explanation.
Must not import prompt_toolkit, sockets or chatsrv.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable
from typing import TextIO

from chatclient import commands, render
from chatclient.lines import Line
from chatclient.session import ChatSession
from chatclient.sessiontypes import SCRIPTED, Connect
from lanchat import platforms
from lanchat.i18n import _


class LineFace:
    """The session's listener in line mode: print, and explain what ends the run."""

    def __init__(self, out: TextIO, address: Callable[[], str], password: str | None) -> None:
        self.out = out
        self.address = address  # the session's: with several --host, the node that answered
        self.password_given = password is not None

    def show(self, lines: list[Line], bell: bool = False) -> None:
        for line in lines:
            print(render.plain(line), file=self.out, flush=True)

    def changed(self) -> None:
        pass  # nothing on screen shows the phase

    async def ask_nick(self, code: str) -> str | None:
        return None  # the server's error line (shown) says why; a script picks another --nick

    async def ask_password(self) -> str | None:
        hint = _("check --password") if self.password_given else _("add --password SECRET")
        print(
            _("chatclient: {address} did not let us in ({hint})").format(address=self.address(), hint=hint),
            file=sys.stderr,
        )
        return None

    def ended(self, reason: str) -> None:
        print(_("chatclient: {message}").format(message=reason), file=sys.stderr)

    def crashed(self, error: BaseException) -> None:
        pass  # ChatSession.wait_over raises it in `run`, which ends with its traceback


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], stream: TextIO) -> None:
    """Thread: feed stdin lines into the loop; None marks EOF. Ends quietly once the loop is closed (after /quit,
    or the session's end, nobody reads them: a line or EOF arriving then is not an error)."""
    try:
        for line in stream:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
    except RuntimeError:  # the loop is closed
        return
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(queue.put_nowait, None)


async def run(
    connect: Connect,
    nick: str,
    room: str,
    address: str,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    password: str | None = None,
) -> int:
    """Join, then send each stdin line until EOF or /quit (exit 0), or until the session ends (exit 1)."""
    face = LineFace(out, lambda: session.address, password)
    session = ChatSession(connect, nick, room, address, face, password=password, habits=SCRIPTED)
    session.state.password_given = password is not None
    session.state.codes = True  # scripts match `code: message` (docs/protocol.md §6); people get what to do after it
    try:
        if not await session.start():
            if session.failure is not None:
                print(_("chatclient: {message}").format(message=session.failure), file=sys.stderr)
            return 1
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(target=_stdin_lines, args=(loop, lines, stdin), daemon=True, name="stdin").start()
        over = asyncio.ensure_future(session.wait_over())
        try:
            while True:
                getter = asyncio.ensure_future(lines.get())
                done, _pending = await asyncio.wait({getter, over}, return_when=asyncio.FIRST_COMPLETED)
                if over in done:
                    getter.cancel()
                    over.result()  # a crash in the session raises here
                    return 1  # LineFace.ended said why
                line = getter.result()
                if line is None:
                    return 0
                action = commands.parse(line)
                if action is None:
                    continue
                if isinstance(action, commands.Local) and action.name == "quit":
                    return 0
                if isinstance(action, commands.Local) and action.name == "help":
                    for text in commands.help_lines():
                        print(text, file=out, flush=True)
                else:
                    await session.perform(action)
        finally:
            over.cancel()
    finally:
        await session.quit()


def main_sync(connect: Connect, nick: str, room: str, address: str, password: str | None = None) -> int:
    platforms.console_safe_stdio()  # platform hook: what the console cannot show is printed as \u674e, never raises
    return asyncio.run(run(connect, nick, room, address, stdin=sys.stdin, out=sys.stdout, password=password))
