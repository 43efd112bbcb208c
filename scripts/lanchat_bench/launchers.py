"""Servers under test: started for one run, always on 127.0.0.1, always stopped by PID.

Owns: `ServerProcess` (start with a deadline, readiness, liveness, stop by
process group, log tail), one launcher per server (chatsrv, miniircd, ncat
--broker --chat) with the codec it speaks, and `RUNNING`, the servers started
and not yet stopped (the CLI stops what is left in its `finally`).
Must not import: the loop, the scenarios or anything above them.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .codecs import Codec, Irc, LanchatTcp, LanchatUdp, NcatChat
from .conn import LOOPBACK

LISTENING_RE = re.compile(r"listening on (\S+) port (\d+)")
# chatsrv --workers N prints where all its nodes listen once, then one line per node when it is ready.
WORKERS_RE = re.compile(r"\d+ nodes on (\S+) port (\d+)")
NODE_READY_RE = re.compile(r"^node \d+ of \d+ ready", re.MULTILINE)


class ServerError(RuntimeError):
    """A server could not be started."""


class ServerProcess:
    """A server started for one scenario run; stop() kills it by PID."""

    kind = "?"
    #: Connections opened but not yet joined at a time, kept below the
    #: server's listen backlog so join time measures the server and not
    #: the kernel's SYN retransmission timer.
    burst = 64
    protocol_tcp: Codec = Codec()
    protocol_udp: Codec | None = None

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.host = LOOPBACK
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.kind}-{time.monotonic_ns()}.log"
        self.exit_code: int | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        raise NotImplementedError

    def cwd(self) -> str | None:
        return None

    def protocol(self, udp: bool) -> Codec:
        if not udp:
            return self.protocol_tcp
        if self.protocol_udp is None:
            raise ServerError(f"{self.kind} has no UDP transport")
        return self.protocol_udp

    def start(self, timeout: float = 20.0) -> None:
        command = self.command()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.cwd(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        RUNNING.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.kind} exited with {self.proc.returncode}: "
                                  f"{shlex.join(command)}\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.02)
        raise ServerError(f"{self.kind} did not come up within {timeout:.0f} s\n{self.log_tail()}")

    def ready(self) -> bool:
        """Whether the server listens on self.port.

        Read from /proc/net/tcp rather than probed with a connection:
        ncat --broker quits ("getpeername ... failed") when a connection
        is gone before it gets to accept it.
        """
        return port_listening(self.port)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s; only the process group we made."""
        proc = self.proc
        if proc is None:
            if self in RUNNING:
                RUNNING.remove(self)
            return
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)   # its own session: pgid == pid
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self.exit_code = proc.poll()
        if self in RUNNING:
            RUNNING.remove(self)

    def exit_note(self) -> str:
        """Why a server that exited mid-phase is gone: its exit code and last log lines."""
        code = self.proc.returncode if self.proc else "?"
        return f"server exited with {code}: " + self.log_tail(3).replace("\n", " | ")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


#: Servers started and not yet stopped; the CLI stops them in finally.
RUNNING: list[ServerProcess] = []


def port_listening(port: int) -> bool:
    """Whether some socket listens on 127.0.0.1:port (or on every address)."""
    wanted = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    try:
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[1] in wanted and fields[3] == "0A":   # 0A = LISTEN
                    return True
    except OSError:
        pass
    return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


class LanchatServer(ServerProcess):
    """chatsrv with rate limit and connection caps off, port chosen by it."""

    kind = "lanchat"
    protocol_tcp = LanchatTcp()
    protocol_udp = LanchatUdp()

    def __init__(self, workdir: Path, options: argparse.Namespace, extra: Sequence[str] = ()) -> None:
        super().__init__(workdir)
        self.options = options
        self.extra = list(extra)

    def command(self) -> list[str]:
        options = self.options
        base = chatsrv_command(options)
        database = ["--db", options.db] if options.db else []
        return base + [
            "--host", LOOPBACK, "--port", "0", "--rate", "0",
            "--max-clients", "0", "--max-per-ip", "0", *database,
            *known_flags(options, ENGLISH), *known_flags(options, CAPS_OFF), *known_flags(options, self.extra),
            *cluster_flags(options), *options.server_arg]

    def cwd(self) -> str | None:
        return str(self.options.server_dir)

    def ready(self) -> bool:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return False
        nodes = getattr(self.options, "nodes", 1)
        if nodes > 1:  # --workers: ready when every node says so
            match = WORKERS_RE.search(text)
            if not match or len(NODE_READY_RE.findall(text)) < nodes:
                return False
        else:
            match = LISTENING_RE.search(text)
            if not match:
                return False
        host, port = match.group(1), int(match.group(2))
        if not host.startswith("127."):
            raise ServerError(f"lanchat listens on {host}, not on loopback")
        self.host, self.port = host, port
        return True


#: miniircd with TCP_NODELAY set on every accepted socket (--miniircd-nodelay): it leaves Nagle on.
NODELAY_MINIIRCD = (
    "import runpy, socket\n"
    "accept = socket.socket.accept\n"
    "def nodelay_accept(self):\n"
    "    conn, address = accept(self)\n"
    "    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
    "    return conn, address\n"
    "socket.socket.accept = nodelay_accept\n"
    "runpy.run_module('miniircd', run_name='__main__', alter_sys=True)\n"
)


