"""A headless terminal UI for tests: pipe input, a dummy or in-memory VT100 output, a fake server behind it.

`chat(server)` runs a `ChatUI` against a `client_fakes.FakeServer` and yields a
`Harness`: the keys to type, what the UI showed, and the screen a VT100 terminal
would display.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pyte
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.input.base import PipeInput
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.output.vt100 import Vt100_Output

from chatclient.lines import Line
from chatclient.ui import ChatUI
from tests.support.client_fakes import FakeServer, until

ENTER, TAB, CTRL_C, CTRL_D, UP = "\r", "\t", "\x03", "\x04", "\x1b[A"


class Harness:
    """A running ChatUI and the handles a test needs."""

    def __init__(self, ui: ChatUI, keys: PipeInput, screen_bytes: io.StringIO, task: asyncio.Future[int]) -> None:
        self.ui = ui
        self.keys = keys
        self.written = screen_bytes
        self.task = task
        self.shown: list[Line] = []  # every line the UI showed, in order
        show = ui.show

        def recording_show(lines: list[Line], bell: bool = False) -> None:
            self.shown.extend(lines)
            show(lines, bell)

        ui.show = recording_show  # type: ignore[method-assign]

    def shown_text(self) -> str:
        return "\n".join(line.text for line in self.shown)

    @property
    def buffer(self) -> str:
        return self.ui.prompt_session.default_buffer.text

    def screen(self) -> str:
        """What a VT100 terminal would show (needs vt100=True)."""
        screen = pyte.Screen(80, 24)
        pyte.Stream(screen).feed(self.written.getvalue())
        return "\n".join(screen.display)

    async def type(self, text: str) -> None:
        self.keys.send_text(text)
        await until(lambda: text.rstrip(ENTER) == "" or text.rstrip(ENTER) in self.buffer or text.endswith(ENTER))

    async def prompt_ready(self) -> None:
        await until(lambda: self.ui.prompt_session.app.is_running and not self.ui._pending)

    async def exit_code(self) -> int:
        return await asyncio.wait_for(self.task, 5)


@asynccontextmanager
async def chat(
    server: FakeServer, nick: str | None = "alice", vt100: bool = False, colour: bool = True, **options: Any
) -> AsyncIterator[Harness]:
    with create_pipe_input() as keys:
        written = io.StringIO()
        output = (
            Vt100_Output(written, lambda: Size(rows=24, columns=80), term="xterm", enable_cpr=False)
            if vt100
            else DummyOutput()
        )
        options.setdefault("ping_every", 3600.0)
        ui = ChatUI(
            server.connect,
            nick,
            "lobby",
            "fake:9009",
            input=keys,
            output=output,
            colour=colour,
            login_name="login",
            **options,
        )
        task = asyncio.ensure_future(ui.run())
        harness = Harness(ui, keys, written, task)
        try:
            await until(lambda: ui.prompt_session.app.is_running or ui.asking or task.done())
            yield harness
        finally:
            if not task.done():
                ui._stop_prompt()
                try:
                    await asyncio.wait_for(task, 5)
                except asyncio.TimeoutError:
                    task.cancel()
