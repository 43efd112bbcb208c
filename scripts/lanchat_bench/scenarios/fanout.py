"""Scenario fanout (and fanout-udp): S senders x M messages into a room of N; every delivery counted.

Owns: the fanout run and its result record.
Must not import: the registry, the runner, the report or the CLI.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..codecs import chat_text
from ..conn import Tally
from ..loop import Loop
from ..procstat import CpuMeter, CpuShare, rnd
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
class FanoutFigures:
    expected: int
    received: int
    lost: int
    wall_s: float | None
    deliveries_per_s: float | None
    messages_per_s: float | None
    stopped: str
    cpu: CpuShare = field(metadata=FLAT)


@dataclass
class FanoutResult:
    clients: int
    senders: int
    messages: int
    size: int
    window: int | None
    figures: FanoutFigures | None = field(default=None, metadata=FLAT)
    ending: Outcome | None = field(default=None, metadata=FLAT)


def run_fanout(ctx: RunContext) -> FanoutResult:
    """S senders x M messages into a room of N; count every delivery."""
    opts, udp = ctx.opts, ctx.udp
    server = ctx.launch()
    proto = server.protocol(udp)
    loop = Loop(server)
    tally = Tally()
    room = fresh_room("fanout")
    result = FanoutResult(clients=opts.clients, senders=opts.senders, messages=opts.messages, size=opts.size,
                          window=opts.udp_window if udp else None)
    try:
        conns = join_clients(loop, proto, tally, opts.clients, room, "f",
                             time.perf_counter() + opts.timeout, burst_for(server, opts))
        if joined(conns) < opts.clients:
            result.ending = Outcome(error=join_failure(conns, loop))
            return result
        receivers = opts.clients if proto.echo else opts.clients - 1
        expected = opts.senders * opts.messages * receivers
        for conn in conns:
            conn.count_only = True
        tally.received = 0
        meter = CpuMeter(server.pid)
        start = time.perf_counter()
        for index, conn in enumerate(conns[:opts.senders]):
            if udp:
                conn.out.own_mark = b"~M~%d~" % index
            loop.start_sending(conn, proto.say(room, chat_text(index, opts.size)),
                               opts.messages, opts.udp_window if udp else 0)
        why = loop.run_until(lambda: tally.received >= expected,
                             start + opts.timeout, idle=opts.idle,
                             progress=lambda: tally.bytes,
                             tick=housekeeping_tick(loop, udp))
        wall = (tally.last_delivery or time.perf_counter()) - start
        result.figures = FanoutFigures(
            expected=expected, received=tally.received, lost=expected - tally.received, wall_s=rnd(wall),
            deliveries_per_s=rnd(tally.received / wall if wall > 0 else None, 0),
            messages_per_s=rnd(opts.senders * opts.messages / wall if wall > 0 else None, 0),
            stopped=why, cpu=meter.result())
        result.ending = outcome(why, server, tally, udp)
        return result
    finally:
        loop.close_all()


SCENARIO = Scenario(
    name="fanout",
    help="""N clients in one room; S senders send M messages of --size
bytes each as fast as the server takes them (TCP flow control).
Reports expected/received/lost deliveries, wall time and
deliveries/s.  lanchat echoes `say` to the sender, IRC and ncat
do not: expected = S*M*N (lanchat) or S*M*(N-1).""",
    key_metric="deliveries_per_s",
    headline=("deliveries_per_s", "wall_s", "server_cpu_pct"),
    columns=(("server", "server"), ("tr", "transport"), ("N", "clients"),
             ("S", "senders"), ("M", "messages"), ("expected", "expected"),
             ("received", "received"), ("lost", "lost"), ("wall s", "wall_s"),
             ("deliv/s", "deliveries_per_s"), ("srv cpu%", "server_cpu_pct"),
             ("bench cpu%", "bench_cpu_pct")),
    run=lambda ctx: run_fanout(ctx),
    sizes=(Size("--clients", int, "members in the room (fanout, latency)", 50, 6),
           Size("--senders", int, "members that send (fanout, latency)", 5, 2),
           Size("--messages", int, "messages per sender (fanout)", 2000, 200),
           Size("--size", int, "text size in bytes (fanout, latency)", 100, 100)),
    udp=True,
)
