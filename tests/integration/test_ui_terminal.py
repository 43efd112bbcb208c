"""The terminal UI end to end: real chatsrv and chatclient processes in pseudo-terminals.

Each client runs in a pty (pexpect) and everything it writes is fed to a
pyte screen, which answers cursor-position requests like a real terminal,
so the assertions are about what a person would see.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pyte
import pytest

from tests.integration.test_cli import finish, read_until

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": os.environ.get("HOME", "/tmp"),
    "PYTHONPATH": str(ROOT),
    "TERM": "xterm",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}
COLUMNS, ROWS = 80, 24


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1, so a restarted server can bind it again."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`python -m chatsrv` on 127.0.0.1 and an explicit port; SIGINT to stop."""

    def __init__(self, port: int, *flags: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chatsrv",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--rate",
                "0",
                "--db",
                ":memory:",
                *flags,
            ],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 10
        seen = ""
        while "listening" not in seen:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, left))
            if not ready:
                self.stop()
                raise AssertionError(f"chatsrv did not start: {seen!r}")
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"chatsrv exited: {seen!r}")
            seen += line

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout:
            self.process.stdout.close()


class AnsweringScreen(pyte.Screen):
    """A pyte screen that sends its replies (cursor position reports) back to the program."""

    def __init__(self, columns: int, rows: int, child: pexpect.spawn) -> None:
        super().__init__(columns, rows)
        self.child = child

    def write_process_input(self, data: str) -> None:
        self.child.send(data.encode())


class Terminal:
    """One chatclient in an 80x24 pseudo-terminal, seen through pyte.

    With `then_stty`, a shell runs the client and afterwards prints the
    terminal's mode, to check that the client gave the terminal back.
    """

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        then_stty: bool = False,
        group: list[Terminal] | None = None,
    ) -> None:
        command, argv = sys.executable, ["-m", "chatclient", *args]
        if then_stty:
            quoted = " ".join(f"'{arg}'" for arg in argv)
            command, argv = "/bin/sh", ["-c", f"'{sys.executable}' {quoted}; echo EXIT=$?; stty -a; sleep 5"]
        self.child = pexpect.spawn(command, argv, cwd=str(ROOT), env=env or ENV, dimensions=(ROWS, COLUMNS))
        self.raw = b""
        self.screen = AnsweringScreen(COLUMNS, ROWS, self.child)
        self.stream = pyte.ByteStream(self.screen)
        self.exit_status: int | None = None
        self.ended = False  # the program's side of the pty is closed: nothing more to read
        # The terminals of one test, pumped together (see pump).
        self.group = group if group is not None else []
        self.group.append(self)

    def pump(self) -> None:
        """Feed whatever the programs of every terminal of this test have written to their screens.

        All of them, not only this one: a client's cursor-position request is answered when its
        output is fed to its screen, and a client must not wait for that answer while the test
        watches another terminal. Returns once none has written for 20 ms (bounded: 100 rounds).
        """
        for _ in range(100):
            live = {t.child.child_fd: t for t in self.group if not t.ended and not t.child.closed}
            if not live:
                return
            ready, _, _ = select.select(list(live), [], [], 0.02)
            if not ready:
                return
            for fd in ready:
                live[fd].read_once()

    def read_once(self) -> None:
        """Feed what the program has written (it is ready to be read) to the screen."""
        try:
            data = self.child.read_nonblocking(65536, timeout=0)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.ended = True
            return
        self.raw += data
        self.stream.feed(data)

    def rows(self) -> list[str]:
        return [row.rstrip() for row in self.screen.display]

    def text(self) -> str:
        return "\n".join(self.rows())

    @property
    def toolbar(self) -> str:
        return self.rows()[-1]

    @property
    def prompt_row(self) -> str:
        """The row the cursor is on: the input line."""
        return self.rows()[self.screen.cursor.y]

    def wait_for(self, condition: str | Callable[[], object], timeout: float = 8.0) -> None:
        check = (lambda: condition in self.text()) if isinstance(condition, str) else condition
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            if check():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never showed {condition!r}; it shows:\n{self.text()}")

    def type(self, text: str) -> None:
        self.child.send(text.encode())

    def wait_exit(self, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        while self.child.isalive() and time.monotonic() < deadline:
            self.pump()
            time.sleep(0.02)
        self.pump()
        self._close_pty()
        assert self.child.exitstatus is not None, "chatclient did not exit"
        return int(self.child.exitstatus)

    def close(self) -> None:
        """End the program as a closed terminal would (SIGHUP; SIGKILL if it lingers), then close the pty.

        Waits for the process to be gone, not pexpect's terminate(), which pauses 0.1 s after each signal.
        """
        if self.child.closed:
            return
        if self.child.isalive():
            self.child.kill(signal.SIGHUP)
            if not self._gone_within(3.0):
                self.child.kill(signal.SIGKILL)
                self._gone_within(5.0)
        self._close_pty()

    def _gone_within(self, timeout: float) -> bool:
        """Whether the program ends within `timeout`; its screen is fed meanwhile (it may ask where the cursor is)."""
        deadline = time.monotonic() + timeout
        while self.child.isalive():
            if time.monotonic() > deadline:
                return False
            self.pump()
            time.sleep(0.01)
        return True

    def _close_pty(self) -> None:
        """Close the pty; pexpect pauses 0.1 s first for the kernel to report an exit, needless once it has."""
        if not self.child.isalive():
            self.child.ptyproc.delayafterclose = 0
        self.child.close()  # a child still alive is ended by pexpect (SIGHUP ... SIGKILL)


@pytest.fixture
def terminals() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []  # also each terminal's group: pumping one pumps them all

    def open_terminal(*args: str, env: dict[str, str] | None = None, then_stty: bool = False) -> Terminal:
        return Terminal(*args, env=env, then_stty=then_stty, group=opened)

    yield open_terminal
    for terminal in opened:
        terminal.close()


@pytest.fixture
def servers() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(port: int, *flags: str) -> ServerProcess:
        server = ServerProcess(port, *flags)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def join_args(port: int, nick: str, *more: str) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port), "--nick", nick, *more]


