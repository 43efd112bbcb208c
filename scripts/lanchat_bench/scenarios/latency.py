"""Scenario latency (and latency-udp): open-loop offered loads; one-way latency per delivery.

One phase per rate of --rates and probe of --probe, each against a fresh
server: probe `loop` times every delivery in the one load loop; probe
`threads` times the sampled receivers in threads of their own (threadprobe.py).

Each text carries its *scheduled* send time, so a late generator shows up as
latency instead of hiding it.
Sampled receivers: besides every delivery, the latency is also reported at
SAMPLED receivers spread over the join order of the members that do not send
(the first, the last and evenly between), the way an independent harness that
times a few receivers sees it (`sampled_p50_ms` ... `sampled_max_ms`). Members
that also send are kept apart (`senders_p99_ms`; `quiet_p99_ms` is the other
unsampled members): a server that leaves Nagle's algorithm on holds a small
write to a member whose acknowledgements ride on its own next message
(measured for miniircd: README, Performance). Every tally is part of the "all
deliveries" figures as well.

Owns: the latency run and its result record.
Must not import: the registry, the runner, the report or the CLI.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..codecs import chat_text
from ..conn import Tally
from ..loop import Loop
from ..procstat import CpuMeter, CpuShare, percentile, rnd
from ..records import FLAT, SPREAD, as_row
from ..threadprobe import ThreadProbe
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
    #: Deliveries to members that also send (sampled ones left out), and to the quiet unsampled rest.
    senders_p99_ms: float | None = None
    quiet_p99_ms: float | None = None


@dataclass
class ThreadFigures:
    """The thread probe: the sampled receivers' latency when their threads woke, and at the kernel's stamp."""

    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    arrived_p50_ms: float | None
    arrived_p99_ms: float | None
    received: int
    lost: int
    #: Messages read without a kernel timestamp, left out of the arrived_ figures.
    unstamped: int = 0


@dataclass
class LatencyResult:
    clients: int
    senders: int
    rate: float
    duration: float
    size: int
    #: The loop probe at the first rate (the key metric), as before there were several rates.
    figures: LatencyFigures | None = field(default=None, metadata=FLAT)
    #: Every rate and probe: `p99_ms_2000`, `sampled_p99_ms_2000`, `thr_p99_ms_2000`, ... (see `phase_keys`).
    phases: dict[str, Any] = field(default_factory=dict, metadata=SPREAD)
    ending: Outcome | None = field(default=None, metadata=FLAT)


SAMPLED = 5  # receivers timed on their own, spread over the join order
PROBES = ("loop", "threads")


def sampled_indices(count: int, wanted: int = SAMPLED) -> list[int]:
    """`wanted` indices spread evenly over 0 .. count-1, the first and the last included."""
    if count <= wanted:
        return list(range(count))
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def sampled_members(count: int, senders: int) -> list[int]:
    """The sampled receivers among `count` members of which the first `senders` send: quiet ones only
    (a member that also sends is a receiver of another kind, see the module docstring)."""
    if senders >= count:
        return sampled_indices(count)
    return [senders + index for index in sampled_indices(count - senders)]


def ms(value: float | None) -> float | None:
    return rnd(value * 1000 if value is not None else None, 3)


def parse_rates(text: str) -> list[float]:
    """`--rates 500,2000` -> [500.0, 2000.0]; every rate positive, none twice."""
    try:
        rates = [float(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ValueError("--rates takes messages/s separated by commas, e.g. 500,2000") from None
    if not rates or any(rate <= 0 for rate in rates):
        raise ValueError("--rates must be positive")
    return list(dict.fromkeys(rates))


def parse_probes(text: str) -> list[str]:
    """`--probe loop,threads` -> ["loop", "threads"]: which latency probes run (see PROBES)."""
    probes = list(dict.fromkeys(part.strip() for part in str(text).split(",") if part.strip()))
    unknown = [probe for probe in probes if probe not in PROBES]
    if not probes or unknown:
        raise ValueError(f"--probe takes {' and/or '.join(PROBES)} separated by commas, not {text!r}")
    return probes


def rate_tag(rate: float) -> str:
    """The suffix of a rate's keys: 500 -> "500", 1500.5 -> "1500.5"."""
    return f"{rate:g}"


