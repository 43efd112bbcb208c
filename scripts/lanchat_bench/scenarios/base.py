"""What every scenario is made of: its descriptor, its inputs, and the shared building blocks.

Owns: `Scenario` (name, --help text, sizes, how the report shows it, how it
runs), `Size` (one size flag with its normal and --tiny default),
`RunContext` (what a run gets), `Outcome` (the keys fanout and latency end
with), and the blocks the scenarios share: joining clients with a bounded
burst, fresh rooms, the UDP housekeeping tick, join-failure text.
Must not import: the registry (scenarios/__init__), the runner, the report or the CLI.
"""
from __future__ import annotations

import argparse
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..codecs import Codec
from ..conn import Conn, Tally
from ..launchers import ServerProcess
from ..loop import Loop
from ..records import OPTIONAL


@dataclass(frozen=True)
class Size:
    """One size flag: `--clients` becomes opts.clients, defaulting to `normal` (or `tiny` with --tiny)."""

    flag: str
    kind: type
    help: str
    normal: Any
    tiny: Any

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")


@dataclass
class RunContext:
    """One run of a scenario: `launch()` starts a fresh server (call it once per phase)."""

    launch: Callable[[], ServerProcess]
    opts: argparse.Namespace
    udp: bool = False
    #: The connection count of this run (scenarios with per_conns only).
    conns: int | None = None


@dataclass(frozen=True)
class Scenario:
    """A scenario as the CLI, the runner and the report see it."""

    name: str
    #: What --help says about it, pre-wrapped lines (the CLI indents them).
    help: str
    #: The metric whose median round the tables show.
    key_metric: str
    #: Metrics compared as lanchat / other in --vs runs.
    headline: tuple[str, ...]
    #: The table: (header, key of the row) per column.
    columns: tuple[tuple[str, str], ...]
    #: Runs it and returns a result record (a dataclass, see records.py). Written as
    #: `lambda ctx: run_NAME(ctx)` so that the module's function is looked up at run time
    #: (a test can replace it).
    run: Callable[[RunContext], object]
    #: Its own size flags (shown under "sizes" in --help).
    sizes: tuple[Size, ...] = ()
    #: Also offered as NAME-udp, over lanchat's UDP transport (lanchat alone).
    udp: bool = False
    #: Runs once per --conns count instead of once per --repeat round.
    per_conns: bool = False
    #: chatsrv flags given after the benchmark's own (later flags win), e.g. to put back
    #: limits the benchmark turns off; a flag this chatsrv does not know is left out.
    server_args: tuple[str, ...] = ()
    #: Measures lanchat alone, also in --vs runs (its clients speak lanchat's protocol only).
    lanchat_only: bool = False
    #: Part of `all` (a scenario that takes minutes or needs another program says False).
    in_all: bool = True


@dataclass
class Outcome:
    """How a measured phase ended, beyond its figures (keys left out while unset)."""

    error: str | None = field(default=None, metadata=OPTIONAL)
    seq_gaps: int | None = field(default=None, metadata=OPTIONAL)
    reordered: int | None = field(default=None, metadata=OPTIONAL)
    errors: dict[str, int] | None = field(default=None, metadata=OPTIONAL)


def exit_error(why: str, server: ServerProcess) -> str | None:
    """The error of a phase that stopped because the server exited, else None."""
    return server.exit_note() if why == "server exited" else None


def outcome(why: str, server: ServerProcess, tally: Tally, udp: bool) -> Outcome:
    """What fanout and latency add at the end: server exit, UDP sequence counters, errors."""
    ending = Outcome(error=exit_error(why, server), errors=dict(tally.errors) or None)
    if udp:
        ending.seq_gaps, ending.reordered = tally.gaps, tally.reordered
    return ending


def burst_for(server: ServerProcess, opts: argparse.Namespace) -> int:
    return int(opts.burst or server.burst)


_room_counter = 0
_run_token = "".join(chr(ord("a") + b % 26) for b in os.urandom(5))


def fresh_room(prefix: str) -> str:
    """A new room per phase and per benchmark run, so that no history of an
    earlier phase (or of an earlier run kept in a --db file) shows up."""
    global _room_counter
    _room_counter += 1
    return f"{prefix}{_room_counter}{_run_token}"


def join_clients(loop: Loop, proto: Codec, tally: Tally, count: int, room: str,
                 prefix: str, deadline: float, burst: int, rcvbuf: int | None = None,
                 scan: bool = False, source: Callable[[int], str] | None = None) -> list[Conn]:
    """Connect `count` clients (at most `burst` unanswered at a time) and
    wait until each has joined or failed; returns all of them.
    `source(i)` gives client i its own loopback address (default: all from 127.0.0.1)."""
    conns: list[Conn] = []
    base = loop.ready_count + loop.failed_count

    def settled() -> int:
        return loop.ready_count + loop.failed_count - base

    def tick(now: float) -> float | None:
        while len(conns) < count and len(conns) - settled() < burst:
            conn = Conn(loop, proto, tally, len(conns), f"{prefix}{len(conns)}", room)
            conn.scan = scan
            if source is not None:
                conn.source = source(len(conns))
            conns.append(conn)
            loop.open(conn, rcvbuf)
        if proto.udp:
            loop.udp_housekeeping(now)
        return None

    loop.run_until(lambda: settled() >= count, deadline, tick=tick)
    return conns


def joined(conns: Sequence[Conn]) -> int:
    return sum(1 for conn in conns if conn.ready and not conn.closed)


def join_failure(conns: Sequence[Conn], loop: Loop, wanted: int | None = None) -> str:
    reasons = Counter(conn.failed or "no answer" for conn in conns if not conn.ready)
    if wanted and wanted > len(conns):
        reasons["never opened (deadline)"] = wanted - len(conns)
    text = ", ".join(f"{why} x{n}" for why, n in reasons.most_common(3))
    alive = "" if loop.server.alive() else " (server exited)"
    return f"only {joined(conns)} of {wanted or len(conns)} joined: {text}{alive}"


def housekeeping_tick(loop: Loop, udp: bool) -> Callable[[float], float | None] | None:
    """A tick for run_until that does the UDP housekeeping ten times a second (None over TCP)."""
    if not udp:
        return None
    state = {"next": 0.0}

    def tick(now: float) -> float | None:
        if now >= state["next"]:
            state["next"] = now + 0.1
            loop.udp_housekeeping(now)
        return None
    return tick
