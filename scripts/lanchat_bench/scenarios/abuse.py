"""Scenario abuse (and abuse-udp): honest members chat while every attack of issue 14 runs at once.

Two phases, each against a fresh server with chatsrv's default limits put
back (the benchmark turns them off for the other scenarios): a baseline in
which --abuse-clients members, each from its own loopback address like a
class of machines, chat at --abuse-rate messages a second each, and the same
again while the attackers (`attackers.py`) run every attack at once, over
TCP and UDP (`lanchat_bench.attacks`). Reported: what the honest members lost (must be nothing), how
many stayed connected, their p99 one-way latency in both phases, the
server's RSS and thread count before the attack, at its peak during it and
after the attackers left, and whether a newcomer can still join, list the
rooms and stay. With abuse-udp the honest members speak UDP; the attackers
are the same.
Owns: the phases, the newcomer's check and their result records.
Must not import: the registry, the runner, the report or the CLI.
"""
from __future__ import annotations

import argparse
import json
import socket
import struct
import time
from dataclasses import dataclass, field

from ..attacks import Attackers, every_attack
from ..codecs import chat_text, frame, json_bytes
from ..conn import Tally
from ..launchers import ServerProcess
from ..loop import Loop
from ..procstat import percentile, rnd, rss_kb, thread_count
from ..records import EMPTY, OPTIONAL
from .base import (
    RunContext,
    Scenario,
    Size,
    burst_for,
    exit_error,
    fresh_room,
    housekeeping_tick,
    join_clients,
    join_failure,
    joined,
)

#: Honest members speak from 127.0.1.N (N from 1), attackers from 127.0.2.N, the newcomer from 127.0.3.1.
HONEST_NET = "127.0.1."
NEWCOMER = "127.0.3.1"
#: chatsrv's own defaults, which the benchmark turns off elsewhere (and the hello deadline short
#: enough that the drips meet it within a run).
DEFAULT_LIMITS = ("--rate", "5", "--burst", "20", "--max-clients", "1000", "--max-per-ip", "16",
                  "--max-waiting-per-ip", "8", "--hello-timeout", "5")
#: How long the server gets after the attackers left to give back its threads.
SETTLE_S = 5.0


@dataclass
class Sample:
    """The server's RSS and threads at one moment."""

    rss_kb: int | None
    threads: int | None

    @classmethod
    def of(cls, pid: int) -> Sample:
        return cls(rss_kb(pid), thread_count(pid))


@dataclass
class Peak:
    """The highest RSS and thread count seen so far, sampled ten times a second."""

    rss_kb: int
    threads: int
    next_at: float = 0.0


@dataclass
class AbusePhase:
    """One phase: the honest members' figures, and the server's before, peak during and after."""

    sent: int = 0
    expected: int = 0
    received: int = 0
    lost: int = 0
    stayed: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    stopped: str | None = None
    before: Sample | None = None
    during: Sample | None = None
    after: Sample | None = None
    newcomer: str | None = None
    #: Honest members the server removed, by nick, with the reason.
    honest_left: dict[str, str] | None = field(default=None, metadata=OPTIONAL)
    #: Errors the honest members were sent, by code.
    honest_errors: dict[str, int] | None = field(default=None, metadata=OPTIONAL)
    attacks: dict[str, dict[str, object]] | None = field(default=None, metadata=OPTIONAL)
    error: str | None = field(default=None, metadata=OPTIONAL)


@dataclass
class AbuseResult:
    clients: int
    rate: float
    duration: float
    base_lost: int | None = None
    lost: int | None = None
    stayed: int | None = None
    base_p99_ms: float | None = None
    p99_ms: float | None = None
    p99_ratio: float | None = None
    rss_before_kb: int | None = None
    rss_during_kb: int | None = None
    rss_after_kb: int | None = None
    threads_before: int | None = None
    threads_during: int | None = None
    threads_after: int | None = None
    newcomer: str | None = None
    base: AbusePhase | None = field(default=None, metadata=EMPTY)
    attack: AbusePhase | None = field(default=None, metadata=EMPTY)
    error: str | None = field(default=None, metadata=OPTIONAL)


def ms(value: float | None) -> float | None:
    return rnd(value * 1000 if value is not None else None, 3)


