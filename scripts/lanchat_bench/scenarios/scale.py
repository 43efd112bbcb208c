"""Scenario scale: C idle members joined to one room; join time, one broadcast, server RSS per member.

With `--joins batch` (the default) lanchat's bots ask for the `batch_joins`
feature in `hello` (docs/protocol.md §13: a burst of joins reaches each member
as one `members` payload); `--joins v1` leaves it out, so every member gets
one `joined` per newcomer as in version 1. Other servers ignore the flag.

Owns: the scale run and its result record.
Must not import: the registry, the runner, the report or the CLI.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..codecs import Codec, LanchatTcp, chat_text, frame, json_bytes
from ..conn import Conn, Tally
from ..loop import Loop
from ..procstat import CpuMeter, CpuShare, rnd, rss_kb
from ..records import FLAT, OPTIONAL, OPTIONAL_ERROR
from .base import RunContext, Scenario, Size, burst_for, exit_error, fresh_room, join_clients, join_failure, joined


@dataclass
class Broadcast:
    """One message from the first member: did it reach every other one, and how fast."""

    bcast_expected: int
    bcast_reached: int
    bcast_all: bool
    bcast_s: float | None
    stopped: str
    closed_by_server: int


JOIN_MODES = ("batch", "v1")


class BatchJoinsTcp(LanchatTcp):
    """lanchat over TCP, with `"features": ["batch_joins"]` in every hello."""

    def login(self, conn: Conn) -> bytes:
        return frame(json_bytes({"type": "hello", "nick": conn.nick, "room": conn.room, "features": ["batch_joins"]}))


def codec_for(proto: Codec, joins: str) -> Codec:
    """The codec the scale bots use: lanchat's TCP codec asks for batched joins unless `joins` is v1."""
    if joins not in JOIN_MODES:
        raise ValueError(f"--joins must be one of {', '.join(JOIN_MODES)}, not {joins!r}")
    if joins == "batch" and type(proto) is LanchatTcp:
        return BatchJoinsTcp()
    return proto


@dataclass
class ScaleResult:
    conns: int
    joins: str
    joined: int
    join_s: float | None
    joins_per_s: float | None
    members: int
    join_bytes: int
    settle_s: float | None
    rss_before_kb: int | None
    rss_after_kb: int | None
    rss_per_conn_kb: float | None
    cpu: CpuShare = field(metadata=FLAT)
    #: Not every member joined (the broadcast still goes to those that did).
    join_error: str | None = field(default=None, metadata=OPTIONAL_ERROR)
    broadcast: Broadcast | None = field(default=None, metadata=FLAT)
    exit_error: str | None = field(default=None, metadata=OPTIONAL_ERROR)
    errors: dict[str, int] | None = field(default=None, metadata=OPTIONAL)


def run_scale(ctx: RunContext) -> ScaleResult:
    """C idle members in one room: join time, one broadcast, RSS per member."""
    opts, conns_wanted = ctx.opts, ctx.conns
    assert conns_wanted is not None
    server = ctx.launch()
    proto = codec_for(server.protocol(False), opts.joins)
    loop = Loop(server)
    tally = Tally()
    room = fresh_room("scale")
    pid = server.pid or 0
    try:
        time.sleep(0.3)
        rss_before = rss_kb(pid)
        meter = CpuMeter(server.pid)
        start = time.perf_counter()
        conns = join_clients(loop, proto, tally, conns_wanted, room, "c",
                             start + opts.scale_timeout, burst_for(server, opts), scan=True)
        join_s = time.perf_counter() - start
        joined_count = joined(conns)
        # Let the burst of "joined" notices drain before measuring memory
        # (connections still in flight may finish joining meanwhile).
        loop.run_until(lambda: False, time.perf_counter() + opts.timeout, idle=0.5, progress=lambda: tally.bytes)
        members = [conn for conn in conns if conn.ready and not conn.closed]
        rss_after = rss_kb(pid)
        result = ScaleResult(
            conns=conns_wanted, joins=opts.joins if type(server.protocol(False)) is LanchatTcp else "-",
            joined=joined_count, join_s=rnd(join_s), joins_per_s=rnd(joined_count / join_s, 0),
            members=len(members), join_bytes=tally.bytes, settle_s=rnd(time.perf_counter() - start),
            rss_before_kb=rss_before, rss_after_kb=rss_after,
            rss_per_conn_kb=rnd((rss_after - rss_before) / len(members), 2)
            if rss_before and rss_after and members else None,
            cpu=meter.result())
        if len(members) < conns_wanted:
            result.join_error = join_failure(conns, loop, conns_wanted)
        if not members:
            return result
        loop.unpark_all()   # the broadcast's arrival times should be exact
        expected = len(members) if proto.echo else len(members) - 1
        tally.received = 0
        sent_at = time.perf_counter()
        loop.transmit(members[0], proto.say(room, chat_text(0, 20)))
        why = loop.run_until(lambda: tally.received >= expected, sent_at + opts.timeout, idle=opts.idle,
                             progress=lambda: tally.bytes)
        result.broadcast = Broadcast(
            bcast_expected=expected, bcast_reached=tally.received, bcast_all=tally.received >= expected > 0,
            bcast_s=rnd(tally.last_delivery - sent_at if tally.received else None),
            stopped=why, closed_by_server=sum(1 for conn in members if conn.closed))
        if result.join_error is None:
            result.exit_error = exit_error(why, server)
        result.errors = dict(tally.errors) or None
        return result
    finally:
        loop.close_all()


SCENARIO = Scenario(
    name="scale",
    help="""for each C in --conns: C idle members joined to one room
(connecting at most --burst at a time); join time, whether one
broadcast reaches all, server RSS per connection (VmRSS before
vs after, from /proc/PID/status).""",
    key_metric="join_s",
    headline=("join_s", "bcast_s", "rss_per_conn_kb"),
    columns=(("server", "server"), ("C", "conns"), ("joins", "joins"), ("joined", "joined"),
             ("join s", "join_s"), ("joins/s", "joins_per_s"),
             ("bcast", "bcast_reached"), ("of", "bcast_expected"), ("bcast s", "bcast_s"),
             ("RSS0 KB", "rss_before_kb"), ("RSS KB", "rss_after_kb"),
             ("KB/conn", "rss_per_conn_kb"), ("srv cpu%", "server_cpu_pct"),
             ("bench cpu%", "bench_cpu_pct")),
    run=lambda ctx: run_scale(ctx),
    sizes=(Size("--conns", str, "comma-separated connection counts (scale)", "1000,2000,5000", "40"),
           Size("--joins", str, "scale: lanchat bots ask for batched join notices (batch) or not (v1)",
                "batch", "batch")),
    per_conns=True,
)