class MiniircdServer(ServerProcess):
    kind = "miniircd"
    burst = 4   # it listens with a backlog of 5
    protocol_tcp = Irc()

    def __init__(self, workdir: Path, nodelay: bool = False) -> None:
        super().__init__(workdir)
        self.nodelay = nodelay

    def command(self) -> list[str]:
        self.port = free_port()
        try:
            found = importlib.util.find_spec("miniircd") is not None
        except (ImportError, ValueError):
            found = False
        if found:
            base = [sys.executable, "-c", NODELAY_MINIIRCD] if self.nodelay else [sys.executable, "-m", "miniircd"]
        elif shutil.which("miniircd"):
            base = [str(shutil.which("miniircd"))]
        else:
            raise ServerError("miniircd not installed (pip install miniircd)")
        if self.nodelay and not found:
            raise ServerError("--miniircd-nodelay needs miniircd importable by this python")
        command = base + ["--listen", LOOPBACK, "--ports", str(self.port)]
        if os.geteuid() == 0:   # it refuses to run as root without this
            command += ["--setuid", "root"]
        return command


class NcatServer(ServerProcess):
    kind = "ncat"
    burst = 8   # it listens with a backlog of 10
    protocol_tcp = NcatChat()

    def __init__(self, workdir: Path, max_conns: int) -> None:
        super().__init__(workdir)
        self.max_conns = max_conns

    def command(self) -> list[str]:
        ncat = shutil.which("ncat")
        if not ncat:
            raise ServerError("ncat not installed (apt-get install -y ncat)")
        self.port = free_port()
        return [ncat, "--broker", "--chat", "--listen", LOOPBACK, str(self.port),
                "--max-conns", str(self.max_conns)]


def cluster_flags(options: argparse.Namespace) -> list[str]:
    """--nodes N --backplane URL: N chatsrv nodes on one port (chatsrv --workers N), joined by that Redis."""
    nodes, backplane = getattr(options, "nodes", 1), getattr(options, "backplane", None)
    if not backplane:
        return []
    return ["--backplane", backplane] + (["--workers", str(nodes)] if nodes > 1 else [])


def chatsrv_command(options: argparse.Namespace) -> list[str]:
    return shlex.split(options.server_cmd) if options.server_cmd else [sys.executable, "-m", "chatsrv"]


#: Limits of newer chatsrv versions that would stop the benchmark's own bursts of
#: connects from 127.0.0.1 (64 not yet joined at a time), turned off like --max-per-ip.
CAPS_OFF = ("--max-waiting-per-ip", "0")
# The "listening on HOST port N" line is read by ready(), so chatsrv must print it in English whatever
# the machine's locale (a chatsrv from before --lang existed prints English anyway).
ENGLISH = ("--lang", "en")

_help_texts: dict[tuple[str, str], str | None] = {}


def server_help(options: argparse.Namespace) -> str | None:
    """This chatsrv's --help text (asked once per command and directory), None if it would not say."""
    key = (" ".join(chatsrv_command(options)), str(options.server_dir))
    if key not in _help_texts:
        try:
            shown = subprocess.run(chatsrv_command(options) + ["--help"], cwd=options.server_dir,
                                   capture_output=True, text=True, timeout=15, check=False,
                                   stdin=subprocess.DEVNULL)
            _help_texts[key] = shown.stdout
        except (OSError, subprocess.TimeoutExpired):
            _help_texts[key] = None
    return _help_texts[key]


def known_flags(options: argparse.Namespace, args: Sequence[str]) -> list[str]:
    """`args` (pairs of --flag value) without the flags this chatsrv's --help does not list.

    An older chatsrv (--server-dir, --server-cmd) can still be measured: it
    runs without the limits it does not have. Unknown help: all are kept.
    """
    shown = server_help(options)
    if shown is None:
        return list(args)
    kept: list[str] = []
    for index in range(0, len(args) - 1, 2):
        flag, value = args[index], args[index + 1]
        if re.search(re.escape(flag) + r"(?![\w-])", shown):
            kept += [flag, value]
    return kept


def default_db(options: argparse.Namespace) -> str:
    """":memory:" if this chatsrv has a --db option, else "" (leave it out)."""
    shown = server_help(options)
    if shown is None:
        return ":memory:"
    return ":memory:" if "--db" in shown else ""


#: The servers a run can be measured against, in the order a round runs them.
SERVER_KINDS = ("lanchat", "miniircd", "ncat")


def make_server(kind: str, workdir: Path, options: argparse.Namespace, max_conns: int,
                extra: Sequence[str] = ()) -> ServerProcess:
    """A server of `kind`; `extra` are lanchat flags after the benchmark's own (the other servers ignore them)."""
    if kind == "lanchat":
        return LanchatServer(workdir, options, extra)
    if kind == "miniircd":
        return MiniircdServer(workdir, nodelay=getattr(options, "miniircd_nodelay", False))
    if kind == "ncat":
        return NcatServer(workdir, max_conns + 50)
    raise ValueError(kind)
