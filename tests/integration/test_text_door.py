"""The text door (docs/protocol.md §12): nc and telnet users chat with framed clients in the same rooms."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from chatsrv.app import Server
from tests.conftest import ServerFactory
from tests.helpers import TIMEOUT, Client
from tests.integration.test_cli import ENV, finish, read_until, start_server


class TextClient:
    """A line-based client, as nc is: bytes out, decoded lines in."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buffer = b""
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self, text: str) -> None:
        self.send(text.encode("utf-8") + b"\n")

    def expect(self, wanted: Callable[[str], bool] | str, timeout: float = TIMEOUT) -> str:
        """The first line received that contains `wanted` (or satisfies it); earlier lines are skipped."""
        test = wanted if callable(wanted) else (lambda line: wanted in line)
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\r\n", 1)
                line = raw.decode("utf-8")
                if test(line):
                    return line
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                raise AssertionError(f"no line with {wanted!r} in time")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
            self.buffer += data

    def wait_closed(self) -> None:
        """Read until the server hangs up (AssertionError if it does not in time); what came stays in `buffer`."""
        deadline = time.monotonic() + TIMEOUT
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("the server did not hang up")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            self.closed = not data
            self.buffer += data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def door(make_server: ServerFactory) -> Server:
    """A server with the text door on a free port and the rate limit off."""
    return make_server("--rate", "0", "--text-port", "0")


@pytest.fixture
def texts(door: Server) -> Iterator[Callable[[], TextClient]]:
    opened: list[TextClient] = []

    def connect() -> TextClient:
        assert door.text is not None
        client = TextClient(door.text.port)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


def test_text_user_and_framed_client_chat_both_ways(door: Server, texts: Callable[[], TextClient]) -> None:
    """A nick typed on the door joins lobby; its line reaches a framed client, whose say comes back as a line."""
    with Client(door.port) as framed:
        framed.join("bob")
        nc = texts()
        nc.expect("Type your nick")
        nc.line("alice")
        assert "you are alice in lobby" in nc.expect("you are alice")
        framed.expect("joined", nick="alice")
        nc.line("hello from nc")
        assert framed.expect("message", **{"from": "alice"})["text"] == "hello from nc"
        framed.send({"type": "say", "text": "hi alice"})
        assert nc.expect("<bob>") == "<bob> hi alice"


def test_commands_join_whisper_me_who_rooms_nick_quit(door: Server, texts: Callable[[], TextClient]) -> None:
    """The /commands of line mode work through the door, and /quit says bye."""
    with Client(door.port) as framed:
        framed.join("bob", room="lab")
        nc = texts()
        nc.line("/join lab")
        nc.expect("you will enter lab")
        nc.line("/nick alice")
        nc.expect("you are alice in lab")
        nc.line("/me waves")
        assert framed.expect("message", action=True)["text"] == "waves"
        nc.line("/msg bob psst")
        assert framed.expect("whisper")["text"] == "psst"
        nc.line("/who")
        assert nc.expect("* in lab:") == "* in lab: alice, bob"
        nc.line("/rooms")
        assert "lab (2)" in nc.expect("* rooms:")
        nc.line("/nick carol")
        nc.expect("alice is now carol")
        nc.line("//slash")
        assert framed.expect("message", **{"from": "carol"})["text"] == "/slash"
        nc.line("/help")
        nc.expect("/msg NICK TEXT")
        nc.line("/quit")
        framed.expect("left", nick="carol", reason="quit")
        nc.wait_closed()


def test_a_megabyte_line_and_a_nul_byte(door: Server, texts: Callable[[], TextClient]) -> None:
    """A 1 MB line is refused and discarded, a NUL is answered as an invalid text, and the user chats on."""
    with Client(door.port) as framed:
        framed.join("bob")
        nc = texts()
        nc.line("alice")
        nc.expect("you are alice")
        sender = threading.Thread(target=nc.send, args=(b"x" * (1 << 20) + b"\n",))
        sender.start()
        assert "line too long" in nc.expect("line too long")
        sender.join(TIMEOUT)
        nc.send(b"a\x00b\n")
        assert nc.expect("! ").startswith("! text_invalid")
        nc.line("still here")
        assert framed.expect("message", **{"from": "alice"})["text"] == "still here"
        assert door.text is not None and door.text.live_connections() == 1


def test_telnet_crlf_iac_and_not_utf8(door: Server, texts: Callable[[], TextClient]) -> None:
    """Windows telnet's IAC negotiation and CR LF / CR NUL endings are understood; GBK bytes get a clear line."""
    with Client(door.port) as framed:
        framed.join("bob")
        nc = texts()
        nc.send(b"\xff\xfb\x18\xff\xfa\x18\x00VT100\xff\xf0alice\r\n")
        nc.expect("you are alice")
        nc.send("你好".encode("gbk") + b"\r\x00")
        assert "not UTF-8" in nc.expect("not UTF-8")
        nc.send("你好\r\n".encode())
        assert framed.expect("message", **{"from": "alice"})["text"] == "你好"


