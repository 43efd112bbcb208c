"""Scenario slow: one member that never reads, and what it does to the others.

One member sends --slow-messages messages of --slow-size bytes; the others
read. Three phases, each against a fresh server (clean RSS baseline; and
ncat quits when members of a phase disconnect abruptly): a baseline, one
with an extra member that sets SO_RCVBUF=4096 and never reads, and the
baseline again (A-B-A). The baseline rate is the mean of both, so a drift
during the round (another tenant, the CPU clock) cancels out instead of
favouring a phase.
Owns: the phases, the A-B-A round and their result records.
Must not import: the registry, the runner, the report or the CLI.
"""
from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..codecs import chat_text
from ..conn import Conn, Tally
from ..launchers import ServerProcess
from ..loop import RECV_SIZE, Loop
from ..procstat import CpuMeter, CpuShare, rnd, rss_kb
from ..records import EMPTY, FLAT, OPTIONAL
from .base import Scenario, Size, burst_for, exit_error, fresh_room, join_clients, join_failure, joined


@dataclass
class PhaseFigures:
    expected: int
    received: int
    lost: int
    wall_s: float | None
    rate: float | None
    stopped: str
    cpu: CpuShare = field(metadata=FLAT)


@dataclass
class StuckFate:
    """What became of the member that never read."""

    stuck_left_reason: str | None
    stuck_left_after_s: float | None
    stuck_socket: str | None


@dataclass
class PhaseMemory:
    rss_before_kb: int | None
    rss_peak_kb: int
    rss_end_kb: int | None
    rss_growth_kb: int | None


@dataclass
class SlowPhase:
    """One phase; a phase that could not start has only its error."""

    figures: PhaseFigures | None = field(default=None, metadata=FLAT)
    error: str | None = field(default=None, metadata=OPTIONAL)
    #: Healthy members the server removed, by nick: the first thing to look at when something was lost.
    others_left: dict[str, str] | None = field(default=None, metadata=OPTIONAL)
    #: The server's last log lines when the phase did not finish.
    server_log: str | None = field(default=None, metadata=OPTIONAL)
    stuck: StuckFate | None = field(default=None, metadata=FLAT)
    memory: PhaseMemory | None = field(default=None, metadata=FLAT)
    errors: dict[str, int] | None = field(default=None, metadata=OPTIONAL)


@dataclass
class SlowResult:
    clients: int
    messages: int
    size: int
    base: SlowPhase | None = field(default=None, metadata=EMPTY)
    with_stuck: SlowPhase | None = field(default=None, metadata=EMPTY)
    base_after: SlowPhase | None = field(default=None, metadata=EMPTY)
    error: str | None = field(default=None, metadata=OPTIONAL)
    base_rate: float | None = None
    stuck_rate: float | None = None
    base_lost: int | None = None
    stuck_lost: int | None = None
    stuck_delivered_pct: float | None = None
    rate_ratio: float | None = None
    rss_growth_kb: int | None = None
    stuck_left_reason: str | None = None
    stuck_left_after_s: float | None = None
    stuck_socket: str | None = None
    others_left: dict[str, dict[str, str]] | None = field(default=None, metadata=OPTIONAL)


def drain_until_closed(sock: socket.socket, seconds: float = 1.0) -> str:
    """Read what a stuck member has waiting: did the server close it?"""
    sock.setblocking(False)
    deadline = time.perf_counter() + seconds
    budget = 256 * 1024 * 1024
    while time.perf_counter() < deadline and budget > 0:
        try:
            data = sock.recv(RECV_SIZE)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        except OSError:
            return "reset by server"
        if not data:
            return "closed by server"
        budget -= len(data)
    return "still open"


