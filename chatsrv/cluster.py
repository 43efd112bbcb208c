"""Workers: `chatsrv --workers N` runs N nodes on one port, joined by the backplane (docs/scale-out.md).

Python runs one thread at a time per process, so one chatsrv uses one core.
With `--workers N` this module starts N chatsrv processes (the nodes) that
all listen on the same TCP port with SO_REUSEPORT: the kernel hands each new
connection to one of them, and the backplane (`--backplane`, required) makes
them one chat. Node 1 also serves UDP and discovery (a UDP peer is known by
its address to one process; spreading datagrams over processes would split
a peer's session), the others serve TCP only. All nodes share the same
`--db` file (SQLite takes one writer at a time) and the same operator secret.

This module owns only the supervision: choosing the shared port, the
children's command lines, forwarding a stop to them and waiting. It imports
nothing of the server; the children are ordinary chatsrv processes.

Imports: lanchat.platforms, lanchat.i18n. (`shown_url`, the backplane URL without its password, is here so that
chatsrv.options, chatsrv.backplane and chatsrv.app, which all print it, share it.)
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from lanchat import platforms
from lanchat.i18n import _

SHARED_PORT_FLAG = "--shared-port"  # internal: a child binds its TCP port with SO_REUSEPORT
RESTART_AFTER = 10.0  # seconds a node must have run for a crash of it to be restarted (not a failed start)
OP_SECRET_VARIABLE = "LANCHAT_OP_SECRET"  # chatsrv.app reads it; every node gets the same secret
NODE_VARIABLE = "LANCHAT_NODE"  # "2/4" for node 2 of 4: it prints one line, the supervisor said the rest


def shown_url(url: str) -> str:
    """A backplane URL as it may be printed and logged: a password in it becomes `***`."""
    scheme, sep, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    if not sep or not at:
        return url
    user, colon, _password = credentials.partition(":")
    return f"{scheme}://{user}{colon and ':***'}@{place}" if colon else f"{scheme}://***@{place}"


def without_workers_flag(argv: Sequence[str]) -> list[str]:
    """`argv` with `--workers N` (or `--workers=N`) taken out."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            kept.append(arg)
    return kept


def worker_argv(argv: Sequence[str], port: int) -> list[str]:
    """The command-line flags of every node: the same flags and the shared port. Each node is told its place by
    NODE_VARIABLE and takes its part from it (chatsrv.app: UDP, discovery and the text door are node 1's)."""
    return [*without_workers_flag(argv), "--port", str(port), SHARED_PORT_FLAG]


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A socket that holds the shared port (bound with SO_REUSEPORT, not listening) until the nodes bind it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    if platforms.ALLOW_REUSE_ADDRESS:  # as the nodes' own TCP servers: the last run's connections in TIME_WAIT
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    platforms.share_port(holder)
    holder.bind((host, port))
    return holder, int(holder.getsockname()[1])


def run_workers(argv: Sequence[str], *, host: str, port: int, workers: int, backplane: str | None,
                op_secret_given: bool, make_op_secret: Callable[[], str] = lambda: secrets.token_urlsafe(12),
                start_lines: Callable[[int, str | None], list[str]] | None = None) -> int:
    """Start the nodes, print what runs where, wait for a stop signal, stop them; the exit status.

    `make_op_secret()`: the one secret all nodes share when none was given (chatsrv keeps it in --db).
    `start_lines(port, secret)`: the lines for classmates and the teacher, printed once for all nodes
    (`secret`: the one from make_op_secret, or None); each node then prints one line (NODE_VARIABLE).
    """
    if not backplane:
        print("chatsrv: --workers needs --backplane redis://HOST:PORT/DB (the nodes share rooms through it)",
              file=sys.stderr)
        return 2
    probe = socket.socket()
    try:
        if not platforms.share_port(probe):
            print("chatsrv: --workers is not available on this system (no SO_REUSEPORT that spreads connections); "
                  "run one chatsrv per port with --backplane instead", file=sys.stderr)
            return 2
    finally:
        probe.close()
    try:
        holder, port = reserve_port(host, port)
    except OSError as error:
        print(f"chatsrv: cannot listen on {host} port {port}: {error.strerror or error}", file=sys.stderr)
        return 2
    environ = dict(os.environ)
    made_up = None
    if not op_secret_given and not environ.get(OP_SECRET_VARIABLE):
        made_up = environ[OP_SECRET_VARIABLE] = make_op_secret()  # one secret for every node
    shown = shown_url(backplane)
    print(f"chatsrv --workers {workers}: {workers} nodes on {host} port {port} (SO_REUSEPORT: the kernel spreads "
          f"connections over them), joined by the backplane {shown}; node 1 also serves UDP and discovery",
          flush=True)
    if start_lines is not None:
        print("\n".join(start_lines(port, made_up)), flush=True)  # one write: no node's line lands inside it
    elif made_up is not None:  # the teacher needs it
        print(_("operator secret: {secret}{kept}   (in chatclient type: /op {secret})").format(secret=made_up, kept=""),
              flush=True)
    children: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    restore = platforms.on_stop_signals(stop.set)
    commands = [[sys.executable, "-m", "chatsrv", *worker_argv(argv, port)] for _index in range(workers)]
    environs = [{**environ, NODE_VARIABLE: f"{index + 1}/{workers}"} for index in range(workers)]
    started: list[float] = []
    try:
        for command, child_environ in zip(commands, environs):
            children.append(subprocess.Popen(command, env=child_environ, **platforms.CHILD_PROCESS_OPTIONS))
            started.append(time.monotonic())
        holder.close()  # the nodes hold the port now
        while not stop.wait(0.5):
            ended = [(index, child.returncode) for index, child in enumerate(children) if child.poll() is not None]
            if any(code == 0 or time.monotonic() - started[index] < RESTART_AFTER for index, code in ended):
                print("chatsrv: a node stopped; stopping the others", file=sys.stderr, flush=True)
                break
            for index, code in ended:  # a node that crashed after it served: its members reconnect to the others
                print(f"chatsrv: node {index + 1} ended (exit code {code}); starting it again", file=sys.stderr,
                      flush=True)
                children[index] = subprocess.Popen(commands[index], env=environs[index],
                                                   **platforms.CHILD_PROCESS_OPTIONS)
                started[index] = time.monotonic()
    finally:
        holder.close()
        for child in children:
            if child.poll() is None:
                platforms.ask_to_stop(child)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        restore()
    # A node killed by a signal has a negative code: a failure too (max(-9, 0) said 0, a clean stop).
    return max((1 if (child.returncode or 0) < 0 else child.returncode or 0 for child in children), default=0)
