"""The real commands as processes: chatsrv, and chatclient in line mode over pipes."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}


def start_server(*flags: str) -> tuple[subprocess.Popen[str], int]:
    if "--db" not in flags:
        flags = ("--db", ":memory:", *flags)  # hermetic: no lanchat.sqlite3 in the repository
    process = subprocess.Popen(
        [sys.executable, "-m", "chatsrv", "--host", "127.0.0.1", "--port", "0", *flags],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        match = re.search(r"listening on \S+ port (\d+)", line)
        if match:
            return process, int(match.group(1))
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"chatsrv did not start: {process.stderr.read() if process.stderr else ''}")


@pytest.fixture
def chatsrv() -> Iterator[tuple[subprocess.Popen[str], int]]:
    process, port = start_server("--rate", "0")
    yield process, port
    finish(process)


def finish(*processes: subprocess.Popen[str]) -> None:
    """Kill what is still running, reap it and close its pipes."""
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(5)
        reader = _readers.pop(process.pid, None)
        if reader is not None:
            reader.thread.join(5)  # it reads stdout to the end: closing stdout under it raised in its thread
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream and not stream.closed:
                stream.close()


def client(port: int, nick: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chatclient", "--host", "127.0.0.1", "--port", str(port), "--nick", nick, *extra],
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Lines:
    """Reads a process's stdout on a thread, so every wait has a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def until(self, pattern: str, timeout: float = 10) -> list[str]:
        """Lines up to the first one matching `pattern`."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {self.seen}") from None
            if line is None:
                raise AssertionError(f"output ended before {pattern!r}: {self.seen}")
            lines.append(line)
            self.seen.append(line)
            if re.search(pattern, line):
                return lines


_readers: dict[int, Lines] = {}


def read_until(process: subprocess.Popen[str], pattern: str, timeout: float = 10) -> list[str]:
    """Lines of stdout up to the first matching `pattern` (bounded in time)."""
    assert process.stdout is not None
    reader = _readers.get(process.pid)
    if reader is None:
        reader = _readers[process.pid] = Lines(process.stdout)
    return reader.until(pattern, timeout)


@pytest.mark.timeout(40)
def test_two_line_clients_chat_then_sigint(chatsrv) -> None:
    """Two line-mode clients chat, whisper, rename and switch rooms; SIGINT stops the server with exit 0 in 2 s."""
    server, port = chatsrv
    alice = client(port, "alice")
    read_until(alice, r"you are alice in lobby")
    bob = client(port, "bob")
    try:
        read_until(bob, r"you are bob in lobby")
        read_until(alice, r"-> bob joined lobby")
        assert alice.stdin and bob.stdin
        alice.stdin.write("hello bob\n/me waves\n/msg bob secret\n")
        alice.stdin.flush()
        lines = read_until(bob, r"\*alice\* secret")
        assert any(re.fullmatch(r"\[\d\d:\d\d\] <alice> hello bob", line) for line in lines)
        assert any(line.endswith("* alice waves") for line in lines)
        bob.stdin.write("/nick robert\n/join maths\n")
        bob.stdin.flush()
        read_until(alice, r"-> bob is now known as robert")
        read_until(alice, r"-> robert left \(moved to maths\)")
        read_until(bob, r"you are robert in maths")
        alice.stdin.close()  # EOF: bye, exit 0
        assert alice.wait(5) == 0
        bob.stdin.write("/quit\n")
        bob.stdin.flush()
        assert bob.wait(5) == 0
    finally:
        finish(alice, bob)
    started = time.monotonic()
    server.send_signal(signal.SIGINT)
    assert server.wait(5) == 0
    assert time.monotonic() - started < 2.0


def test_sigint_with_connected_client_exits_fast(chatsrv) -> None:
    """With a client connected, SIGINT tells it and exits 0 within 2 s; the client exits 1 with a clear line."""
    server, port = chatsrv
    alice = client(port, "alice")
    try:
        read_until(alice, r"you are alice")
        started = time.monotonic()
        server.send_signal(signal.SIGINT)
        assert server.wait(5) == 0 and time.monotonic() - started < 2.0
        lines = read_until(alice, r"left lobby \(shutdown\)|you left")
        assert any("shutting down" in line for line in lines)
        assert alice.wait(5) == 1
        assert alice.stderr and "lost" in alice.stderr.read()
    finally:
        finish(alice)


def run_briefly(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=20, check=False
    )


def test_second_server_on_same_port_exits_2_with_one_line(chatsrv) -> None:
    """A port in use: one clear line on stderr, exit 2, no traceback."""
    _, port = chatsrv
    result = run_briefly("-m", "chatsrv", "--host", "127.0.0.1", "--port", str(port), "--db", ":memory:")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--port", "70000"], "port"),
        (["--max-clients", "-1"], "max-clients"),
        (["--host", "no-such-host.invalid"], "unknown host"),
        (["--udp-loss", "150"], "percentage is 0 to 100"),
        (["--udp-delay", "soon"], "MS or MS:JITTER"),
        (["--peer-timeout", "0"], "more than 0 seconds"),
        (["--max-datagram", "100000"], "256 to 65507"),
        (["--motd", "@/no/such/file"], "cannot read"),
        (["--allow", "10.0.0.300/8"], "not an address or network"),
        (["--deny", "everyone"], "not an address or network"),
        (["--password", ""], "--password"),
    ],
)
def test_bad_flags_exit_2_with_one_line(flags: list[str], words: str) -> None:
    """A bad flag value (core, UDP or teacher flags) or an unknown host: one line on stderr, exit 2."""
    result = run_briefly("-m", "chatsrv", *flags)
    assert result.returncode == 2 and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_client_refused_connection_exits_1() -> None:
    """A client pointed at a closed port says so in one line and exits 1."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "chatclient", "--host", "127.0.0.1", "--port", str(port), "--nick", "x"],
        cwd=ROOT,
        env=ENV,
        input="",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 1 and "connection refused" in result.stderr and "Traceback" not in result.stderr


def test_help_explains() -> None:
    """--help of both commands describes what they do and their main flags."""
    server_help = run_briefly("-m", "chatsrv", "--help").stdout
    client_help = run_briefly("-m", "chatclient", "--help").stdout
    assert "--max-clients" in server_help and "chatclient --host" in server_help
    assert "--nick" in client_help and "/help" in client_help