def newcomer_check(server: ServerProcess, timeout: float = 10.0) -> str:
    """Can a newcomer join, ask `rooms` and stay? "ok (N rooms listed)" or what went wrong."""
    header = struct.Struct("!I")
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((NEWCOMER, 0))
            sock.settimeout(timeout)
            sock.connect((server.host, server.port))
            buffer = bytearray()

            def next_payload() -> dict[str, object]:
                while True:
                    if len(buffer) >= 4:
                        size = header.unpack_from(buffer)[0]
                        if len(buffer) >= 4 + size:
                            body = bytes(buffer[4:4 + size])
                            del buffer[:4 + size]
                            payload: dict[str, object] = json.loads(body)
                            return payload
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    data = sock.recv(1 << 20)
                    if not data:
                        raise ConnectionError("closed by the server")
                    buffer.extend(data)

            def until(kind: str) -> dict[str, object]:
                while True:
                    payload = next_payload()
                    if payload.get("type") == kind:
                        return payload
                    if payload.get("type") == "error":
                        raise ConnectionError(f"error {payload.get('code')}: {payload.get('message')}")
                    if payload.get("type") == "left" and payload.get("nick") == "newcomer":
                        raise ConnectionError(f"left: {payload.get('reason')}")

            sock.sendall(frame(json_bytes({"type": "hello", "nick": "newcomer"})))
            until("welcome")
            sock.sendall(frame(json_bytes({"type": "rooms"})))
            listed = until("rooms").get("rooms")
            sock.sendall(frame(json_bytes({"type": "ping", "id": "still-here"})))
            until("pong")
            count = len(listed) if isinstance(listed, list) else "?"
            return f"ok ({count} rooms listed)"
    except (OSError, ConnectionError, ValueError) as error:
        return f"failed: {error}"


def abuse_phase(ctx: RunContext, with_attackers: bool) -> AbusePhase:
    """Honest members chat for --abuse-duration s; with the attackers running if `with_attackers`."""
    opts, udp = ctx.opts, ctx.udp
    server = ctx.launch()
    pid = server.pid or 0
    proto = server.protocol(udp)
    loop = Loop(server)
    tally = Tally(want_latency=True)
    room = fresh_room("abuse")
    count: int = opts.abuse_clients
    phase = AbusePhase()
    attackers: Attackers | None = None
    try:
        conns = join_clients(loop, proto, tally, count, room, "h", time.perf_counter() + opts.timeout,
                             burst_for(server, opts), source=lambda index: f"{HONEST_NET}{index + 1}")
        if joined(conns) < count:
            phase.error = join_failure(conns, loop)
            return phase
        phase.before = Sample.of(pid)
        peak = Peak(phase.before.rss_kb or 0, phase.before.threads or 0)
        housekeeping = housekeeping_tick(loop, udp)

        def sample(now: float) -> None:
            if now >= peak.next_at:
                peak.next_at = now + 0.1
                peak.rss_kb = max(peak.rss_kb, rss_kb(pid) or 0)
                peak.threads = max(peak.threads, thread_count(pid) or 0)
            if housekeeping:
                housekeeping(now)

        def sample_tick(now: float) -> float | None:
            sample(now)
            return None

        if with_attackers:
            attackers = Attackers((server.host, server.port), every_attack(room, udp=True),
                                  opts.abuse_duration + opts.timeout + 2.0)
            attackers.start()
            # The attack is in full swing before the first honest line is sent.
            loop.run_until(lambda: False, time.perf_counter() + 1.0, tick=sample_tick)
        rate = float(opts.abuse_rate) * count
        total = max(count, int(rate * opts.abuse_duration))
        start = time.perf_counter() + 0.02
        state = {"sent": 0}

        def tick(now: float) -> float | None:
            sample(now)
            sent: int = state["sent"]
            if sent >= total:
                return None
            due = min(total, int((now - start) * rate) + 1) if now >= start else 0
            while sent < due:
                scheduled = start + sent / rate
                sender = conns[sent % count]
                loop.transmit(sender, proto.say(room, chat_text(sender.index, opts.size, scheduled)))
                sent += 1
            state["sent"] = sent
            return max(0.0, start + sent / rate - time.perf_counter())

        receivers = count if proto.echo else count - 1
        why = loop.run_until(lambda: state["sent"] >= total and tally.received >= total * receivers,
                             start + opts.abuse_duration + opts.timeout, idle=opts.idle,
                             progress=lambda: tally.bytes + state["sent"], tick=tick)
        phase.during = Sample(peak.rss_kb or None, peak.threads or None)
        honest = {conn.nick.casefold() for conn in conns}
        left = {nick: reason for nick, (reason, _) in tally.departures.items() if nick in honest}
        phase.honest_left = left or None
        phase.stayed = sum(1 for conn in conns if not conn.closed and conn.nick.casefold() not in left)
        phase.sent = state["sent"]
        phase.expected = phase.sent * receivers
        phase.received = tally.received
        phase.lost = phase.expected - tally.received
        ordered = sorted(tally.latencies or [])
        phase.p50_ms = ms(percentile(ordered, 0.50))
        phase.p99_ms = ms(percentile(ordered, 0.99))
        phase.max_ms = ms(ordered[-1] if ordered else None)
        phase.stopped = why
        phase.error = exit_error(why, server)
        phase.honest_errors = dict(tally.errors) or None
        if attackers is not None:
            if not attackers.stop():
                phase.error = phase.error or "an attacker thread did not stop"
            phase.attacks = {name: {"sent": stats.sent, "closed": stats.closed, **stats.errors}
                             for name, stats in attackers.stats.items()}
            attackers = None
            before_threads = phase.before.threads or 0
            loop.run_until(lambda: (thread_count(pid) or 0) <= before_threads,
                           time.perf_counter() + SETTLE_S, tick=sample_tick)
        phase.after = Sample.of(pid)
        phase.newcomer = newcomer_check(server) if server.alive() else "failed: the server exited"
        return phase
    finally:
        if attackers is not None:
            attackers.stop()
        loop.close_all()


