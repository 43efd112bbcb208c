"""Line mode driving the session: stdin lines in, plain lines out, one stderr line for what ends the run."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import pytest

from chatclient import lineui
from tests.support.client_fakes import FakeServer, PasswordServer, run, until


def line_mode(server: FakeServer, stdin: TextIO, **options: Any) -> tuple[int, str]:
    """Run line mode against `server`; the exit code and what it printed on stdout."""
    out = io.StringIO()

    async def scenario() -> int:
        return await lineui.run(server.connect, "alice", "lobby", "fake:9009", stdin=stdin, out=out, **options)

    code: int = run(scenario)
    return code, out.getvalue()


@contextmanager
def open_stdin() -> Iterator[tuple[TextIO, int]]:
    """A stdin that stays open (no EOF) until the block ends; its reading thread is gone afterwards."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "r") as stdin:
        try:
            yield stdin, write_end
        finally:
            os.close(write_end)
            deadline = time.monotonic() + 5
            while any(thread.name == "stdin" for thread in threading.enumerate()) and time.monotonic() < deadline:
                time.sleep(0.01)


def test_lines_are_sent_help_is_printed_and_eof_says_bye(capsys: pytest.CaptureFixture[str]) -> None:
    """Each stdin line is a say or a /command; /help prints the list; EOF sends bye, exits 0, stderr stays empty."""
    server = FakeServer()
    code, out = line_mode(server, io.StringIO("hello there\n/help\n/nick zed\n"))
    assert code == 0
    assert [p["type"] for p in server.sent] == ["hello", "say", "nick", "bye"]  # no pings or room lists of its own
    assert server.of_type("say") == [{"type": "say", "text": "hello there"}]
    assert "you are alice in lobby on fake" in out and "/quit" in out
    assert capsys.readouterr().err == ""


def test_quit_stops_reading(capsys: pytest.CaptureFixture[str]) -> None:
    """/quit leaves at once: later lines are not sent."""
    server = FakeServer()
    code, _ = line_mode(server, io.StringIO("one\n/quit\ntwo\n"))
    assert code == 0
    assert [p.get("text") for p in server.of_type("say")] == ["one"]
    assert server.sent[-1] == {"type": "bye"}


def test_dropped_connection_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The server closes while stdin is still open: exit 1, `connection ... lost` on stderr, no reconnect."""
    server = FakeServer()
    out = io.StringIO()

    async def scenario() -> int:
        with open_stdin() as (stdin, _):
            running = asyncio.ensure_future(
                lineui.run(server.connect, "alice", "lobby", "fake:9009", stdin=stdin, out=out)
            )
            await until(lambda: server.connections and server.of_type("hello"))
            await until(lambda: "you are alice" in out.getvalue())
            server.current.drop()
            return await asyncio.wait_for(running, 5)

    assert run(scenario) == 1
    assert capsys.readouterr().err == "chatclient: connection to fake:9009 lost\n"
    assert len(server.connections) == 1


def test_kicked_over_udp_exits_1_though_nothing_closes(capsys: pytest.CaptureFixture[str]) -> None:
    """Over UDP a kick closes nothing: the `left` about us ends the run, explained in plain words."""
    server = FakeServer(transport="udp")
    out = io.StringIO()

    async def scenario() -> int:
        with open_stdin() as (stdin, _):
            running = asyncio.ensure_future(
                lineui.run(server.connect, "alice", "lobby", "fake:9009", stdin=stdin, out=out)
            )
            await until(lambda: "you are alice" in out.getvalue())
            server.current.push(
                {"type": "left", "nick": "alice", "room": "lobby", "reason": "kicked", "by": "t", "ts": time.time()}
            )
            return await asyncio.wait_for(running, 5)

    assert run(scenario) == 1
    assert capsys.readouterr().err == "chatclient: an operator ended your session (see above)\n"
    assert "t kicked you out of the chat" in out.getvalue()


@pytest.mark.parametrize(("password", "hint"), [(None, "add --password SECRET"), ("wrong", "check --password")])
def test_password_refused_explains_and_exits_1(
    password: str | None, hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Line mode cannot ask (stdin is the chat): auth_failed says what to add or check, and exits 1."""
    server = PasswordServer("s3cret")
    code, out = line_mode(server, io.StringIO("never sent\n"), password=password)
    assert code == 1
    assert capsys.readouterr().err == f"chatclient: fake:9009 did not let us in ({hint})\n"
    assert "auth_failed:" in out
    # Without a password the bracket says how to give one, not to check it with the teacher.
    given = "[check the password with the teacher]" in out
    assert given == (password is not None) and ("[give --password SECRET" in out) == (password is None), out
    assert [p.get("password") for p in server.of_type("hello")] == [password]
    assert not server.of_type("say")


def test_taken_nick_and_refused_connection(capsys: pytest.CaptureFixture[str]) -> None:
    """A taken nick exits 1 with the server's error on stdout; a refused connection with one stderr line."""
    server = FakeServer()
    server.taken = {"alice"}
    code, out = line_mode(server, io.StringIO(""))
    assert code == 1 and "nick_taken: taken" in out
    assert capsys.readouterr().err == ""
    refusing = FakeServer()
    refusing.refuse = 1
    code, _ = line_mode(refusing, io.StringIO(""))
    assert code == 1
    assert capsys.readouterr().err == "chatclient: cannot connect to fake: connection refused\n"


def test_stdin_that_ends_after_the_session_is_not_an_error() -> None:
    """After /quit the loop closes while the stdin thread may still read: a last line or EOF then was a
    `RuntimeError: Event loop is closed` traceback printed as chatclient exited."""
    loop = asyncio.new_event_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    loop.close()
    lineui._stdin_lines(loop, queue, io.StringIO("a late line\n"))  # returns, raises nothing
    lineui._stdin_lines(loop, queue, io.StringIO(""))  # EOF only
    assert queue.empty()
