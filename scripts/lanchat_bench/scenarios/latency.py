"""Scenario latency (and latency-udp): an open-loop offered load; one-way latency per delivery.

Each text carries its *scheduled* send time, so a late generator shows up as
latency instead of hiding it.
Sampled receivers: besides every delivery, the latency is also reported at
SAMPLED receivers spread over the join order (the first, the last and evenly
between), the way an independent harness that times a few receivers sees it
(`sampled_p50_ms` ... `sampled_max_ms`). Their deliveries are counted in a
tally of their own and are part of the "all deliveries" figures as well.

Owns: the latency run and its result record.
Must not import: the registry, the runner, the report or the CLI.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..codecs import chat_text
from ..conn import Tally
from ..loop import Loop
from ..procstat import CpuMeter, CpuShare, percentile, rnd
from ..records import FLAT
from .base import (
    Outcome,
    RunContext,
    Scenario,
    Size,
    burst_for,
    fresh_room,
    housekeeping_tick,
    join_clients,
    join_failure,
    joined,
    outcome,
)


@dataclass
class LatencyFigures:
    sent: int
    offered_rate: float | None
    expected: int
    received: int
    lost: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    stopped: str
    cpu: CpuShare = field(metadata=FLAT)
    #: The same latencies at SAMPLED receivers only (see the module docstring).
    sampled: int | None = None
    sampled_p50_ms: float | None = None
    sampled_p99_ms: float | None = None
    sampled_max_ms: float | None = None


@dataclass
class LatencyResult:
    clients: int
    senders: int
    rate: float
    duration: float
    size: int
    figures: LatencyFigures | None = field(default=None, metadata=FLAT)
    ending: Outcome | None = field(default=None, metadata=FLAT)


SAMPLED = 5  # receivers timed on their own, spread over the join order


def sampled_indices(count: int, wanted: int = SAMPLED) -> list[int]:
    """`wanted` indices spread evenly over 0 .. count-1, the first and the last included."""
    if count <= wanted:
        return list(range(count))
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def ms(value: float | None) -> float | None:
    return rnd(value * 1000 if value is not None else None, 3)


def run_latency(ctx: RunContext) -> LatencyResult:
    """Open-loop load of R messages/s for T s; one-way latency per delivery."""
    opts, udp = ctx.opts, ctx.udp
    server = ctx.launch()
    proto = server.protocol(udp)
    loop = Loop(server)
    tally = Tally(want_latency=True)
    room = fresh_room("latency")
    senders_count = min(opts.senders, opts.clients)
    result = LatencyResult(clients=opts.clients, senders=senders_count, rate=opts.rate, duration=opts.duration,
                           size=opts.size)
    try:
        conns = join_clients(loop, proto, tally, opts.clients, room, "l",
                             time.perf_counter() + opts.timeout, burst_for(server, opts))
        if joined(conns) < opts.clients:
            result.ending = Outcome(error=join_failure(conns, loop))
            return result
        receivers = opts.clients if proto.echo else opts.clients - 1
        sampled_tally = Tally(want_latency=True)
        for index in sampled_indices(len(conns)):
            conns[index].tally = sampled_tally

        def received() -> int:
            return tally.received + sampled_tally.received
        rate = float(opts.rate)
        total = max(1, int(rate * opts.duration))
        senders = conns[:senders_count]
        housekeeping = housekeeping_tick(loop, udp)
        meter = CpuMeter(server.pid)
        start = time.perf_counter() + 0.02
        state = {"sent": 0, "last_send": start}

        def tick(now: float) -> float | None:
            if housekeeping:
                housekeeping(now)
            sent = int(state["sent"])
            if sent >= total:
                return None
            due = min(total, int((now - start) * rate) + 1) if now >= start else 0
            while sent < due:
                scheduled = start + sent / rate
                sender = senders[sent % senders_count]
                loop.transmit(sender, proto.say(room, chat_text(sender.index, opts.size, scheduled)))
                sent += 1
            state["sent"] = sent
            state["last_send"] = now
            return max(0.0, start + sent / rate - time.perf_counter())

        why = loop.run_until(
            lambda: state["sent"] >= total and received() >= total * receivers,
            start + opts.duration + opts.timeout, idle=opts.idle,
            progress=lambda: tally.bytes + sampled_tally.bytes + state["sent"], tick=tick)
        tally.errors.update(sampled_tally.errors)
        tally.gaps += sampled_tally.gaps
        tally.reordered += sampled_tally.reordered
        sent = int(state["sent"])
        expected = sent * receivers
        sampled = sorted(sampled_tally.latencies or [])
        ordered = sorted((tally.latencies or []) + sampled)
        send_wall = state["last_send"] - start
        result.figures = LatencyFigures(
            sent=sent, offered_rate=rnd(sent / send_wall if send_wall > 0 else None, 0),
            expected=expected, received=received(), lost=expected - received(),
            p50_ms=ms(percentile(ordered, 0.50)), p90_ms=ms(percentile(ordered, 0.90)),
            p99_ms=ms(percentile(ordered, 0.99)), max_ms=ms(ordered[-1] if ordered else None),
            stopped=why, cpu=meter.result(), sampled=len(sampled_indices(len(conns))),
            sampled_p50_ms=ms(percentile(sampled, 0.50)), sampled_p99_ms=ms(percentile(sampled, 0.99)),
            sampled_max_ms=ms(sampled[-1] if sampled else None))
        result.ending = outcome(why, server, tally, udp)
        return result
    finally:
        loop.close_all()


SCENARIO = Scenario(
    name="latency",
    help="""N clients; an open-loop offered load of --rate messages/s for
--duration s, sent round-robin by S senders.  Every text carries
its scheduled send time; p50/p90/p99/max one-way latency over
all deliveries, and p50/p99/max at 5 receivers spread over the
join order (as a harness that samples a few receivers sees it).""",
    key_metric="p99_ms",
    headline=("p50_ms", "p99_ms", "max_ms", "sampled_p99_ms", "server_cpu_pct"),
    columns=(("server", "server"), ("tr", "transport"), ("N", "clients"),
             ("rate", "rate"), ("sent", "sent"), ("lost", "lost"),
             ("p50 ms", "p50_ms"), ("p90 ms", "p90_ms"), ("p99 ms", "p99_ms"),
             ("max ms", "max_ms"), ("p50@5", "sampled_p50_ms"), ("p99@5", "sampled_p99_ms"),
             ("max@5", "sampled_max_ms"), ("srv cpu%", "server_cpu_pct"),
             ("bench cpu%", "bench_cpu_pct")),
    run=lambda ctx: run_latency(ctx),
    sizes=(Size("--rate", float, "offered messages/s (latency)", 500.0, 200.0),
           Size("--duration", float, "seconds of load (latency)", 5.0, 1.0)),
    udp=True,
)
