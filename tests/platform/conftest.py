"""Run chatsrv and chatclient the way they run on Windows or macOS: Linux's extras hidden before import.

`hidden` starts real processes with tests/platform/hide_linux first on
PYTHONPATH (its sitecustomize hides `resource`, `fcntl`, `termios`,
`socket.TCP_INFO`, `signal.SIGHUP` and `loop.add_signal_handler`), each with
the console encoding a test asks for (PYTHONIOENCODING). Output is read on
threads and decoded strictly in that encoding, so every wait has a deadline
and a character the "console" cannot hold fails the test. Every process is
killed and reaped at teardown.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[2]
HIDE_LINUX = Path(__file__).resolve().parent / "hide_linux"


def hidden_env(encoding: str = "utf-8", **extra: str) -> dict[str, str]:
    """The environment of a process that sees no Linux extras and a console in `encoding`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(HIDE_LINUX), str(ROOT)]),
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING=encoding,
        NO_COLOR="1",
    )
    env.update(extra)
    return env


class Output:
    """One stream of a process, read line by line on a thread and decoded in the console's encoding."""

    def __init__(self, stream: IO[bytes], encoding: str) -> None:
        self.encoding = encoding
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True, name="output")
        self.thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in stream:
            try:
                line = raw.decode(self.encoding)
            except UnicodeDecodeError:
                line = f"NOT {self.encoding}: {raw!r}"  # fails any test that reads it
            self.queue.put(line.rstrip("\r\n"))
        self.queue.put(None)

    def until(self, pattern: str, timeout: float = 10) -> list[str]:
        """Lines up to the first one matching `pattern` (a regular expression)."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {self.seen}") from None
            if line is None:
                self.queue.put(None)  # stays ended for the next caller
                raise AssertionError(f"output ended before {pattern!r}: {self.seen}")
            lines.append(line)
            self.seen.append(line)
            if re.search(pattern, line):
                return lines

    def line_ending(self, text: str, timeout: float = 10) -> str:
        """The first line (already read or still to come) that ends with `text`; lines may come in any order."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                if line.endswith(text):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no line ending with {text!r} in {self.seen}")
            self.until("", timeout=max(0.0, deadline - time.monotonic()))  # one more line

    def rest(self, timeout: float = 5) -> list[str]:
        """Every line until the stream ends (call after the process exited)."""
        self.thread.join(timeout)
        while True:
            line = self.queue.get(timeout=timeout)
            if line is None:
                self.queue.put(None)
                return self.seen
            self.seen.append(line)


class Process:
    """A chatsrv or chatclient process with its streams read on threads."""

    def __init__(self, args: list[str], env: dict[str, str], encoding: str) -> None:
        self.encoding = encoding
        self.popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self.stdout = Output(self.popen.stdout, encoding)
        self.stderr = Output(self.popen.stderr, encoding)

    def say(self, text: str) -> None:
        """Type a line, in the console's encoding."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(text.encode(self.encoding) + b"\n")
        self.popen.stdin.flush()

    def exit_code(self, timeout: float) -> int | None:
        """Poll until the process ends (None if it is still running after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.popen.poll()

    def error_text(self) -> str:
        """All of stderr (after exit)."""
        return "\n".join(self.stderr.rest())

    def finish(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(5)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        self.stdout.thread.join(5)
        self.stderr.thread.join(5)


class Launcher:
    """Starts hidden-Linux processes and owns them until teardown."""

    def __init__(self) -> None:
        self.processes: list[Process] = []

    def start(self, args: list[str], encoding: str = "utf-8", **env: str) -> Process:
        process = Process(args, hidden_env(encoding, **env), encoding)
        self.processes.append(process)
        return process

    def server(self, *flags: str, encoding: str = "utf-8") -> tuple[Process, int, list[str]]:
        """A chatsrv on 127.0.0.1, port 0; returns it, its port and its start-up lines."""
        process = self.start(
            ["-m", "chatsrv", "--host", "127.0.0.1", "--port", "0", "--db", ":memory:", "--rate", "0", *flags], encoding
        )
        lines = process.stdout.until(r"Ctrl-C stops the server")
        port = int(re.search(r"listening on \S+ port (\d+)", lines[0]).group(1))  # type: ignore[union-attr]
        return process, port, lines

    def client(self, port: int, nick: str, *flags: str, encoding: str = "utf-8") -> Process:
        """A line-mode chatclient joined as `nick` (waits for its welcome)."""
        process = self.start(
            ["-m", "chatclient", "--host", "127.0.0.1", "--port", str(port), "--nick", nick, "--plain", *flags],
            encoding,
        )
        process.stdout.until(r"-- you are ")
        return process

    def finish(self) -> None:
        for process in self.processes:
            process.finish()


@pytest.fixture
def hidden() -> Iterator[Launcher]:
    """Start processes that see no Linux extras; all are killed and reaped at teardown."""
    launcher = Launcher()
    yield launcher
    launcher.finish()


def shown(text: str, encoding: str) -> str:
    """`text` as a console in `encoding` shows it: what it cannot hold as visible escapes."""
    return text.encode(encoding, "backslashreplace").decode(encoding)