def phases(rates: Sequence[float], probes: Sequence[str], udp: bool) -> list[tuple[float, str]]:
    """(rate, probe) in the order they run: per rate every probe; over UDP the loop probe only."""
    wanted = [probe for probe in probes if not (udp and probe == "threads")] or ["loop"]
    return [(rate, probe) for rate in rates for probe in wanted]


def phase_keys(rate: float, figures: LatencyFigures | ThreadFigures) -> dict[str, Any]:
    """One phase's keys in the row: the loop probe's plain, the thread probe's with `thr_`, both `_RATE`."""
    tag = rate_tag(rate)
    if isinstance(figures, ThreadFigures):
        return {f"thr_{name}_{tag}": value for name, value in as_row(figures).items()}
    names = ("lost", "p50_ms", "p99_ms", "max_ms", "sampled_p50_ms", "sampled_p99_ms", "senders_p99_ms",
             "quiet_p99_ms", "server_cpu_pct")
    row = as_row(figures)
    return {f"{name}_{tag}": row.get(name) for name in names}


def run_latency(ctx: RunContext) -> LatencyResult:
    """Every rate of --rates with every probe of --probe, each phase against a fresh server."""
    opts = ctx.opts
    rates = list(opts.rates)
    result = LatencyResult(clients=opts.clients, senders=min(opts.senders, opts.clients), rate=rates[0],
                           duration=opts.duration, size=opts.size)
    for rate, probe in phases(rates, opts.probe, ctx.udp):
        figures, ending = run_phase(ctx, rate, probe)
        if figures is not None:
            result.phases.update(phase_keys(rate, figures))
            if isinstance(figures, LatencyFigures) and result.figures is None and rate == rates[0]:
                result.figures = figures
        if ending is not None and (result.ending is None or ending.error):
            result.ending = ending
        if ending is not None and ending.error:
            break
    return result


def run_phase(ctx: RunContext, rate: float, probe: str
              ) -> tuple[LatencyFigures | ThreadFigures | None, Outcome | None]:
    """Open-loop load of `rate` messages/s for --duration s; one-way latency per delivery."""
    opts, udp = ctx.opts, ctx.udp
    server = ctx.launch()
    proto = server.protocol(udp)
    loop = Loop(server)
    tally = Tally(want_latency=True)
    room = fresh_room("latency")
    senders_count = min(opts.senders, opts.clients)
    probe_threads: ThreadProbe | None = None
    try:
        conns = join_clients(loop, proto, tally, opts.clients, room, "l",
                             time.perf_counter() + opts.timeout, burst_for(server, opts))
        if joined(conns) < opts.clients:
            return None, Outcome(error=join_failure(conns, loop))
        receivers = opts.clients if proto.echo else opts.clients - 1
        sampled_tally = Tally(want_latency=True)
        senders = conns[:senders_count]
        sampled_conns = [conns[index] for index in sampled_members(len(conns), senders_count)]
        senders_tally = Tally(want_latency=True)
        for conn in senders:
            conn.tally = senders_tally
        for conn in sampled_conns:
            conn.tally = sampled_tally
        if probe == "threads":
            for conn in sampled_conns:
                loop.stop_reading(conn)
            probe_threads = ThreadProbe(sampled_conns)
            probe_threads.start()
        threads = probe_threads

        def received() -> int:
            return (tally.received + sampled_tally.received + senders_tally.received
                    + (threads.received() if threads else 0))
        total = max(1, int(rate * opts.duration))
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
            progress=lambda: (tally.bytes + sampled_tally.bytes + senders_tally.bytes + state["sent"]
                              + (threads.received() if threads else 0)),
            tick=tick)
        cpu = meter.result()
        if threads is not None:
            threads.stop()
            for error in threads.errors():
                tally.errors[error] += 1
        for other in (sampled_tally, senders_tally):
            tally.errors.update(other.errors)
            tally.gaps += other.gaps
            tally.reordered += other.reordered
        sent = int(state["sent"])
        ending = outcome(why, server, tally, udp)
        if threads is not None:
            woken, arrived = threads.woken(), threads.arrived()
            expected = sent * len([c for c in sampled_conns if proto.echo or c not in senders])
            return ThreadFigures(
                p50_ms=ms(percentile(woken, 0.50)), p99_ms=ms(percentile(woken, 0.99)),
                max_ms=ms(woken[-1] if woken else None), arrived_p50_ms=ms(percentile(arrived, 0.50)),
                arrived_p99_ms=ms(percentile(arrived, 0.99)), received=threads.received(),
                lost=expected - threads.received(), unstamped=threads.unstamped()), ending
        expected = sent * receivers
        sampled = sorted(sampled_tally.latencies or [])
        quiet = sorted(tally.latencies or [])
        sending = sorted(senders_tally.latencies or [])
        ordered = sorted(quiet + sampled + sending)
        send_wall = state["last_send"] - start
        return LatencyFigures(
            sent=sent, offered_rate=rnd(sent / send_wall if send_wall > 0 else None, 0),
            expected=expected, received=received(), lost=expected - received(),
            p50_ms=ms(percentile(ordered, 0.50)), p90_ms=ms(percentile(ordered, 0.90)),
            p99_ms=ms(percentile(ordered, 0.99)), max_ms=ms(ordered[-1] if ordered else None),
            stopped=why, cpu=cpu, sampled=len(sampled_conns),
            sampled_p50_ms=ms(percentile(sampled, 0.50)), sampled_p99_ms=ms(percentile(sampled, 0.99)),
            sampled_max_ms=ms(sampled[-1] if sampled else None), senders_p99_ms=ms(percentile(sending, 0.99)),
            quiet_p99_ms=ms(percentile(quiet, 0.99))), ending
    finally:
        if probe_threads is not None:
            probe_threads.stop()
        loop.close_all()
        server.stop()