def test_control_characters_are_escaped(door: Server, texts: Callable[[], TextClient]) -> None:
    """A framed client's nick and text cannot drive the nc user's terminal: controls arrive as escapes."""
    with Client(door.port) as framed:
        framed.join("bob")
        nc = texts()
        nc.line("alice")
        nc.expect("you are alice")
        framed.send({"type": "say", "text": "line one\nline two \u202eevil"})
        assert nc.expect("<bob>") == "<bob> line one"
        assert nc.expect("line two") == "    line two \\u202eevil"


def test_rate_limits_apply(make_server: ServerFactory) -> None:
    """The door's lines count against the same rate limit as a framed client's payloads."""
    server = make_server("--rate", "1", "--burst", "3", "--text-port", "0")
    assert server.text is not None
    nc = TextClient(server.text.port)
    try:
        nc.line("alice")
        nc.expect("you are alice")
        nc.send(b"".join(b"m%d\n" % n for n in range(10)))
        assert nc.expect("! ").startswith("! rate_limited")
    finally:
        nc.close()


def test_shutdown_leaves_no_thread(make_server: ServerFactory) -> None:
    """Stopping the server tells the door's users, closes them and joins every thread."""
    before = set(threading.enumerate())
    server = make_server("--text-port", "0")
    assert server.text is not None
    nc = TextClient(server.text.port)
    try:
        nc.line("alice")
        nc.expect("you are alice")
        server.stop()
        nc.expect("shutting down")
        nc.wait_closed()
        assert server.text.live_connections() == 0
        assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]
    finally:
        nc.close()


def test_the_door_is_off_by_default(server: Server) -> None:
    """Without --text-port there is no text door."""
    assert server.text is None


def test_the_doors_own_answers_are_rate_limited(make_server: ServerFactory) -> None:
    """Lines the door answers itself (/help, bad lines) follow the same rate and burst as payloads."""
    server = make_server("--rate", "1", "--burst", "3", "--text-port", "0")
    assert server.text is not None
    nc = TextClient(server.text.port)
    try:
        nc.send(b"/help\n" * 10 + b"/quit\n")
        nc.wait_closed()
        helps = nc.buffer.count(b"commands:")
        assert 3 <= helps < 10
    finally:
        nc.close()


def test_chatsrv_prints_the_door_and_the_console_shows_mistakes() -> None:
    """`chatsrv --text-port 0` prints the port it picked; a text line sent to the framed port is a warning on stderr."""
    process, port = start_server("--text-port", "0")
    nc = None
    try:
        line = read_until(process, r"text door")[-1]
        match = re.search(r"on port (\d+): nc 127\.0\.0\.1 \1$", line)
        assert match, line
        nc = TextClient(int(match.group(1)))
        nc.line("alice")
        nc.expect("you are alice")
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as wrong:
            wrong.sendall(b"hello\n")
            while wrong.recv(4096):
                pass
        process.send_signal(signal.SIGTERM)
        nc.expect("shutting down")
        assert process.wait(10) == 0
        assert process.stderr is not None
        assert "WARNING framing mistake from 127.0.0.1:" in process.stderr.read()
    finally:
        if nc is not None:
            nc.close()
        finish(process)


def test_a_text_port_in_use_is_one_clear_line() -> None:
    """`--text-port` on a port already taken exits 2 naming the text door, not the chat port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "chatsrv", "--host", "127.0.0.1", "--port", "0", "--db", ":memory:",
             "--text-port", str(busy)],
            check=False, env=ENV, capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 2
    expected = f"chatsrv: cannot open the text door on 127.0.0.1 port {busy}: address already in use"
    assert result.stderr.strip().splitlines() == [expected + " (try another --text-port, or 0)"]


def test_password_then_a_taken_nick_then_another(make_server: ServerFactory) -> None:
    """With --password the door asks for /password before the nick; a nick that is taken is refused, the next tried."""
    server = make_server("--rate", "0", "--text-port", "0", "--password", "letmein")
    assert server.text is not None
    with Client(server.port) as framed:
        framed.send({"type": "hello", "nick": "bob", "password": "letmein"})
        framed.expect("welcome")
        nc = TextClient(server.text.port)
        try:
            nc.line("alice")
            assert nc.expect("! ") == "! this server needs a password: type /password SECRET, then your nick"
            nc.line("/password letmein")
            nc.line("bob")
            assert nc.expect("! ").startswith("! nick_taken")
            nc.line("alice")
            nc.expect("you are alice in lobby")
            framed.expect("joined", nick="alice")
        finally:
            nc.close()