def run_abuse(ctx: RunContext) -> AbuseResult:
    """The baseline, then the same chat under attack, each against a fresh server."""
    opts: argparse.Namespace = ctx.opts
    result = AbuseResult(clients=opts.abuse_clients, rate=opts.abuse_rate, duration=opts.abuse_duration)
    base = abuse_phase(ctx, with_attackers=False)
    result.base = base
    if base.error is not None:
        result.error = base.error
        return result
    attack = abuse_phase(ctx, with_attackers=True)
    result.attack = attack
    result.error = attack.error
    result.base_lost, result.lost, result.stayed = base.lost, attack.lost, attack.stayed
    result.base_p99_ms, result.p99_ms = base.p99_ms, attack.p99_ms
    if base.p99_ms and attack.p99_ms is not None:
        result.p99_ratio = rnd(attack.p99_ms / base.p99_ms, 2)
    for moment in ("before", "during", "after"):
        sample: Sample | None = getattr(attack, moment)
        if sample is not None:
            setattr(result, f"rss_{moment}_kb", sample.rss_kb)
            setattr(result, f"threads_{moment}", sample.threads)
    result.newcomer = attack.newcomer
    return result


SCENARIO = Scenario(
    name="abuse",
    help="""--abuse-clients honest members, each from its own loopback
address, chat at --abuse-rate messages/s each for
--abuse-duration s, once alone and once while attackers run
every attack of issue 14 at once over TCP and UDP (room flood,
1e999 pings, drips before hello, discovery flood, ping flood,
big requests, junk datagrams, zero-width floods).  chatsrv's
default limits apply (hello deadline 5 s).  Reports what the
honest members lost, how many stayed, their p99 latency alone
and under attack, the server's RSS and threads before, at the
peak during and after the attack, and whether a newcomer can
then join, list rooms and stay.""",
    key_metric="p99_ratio",
    headline=("lost", "p99_ms", "rss_during_kb"),
    columns=(("server", "server"), ("tr", "transport"), ("N", "clients"), ("msg/s each", "rate"),
             ("lost alone", "base_lost"), ("lost attacked", "lost"), ("stayed", "stayed"),
             ("p99 ms alone", "base_p99_ms"), ("p99 ms attacked", "p99_ms"), ("ratio", "p99_ratio"),
             ("RSS KB before", "rss_before_kb"), ("during", "rss_during_kb"), ("after", "rss_after_kb"),
             ("threads before", "threads_before"), ("during", "threads_during"), ("after", "threads_after"),
             ("newcomer", "newcomer")),
    run=lambda ctx: run_abuse(ctx),
    sizes=(Size("--abuse-clients", int, "honest members (abuse)", 30, 5),
           Size("--abuse-rate", float, "messages/s each honest member sends (abuse)", 1.0, 2.0),
           Size("--abuse-duration", float, "seconds of chat in each phase (abuse)", 10.0, 2.0)),
    udp=True,
    server_args=DEFAULT_LIMITS,
    lanchat_only=True,
)