@pytest.mark.timeout(40)
def test_two_clients_chat_and_a_half_typed_line_survives(servers, terminals) -> None:
    """Two people chat; a message arriving mid-typing keeps the typed text and cursor in place; the toolbar is right."""
    port = free_port()
    servers(port)
    alice = terminals(*join_args(port, "alice"))
    alice.wait_for(lambda: "alice@lobby" in alice.toolbar and "1 user" in alice.toolbar)
    bob = terminals(*join_args(port, "bob"))
    bob.wait_for(lambda: "bob@lobby" in bob.toolbar and "2 users" in bob.toolbar and "connected" in bob.toolbar)
    alice.wait_for(lambda: "2 users" in alice.toolbar and "bob joined lobby" in alice.text())
    assert f"TCP 127.0.0.1:{port}" in alice.toolbar

    bob.type("half typ")
    bob.wait_for(lambda: bob.prompt_row == "[lobby] half typ")
    alice.type("hello bob\r")
    bob.wait_for("alice │ hello bob")
    assert bob.prompt_row == "[lobby] half typ"
    assert bob.screen.cursor.x == len("[lobby] half typ")
    bob.type("ed\r")
    alice.wait_for("bob │ half typed")

    bob.type("/msg alice just you\r")
    alice.wait_for("*bob* │ just you")
    alice.type("/quit\r")
    assert alice.wait_exit() == 0
    bob.wait_for("alice left (quit)")
    bob.wait_for(lambda: "1 user " in bob.toolbar)


@pytest.mark.timeout(40)
def test_tcp_client_reconnects_after_server_restart(servers, terminals) -> None:
    """When the server goes away the toolbar counts down; once it is back the client rejoins by itself."""
    port = free_port()
    server = servers(port)
    alice = terminals(*join_args(port, "alice", "--room", "physics"))
    alice.wait_for(lambda: "alice@physics" in alice.toolbar and "connected" in alice.toolbar)
    server.stop()
    alice.wait_for(lambda: "reconnecting in" in alice.toolbar)
    assert "connection to 127.0.0.1:" in alice.text()
    servers(port)
    alice.wait_for("reconnected to", timeout=15)
    alice.wait_for(
        lambda: "alice@physics" in alice.toolbar and "connected" in alice.toolbar and "1 user" in alice.toolbar
    )
    alice.type("still here\r")
    alice.wait_for("alice │ still here")
    alice.type("\x04")  # Ctrl-D leaves
    assert alice.wait_exit() == 0


