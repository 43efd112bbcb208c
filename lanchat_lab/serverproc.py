"""Run `chatsrv` as a child process for a lab, optionally inside a network namespace.

Owns: starting `python -m chatsrv` with the lab's flags, learning the port
it printed, stopping it (SIGTERM, the graceful path) or killing it
(SIGKILL, a crash), always by its own PID. The server runs in its own
process so the bots' timings are not disturbed by the server sharing one
interpreter lock with them.

Output goes to files, not pipes: a chatty server can never block on a full
pipe nobody reads. Imports `lanchat_lab.bots.LabError` and `lanchat.platforms` (how to stop a child politely).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from lanchat import platforms
from lanchat.i18n import _
from lanchat_lab.bots import LabError

_LISTENING = re.compile(r"listening on .* port (\d+)")


def code_root() -> str:
    """The directory holding the `chatsrv` package this lab imports (so the child runs the same code)."""
    import chatsrv

    return str(Path(chatsrv.__file__).resolve().parent.parent)


def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [code_root(), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServerProcess:
    """One `chatsrv` child. Use as a context manager: it is always stopped on exit."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, flags: Sequence[str] = (), prefix: Sequence[str] = ()
    ) -> None:
        self.host = host
        self.port = port
        self.flags = list(flags)
        self.prefix = list(prefix)  # e.g. ["ip", "netns", "exec", NAME]
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="chatlab-")
        self.banner: list[str] = []
        self.started_at = 0.0

    def __enter__(self) -> ServerProcess:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._dir.cleanup()

    @property
    def stdout_path(self) -> Path:
        return Path(self._dir.name) / "stdout"

    @property
    def stderr_path(self) -> Path:
        return Path(self._dir.name) / "stderr"

    def start(self, timeout: float = 10.0) -> int:
        """Start the server and return its port; LabError (one line) when it does not come up."""
        command = [
            *self.prefix,
            sys.executable,
            "-m",
            "chatsrv",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            # A lab run is thrown away: keep no history file in the teacher's directory.
            "--db",
            ":memory:",
            # Its start-up lines are read by this program (the "listening on" line), not by people.
            "--lang",
            "en",
            *self.flags,
        ]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=child_environment(),
                **platforms.CHILD_PROCESS_OPTIONS,  # platform hook: Windows stops it with Ctrl-Break
            )
        self.started_at = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stdout_path.read_text(errors="replace")
            match = _LISTENING.search(text)
            if match:
                self.port = int(match.group(1))
                self.banner = text.splitlines()
                return self.port
            if self.process.poll() is not None:
                raise LabError(
                    _("chatsrv did not start: {reason}").format(
                        reason=self.last_error() or f"exit code {self.process.returncode}"
                    )
                )
            time.sleep(0.02)
        self.kill()
        raise LabError(_("chatsrv did not say where it listens within {timeout:g} s").format(timeout=timeout))

    def last_error(self) -> str:
        lines = [line for line in self.stderr_path.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (the server says goodbye to everyone), then SIGKILL if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            platforms.ask_to_stop(self.process)  # platform hook: SIGTERM, or Ctrl-Break on Windows
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the server vanishes without a word, like a crash or a pulled plug."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)
        self.process = None