def slow_phase(server: ServerProcess, opts: argparse.Namespace, with_stuck: bool) -> SlowPhase:
    """One sender floods 1 KB messages; the others read; maybe one is stuck."""
    proto = server.protocol(False)
    loop = Loop(server)
    tally = Tally()
    stuck_tally = Tally()
    room = fresh_room("slow")
    readers = opts.slow_clients - 1
    pid = server.pid or 0
    try:
        deadline = time.perf_counter() + opts.timeout
        conns = join_clients(loop, proto, tally, readers, room, "s", deadline, burst_for(server, opts))
        if joined(conns) < readers:
            return SlowPhase(error=join_failure(conns, loop))
        stuck: Conn | None = None
        if with_stuck:
            stuck = join_clients(loop, proto, stuck_tally, 1, room, "stuck", deadline, 1, rcvbuf=4096)[0]
            if not stuck.ready:
                return SlowPhase(error="the stuck member did not join: " + str(stuck.failed))
            loop.stop_reading(stuck)
        expected = opts.slow_messages * (readers if proto.echo else readers - 1)
        tally.received = 0
        rss_before = rss_kb(pid)
        peak = {"kb": rss_before or 0}
        next_sample = {"at": 0.0}

        def tick(now: float) -> float | None:
            if now >= next_sample["at"]:
                next_sample["at"] = now + 0.1
                peak["kb"] = max(peak["kb"], rss_kb(pid) or 0)
            return None

        meter = CpuMeter(server.pid)
        start = time.perf_counter()
        loop.start_sending(conns[0], proto.say(room, chat_text(0, opts.slow_size)), opts.slow_messages)
        why = loop.run_until(lambda: tally.received >= expected, start + opts.timeout, idle=opts.idle,
                             progress=lambda: tally.bytes, tick=tick)
        wall = (tally.last_delivery or time.perf_counter()) - start
        phase = SlowPhase(figures=PhaseFigures(
            expected=expected, received=tally.received, lost=expected - tally.received, wall_s=rnd(wall),
            rate=rnd(tally.received / wall if wall > 0 else None, 0), stopped=why, cpu=meter.result()))
        phase.error = exit_error(why, server)
        phase.others_left = {nick: reason for nick, (reason, _) in tally.departures.items()
                             if stuck is None or nick != stuck.name.casefold()} or None
        if why != "done":
            phase.server_log = server.log_tail(8)
        if stuck is not None:
            name = stuck.name.casefold()
            loop.run_until(lambda: name in tally.departures, time.perf_counter() + opts.slow_grace, tick=tick)
            departure = tally.departures.get(name)
            phase.stuck = StuckFate(
                stuck_left_reason=departure[0] if departure else None,
                stuck_left_after_s=rnd(departure[1] - start) if departure else None,
                stuck_socket=drain_until_closed(stuck.sock) if stuck.sock else None)
        phase.memory = PhaseMemory(rss_before_kb=rss_before, rss_peak_kb=peak["kb"], rss_end_kb=rss_kb(pid),
                                   rss_growth_kb=peak["kb"] - rss_before if rss_before else None)
        phase.errors = dict(tally.errors) or None
        return phase
    finally:
        loop.close_all()


def run_slow(launch: Callable[[], ServerProcess], opts: argparse.Namespace) -> SlowResult:
    """The A-B-A round: baseline, stuck member, baseline again, each against a fresh server."""
    result = SlowResult(clients=opts.slow_clients, messages=opts.slow_messages, size=opts.slow_size)
    base = slow_phase(launch(), opts, with_stuck=False)
    stuck = slow_phase(launch(), opts, with_stuck=True) if base.error is None else None
    base_after = (slow_phase(launch(), opts, with_stuck=False)
                  if base.error is None and stuck is not None and stuck.error is None else None)
    result.base, result.with_stuck, result.base_after = base, stuck, base_after
    result.error = next((phase.error for phase in (base, stuck, base_after) if phase and phase.error), None)
    rates = [phase.figures.rate for phase in (base, base_after) if phase and phase.figures and phase.figures.rate]
    base_rate = rnd(sum(rates) / len(rates), 0) if rates else None
    stuck_figures = stuck.figures if stuck else None
    result.base_rate = base_rate
    result.stuck_rate = stuck_figures.rate if stuck_figures else None
    if base.figures is not None:
        result.base_lost = sum(phase.figures.lost for phase in (base, base_after) if phase and phase.figures)
    if stuck_figures is not None:
        result.stuck_lost = stuck_figures.lost
        if stuck_figures.expected:
            result.stuck_delivered_pct = rnd(100 * stuck_figures.received / stuck_figures.expected, 1)
        if stuck_figures.rate and base_rate:
            result.rate_ratio = rnd(stuck_figures.rate / base_rate)
    if stuck is not None and stuck.memory is not None:
        result.rss_growth_kb = stuck.memory.rss_growth_kb
    if stuck is not None and stuck.stuck is not None:
        fate = stuck.stuck
        result.stuck_left_reason = fate.stuck_left_reason
        result.stuck_left_after_s = fate.stuck_left_after_s
        result.stuck_socket = fate.stuck_socket
    result.others_left = {name: phase.others_left for name, phase in
                          (("base", base), ("with_stuck", stuck), ("base_after", base_after))
                          if phase and phase.others_left} or None
    return result


SCENARIO = Scenario(
    name="slow",
    help="""--slow-clients members; one sends --slow-messages messages of
--slow-size bytes.  Run once without and once with one extra
member that sets SO_RCVBUF=4096 and never reads: delivery rate
of the others, server RSS growth, what became of the stuck one
(lanchat should send `left` with reason `slow`).  The
baseline runs before and after the stuck phase (A-B-A) and
its rate is the mean of both.""",
    key_metric="rate_ratio",
    headline=("base_rate", "stuck_rate", "rss_growth_kb"),
    columns=(("server", "server"), ("N", "clients"), ("M", "messages"),
             ("base deliv/s", "base_rate"), ("stuck deliv/s", "stuck_rate"),
             ("ratio", "rate_ratio"), ("lost", "stuck_lost"),
             ("delivered %", "stuck_delivered_pct"), ("RSS growth KB", "rss_growth_kb"),
             ("stuck left", "stuck_left_reason"), ("after s", "stuck_left_after_s"),
             ("stuck socket", "stuck_socket")),
    run=lambda ctx: run_slow(ctx.launch, ctx.opts),
    sizes=(Size("--slow-clients", int, "members including the sender (slow)", 20, 4),
           Size("--slow-messages", int, "messages sent (slow)", 20000, 6000),
           Size("--slow-size", int, "text size in bytes (slow)", 1024, 1024)),
)