@pytest.mark.timeout(40)
@pytest.mark.parametrize("leave", ["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_leave_with_bye_and_restore_the_terminal(servers, terminals, leave: str) -> None:
    """Ctrl-C (or SIGTERM) leaves cleanly: the others see `quit` (a bye), and the terminal is back in normal mode."""
    port = free_port()
    servers(port)
    alice = terminals(*join_args(port, "alice"), then_stty=True)
    alice.wait_for(lambda: "alice@lobby" in alice.toolbar)
    bob = terminals(*join_args(port, "bob"))
    bob.wait_for(lambda: "2 users" in bob.toolbar)
    if leave == "ctrl-c":
        alice.type("some half line\x03")
    else:
        client = [p for p in os.listdir("/proc") if p.isdigit() and _is_chatclient_child(int(p), alice.child.pid)]
        assert len(client) == 1
        os.kill(int(client[0]), signal.SIGTERM)
    alice.wait_for("EXIT=0")
    alice.wait_for("speed")  # stty -a has printed
    bob.wait_for("alice left (quit)")
    modes = alice.raw.decode(errors="replace").split("EXIT=0", 1)[1]
    assert " icanon" in modes and " echo " in modes  # cooked mode again, keys echoed
    output = alice.raw.decode(errors="replace")
    assert output.rfind("\x1b[?2004l") > output.rfind("\x1b[?2004h")  # bracketed paste switched off


def _is_chatclient_child(pid: int, parent: int) -> bool:
    """Whether `pid` is the chatclient process the test's shell (`parent`) started."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return ppid == parent and b"chatclient" in cmdline.read()
    except OSError:
        return False


def needs_udp() -> None:
    from chatclient import transport

    if not hasattr(transport, "UDPTransport"):
        pytest.skip("UDPTransport is not merged yet")


@pytest.mark.timeout(40)
def test_udp_client_shows_loss_counters(servers, terminals) -> None:
    """Under --udp-loss the UDP client's toolbar counts lost server payloads; the TCP client's has no counters."""
    needs_udp()
    port = free_port()
    servers(port, "--udp-loss", "30", "--seed", "1")
    talker = terminals(*join_args(port, "talker"))
    talker.wait_for(lambda: "talker@lobby" in talker.toolbar)
    listener = terminals(*join_args(port, "listener", "--udp"))
    listener.wait_for(lambda: "listener@lobby" in listener.toolbar and "UDP" in listener.toolbar, timeout=10)
    for number in range(30):
        talker.type(f"message {number}\r")
    talker.wait_for("talker │ message 29")
    listener.wait_for(lambda: "lost " in listener.toolbar and "lost 0 " not in listener.toolbar, timeout=10)
    assert "lost" not in talker.toolbar


@pytest.mark.timeout(40)
def test_udp_client_shows_a_silent_server_as_lost(servers, terminals) -> None:
    """A UDP server that stops answering (SIGSTOP) for peer_timeout shows as lost; resumed, it is connected again."""
    needs_udp()
    port = free_port()
    server = servers(port, "--peer-timeout", "1")
    alice = terminals(*join_args(port, "alice", "--udp"))
    alice.wait_for(lambda: "alice@lobby" in alice.toolbar and "connected" in alice.toolbar, timeout=10)
    server.process.send_signal(signal.SIGSTOP)
    try:
        alice.wait_for(lambda: "server lost" in alice.toolbar)
        assert "server lost" in alice.text()
    finally:
        server.process.send_signal(signal.SIGCONT)
    alice.wait_for(lambda: "connected" in alice.toolbar, timeout=10)
    alice.type("/quit\r")
    assert alice.wait_exit() == 0


@pytest.mark.timeout(60)
def test_a_restart_with_a_new_password_is_asked_for_and_line_mode_exits_1_with_why(servers, terminals) -> None:
    """chatsrv restarted with --password: the chat UI asks for it and goes on; line mode, which cannot ask, exits 1."""
    port = free_port()
    server = servers(port)
    alice = terminals(*join_args(port, "alice"))
    alice.wait_for(lambda: "alice@lobby" in alice.toolbar and "connected" in alice.toolbar)
    piped = subprocess.Popen(
        [sys.executable, "-m", "chatclient", *join_args(port, "bob"), "--plain"],
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        alice.wait_for("bob joined lobby")
        server.stop()
        servers(port, "--password", "class101")
        alice.wait_for("now needs a password", timeout=15)
        alice.wait_for(lambda: "password:" in alice.prompt_row)
        alice.type("class101\r")
        alice.wait_for("reconnected to", timeout=10)
        alice.wait_for(lambda: "connected" in alice.toolbar and "reconnecting" not in alice.toolbar)
        assert "class101" not in alice.text()
        alice.type("with the password\r")
        alice.wait_for("alice │ with the password")
        _, err = piped.communicate(timeout=10)
        assert piped.returncode == 1 and "chatclient: connection to 127.0.0.1:" in err
    finally:
        if piped.poll() is None:
            piped.kill()
            piped.communicate()
    again = subprocess.run(
        [sys.executable, "-m", "chatclient", *join_args(port, "bob"), "--plain"],
        cwd=ROOT,
        env=ENV,
        input="never sent\n",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert again.returncode == 1
    assert f"chatclient: 127.0.0.1:{port} did not let us in (add --password SECRET)" in again.stderr
    alice.type("\x04")
    assert alice.wait_exit() == 0


@pytest.mark.timeout(60)
def test_the_screen_tells_the_truth_history_rooms_and_users_while_reconnecting(servers, terminals) -> None:
    """Saved history under a dated divider; Tab completes a room never listed by hand; the user count while
    reconnecting is the last one seen (not 0 or one less)."""
    port = free_port()
    server = servers(port)
    bob = subprocess.Popen(
        [sys.executable, "-m", "chatclient", *join_args(port, "bob"), "--plain"],
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert bob.stdin is not None
    try:
        bob.stdin.write("said before you came\n/join maths\n")
        bob.stdin.flush()
        read_until(bob, r"you are bob in maths", timeout=15)  # the line is saved and bob has moved on
        alice = terminals(*join_args(port, "alice"))
        alice.wait_for(lambda: "alice@lobby" in alice.toolbar and "connected" in alice.toolbar)
        alice.wait_for("earlier messages in lobby since")
        rows = alice.rows()
        divider = next(number for number, row in enumerate(rows) if "earlier messages in lobby since" in row)
        assert "bob │ said before you came" in rows[divider + 1]
        assert "end of earlier messages" in rows[divider + 2]

        alice.type("/join ma\t")
        alice.wait_for(lambda: alice.prompt_row.startswith("[lobby] /join maths"))
        alice.type("\x15")  # Ctrl-U: not joining after all
        bob.stdin.write("/join lobby\n")
        bob.stdin.flush()
        alice.wait_for(lambda: "2 users" in alice.toolbar)
        server.stop()
        alice.wait_for(lambda: "reconnecting in" in alice.toolbar)
        assert "2 users" in alice.toolbar
    finally:
        finish(bob)


@pytest.mark.timeout(40)
def test_udp_bar_says_how_long_the_server_has_been_silent(servers, terminals) -> None:
    """A stopped UDP server is not shown as connected with the last round trip until peer_timeout: a missed ping
    shows 'no answer for N s'; when it answers again the bar says connected."""
    needs_udp()
    port = free_port()
    server = servers(port)  # the default peer timeout (long): the bar must not wait for it
    alice = terminals(*join_args(port, "alice", "--udp"))
    alice.wait_for(lambda: "rtt" in alice.toolbar and "rtt -" not in alice.toolbar, timeout=10)
    server.process.send_signal(signal.SIGSTOP)
    try:
        alice.wait_for(lambda: "no answer for" in alice.toolbar and "ms" not in alice.toolbar, timeout=15)
    finally:
        server.process.send_signal(signal.SIGCONT)
    alice.wait_for(lambda: "connected" in alice.toolbar, timeout=15)
    alice.type("/quit\r")
    assert alice.wait_exit() == 0