def _columns() -> tuple[tuple[str, str], ...]:
    """The table: per default rate the loop probe's p50/p99 over all deliveries and at the sampled
    receivers, and the thread probe's p50/p99 (other --rates are in --json)."""
    columns: list[tuple[str, str]] = [("server", "server"), ("tr", "transport"), ("N", "clients")]
    for tag in map(rate_tag, DEFAULT_RATES):
        columns += [(f"p50 {tag}", f"p50_ms_{tag}"), (f"p99 {tag}", f"p99_ms_{tag}"),
                    (f"p50@5 {tag}", f"sampled_p50_ms_{tag}"), (f"p99@5 {tag}", f"sampled_p99_ms_{tag}"),
                    (f"thr p50 {tag}", f"thr_p50_ms_{tag}"), (f"thr p99 {tag}", f"thr_p99_ms_{tag}")]
    return (*columns, ("lost", "lost"), ("srv cpu%", "server_cpu_pct"))


DEFAULT_RATES = (500.0, 2000.0)


SCENARIO = Scenario(
    name="latency",
    help="""N clients; for each rate of --rates, an open-loop offered load of
RATE messages/s for --duration s, sent round-robin by S senders,
each phase against a fresh server.  Every text carries its
scheduled send time.  Probe `loop` (one epoll loop reads every
member): p50/p90/p99/max one-way latency over all deliveries,
and p50/p99/max at 5 receivers spread over the join order.
Probe `threads`: those 5 receivers read by a thread each with a
blocking socket (as an independent harness does), the others by
the loop; `thr_` keys, `thr_arrived_` at the kernel's receive
timestamp.  Keys end in _RATE (p99_ms_2000); p99_ms is the loop
probe at the first rate.  ms columns: p50/p99 at RATE.""",
    key_metric="p99_ms",
    headline=tuple(f"{name}_{rate_tag(rate)}" for rate in DEFAULT_RATES
                   for name in ("p99_ms", "sampled_p99_ms", "thr_p99_ms")) + ("server_cpu_pct",),
    columns=_columns(),
    run=lambda ctx: run_latency(ctx),
    sizes=(Size("--rates", str, "offered messages/s, comma-separated (latency)", "500,2000", "500,2000"),
           Size("--probe", str, "latency probes: loop and/or threads (latency)", "loop,threads", "loop,threads"),
           Size("--duration", float, "seconds of load (latency)", 5.0, 1.0)),
    udp=True,
)
