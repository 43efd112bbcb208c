"""Scenario cluster: one node, one node with the Redis backplane, and two nodes, measured in one run.

The run starts its own redis-server on a free loopback port (persistence
off), empties it before each server it starts, and stops it by PID at the
end. For each configuration, on one server: the fanout run with
--cluster-messages per sender (ten times fanout's --messages by default, so
that each CPU figure is seconds, not tenths read in 10 ms ticks):
deliveries/s, and the CPU the server's processes and Redis used over it,
per delivery; and the latency run at the first of --rates (p50/p99), in two
alternating rounds of the three (their mean is reported). Then scale: --conns N members on
one node against 2N over two nodes (join time, RSS per connection, one
broadcast's reach time). Not part of `all` (it takes minutes and needs
redis-server); docs/scale-out.md says what the figures mean.

Owns: the cluster run, its redis-server, and its result record.
Must not import: the registry, the runner, the report or the CLI.
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from ..launchers import ServerError, ServerProcess, free_port
from ..procstat import cpu_seconds, rnd
from ..records import OPTIONAL, OPTIONAL_ERROR, as_row
from .base import RunContext, Scenario, Size
from .fanout import run_fanout
from .latency import run_latency
from .scale import run_scale

#: (label, nodes, with the backplane) in the order they run.
CONFIGS = (("1 node", 1, False), ("1 node+bp", 1, True), ("2 nodes", 2, True))
#: Rounds of the three configurations, alternating (1, bp, 2, 1, bp, 2): a noisy moment hits one round of
#: each rather than both of one; the figures are the rounds' mean (each round's are kept in `rounds`).
ROUNDS = 2


class RedisServer:
    """A redis-server of this run: loopback, a free port, no persistence; stopped by PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"redis-server exited with {self.proc.returncode}")
            try:
                if self.command(b"PING").startswith(b"+PONG"):
                    return
            except OSError:
                time.sleep(0.02)
        raise ServerError("redis-server did not answer PING")

    def command(self, line: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2.0) as link:
            link.sendall(line + b"\r\n")
            return link.recv(64)

    def flush(self) -> None:
        """Forget everything a previous server left (stream, nicks, presence)."""
        if not self.command(b"FLUSHALL").startswith(b"+OK"):
            raise ServerError("redis-server did not empty itself")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class ConfigFigures:
    """One configuration: fanout and latency on one server."""

    config: str
    nodes: int
    backplane: bool
    deliveries: int | None = None
    deliveries_per_s: float | None = None
    server_cpu_s: float | None = None
    redis_cpu_s: float | None = None
    #: (server + Redis CPU seconds over the fanout run) / deliveries, in microseconds.
    cpu_us_per_delivery: float | None = None
    latency_sent: int | None = None
    latency_lost: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    error: str | None = field(default=None, metadata=OPTIONAL)
    rounds: list[dict[str, Any]] = field(default_factory=list)


MEANS = ("deliveries_per_s", "server_cpu_s", "redis_cpu_s", "cpu_us_per_delivery", "p50_ms", "p99_ms")


def mean_of(rounds: list[ConfigFigures]) -> ConfigFigures:
    """One configuration's rounds as one: the mean of each figure, sums of counts, every error."""
    first = rounds[0]
    merged = ConfigFigures(config=first.config, nodes=first.nodes, backplane=first.backplane,
                           rounds=[{k: v for k, v in asdict(r).items() if k != "rounds"} for r in rounds])
    for name in MEANS:
        values = [getattr(r, name) for r in rounds]
        if all(value is not None for value in values):
            setattr(merged, name, rnd(sum(values) / len(values), 3))
    for name in ("deliveries", "latency_sent", "latency_lost"):
        values = [getattr(r, name) for r in rounds]
        setattr(merged, name, sum(values) if all(value is not None for value in values) else None)
    merged.error = "; ".join(r.error for r in rounds if r.error) or None
    return merged


@dataclass
class ScaleFigures:
    """C members on one configuration: joined, how fast, memory, one broadcast."""

    config: str
    conns: int
    joined: int | None = None
    join_s: float | None = None
    rss_per_conn_kb: float | None = None
    bcast_reached: int | None = None
    bcast_expected: int | None = None
    bcast_s: float | None = None
    #: Bytes the members received while joining (the `joined`/`members` notices and welcomes).
    join_bytes: int | None = None
    #: join_s + bcast_s: all joined and reached.
    total_s: float | None = None
    error: str | None = field(default=None, metadata=OPTIONAL)


@dataclass
class ClusterResult:
    conns: int
    deliv_1: float | None = None
    deliv_bp: float | None = None
    deliv_2: float | None = None
    cpu_us_1: float | None = None
    cpu_us_bp: float | None = None
    cpu_us_2: float | None = None
    #: CPU per delivery against one node (target: at most 1.3).
    cpu_x_bp: float | None = None
    cpu_x_2: float | None = None
    p99_1: float | None = None
    p99_bp: float | None = None
    p99_2: float | None = None
    #: What the backplane adds at p99, ms (target: under 1).
    added_p99_ms: float | None = None
    scale_1_s: float | None = None
    scale_2_s: float | None = None
    configs: list[dict[str, Any]] = field(default_factory=list)
    scale: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = field(default=None, metadata=OPTIONAL_ERROR)


@contextmanager
def configured(opts: argparse.Namespace, nodes: int, backplane: str | None) -> Iterator[None]:
    """`opts` as the launcher reads them for one configuration (--nodes, --backplane), put back afterwards."""
    saved = (opts.nodes, opts.backplane)
    opts.nodes, opts.backplane = nodes, backplane
    try:
        yield
    finally:
        opts.nodes, opts.backplane = saved


def _cpu(pid: int | None) -> float:
    return (cpu_seconds(pid) or 0.0) if pid else 0.0


def _say(text: str) -> None:
    print(f"[bench] cluster: {text}", file=sys.stderr, flush=True)


def measure_config(launch: Callable[[], ServerProcess], opts: argparse.Namespace, redis: RedisServer,
                   label: str, nodes: int, backplane: bool) -> ConfigFigures:
    """Fanout, then latency, on one fresh server of this configuration."""
    figures = ConfigFigures(config=label, nodes=nodes, backplane=backplane)
    redis.flush()
    with configured(opts, nodes, redis.url if backplane else None):
        server = launch()
    try:
        # --cluster-messages per sender (not fanout's --messages): seconds of CPU, not tenths read in 10 ms ticks.
        longer = argparse.Namespace(**{**vars(opts), "messages": getattr(opts, "cluster_messages", opts.messages)})
        on_it = RunContext(launch=lambda: server, opts=longer)
        server_before, redis_before = _cpu(server.pid), _cpu(redis.pid) if backplane else 0.0
        fan = as_row(run_fanout(on_it))
        server_cpu = _cpu(server.pid) - server_before
        redis_cpu = (_cpu(redis.pid) - redis_before) if backplane else 0.0
        received = fan.get("received")
        figures.deliveries, figures.deliveries_per_s = received, fan.get("deliveries_per_s")
        figures.server_cpu_s, figures.redis_cpu_s = rnd(server_cpu), rnd(redis_cpu)
        if received:
            figures.cpu_us_per_delivery = rnd((server_cpu + redis_cpu) / received * 1e6, 2)
        # One latency phase on this server (latency stops the server after each phase): the first of
        # --rates, timed by the loop probe.
        one_phase = argparse.Namespace(**{**vars(opts), "rates": list(opts.rates)[:1], "probe": ["loop"]})
        lat = as_row(run_latency(RunContext(launch=lambda: server, opts=one_phase)))
        figures.latency_sent, figures.latency_lost = lat.get("sent"), lat.get("lost")
        figures.p50_ms, figures.p99_ms = lat.get("p50_ms"), lat.get("p99_ms")
        errors = [row["error"] for row in (fan, lat) if row.get("error")]
        if fan.get("lost") or lat.get("lost"):
            errors.append(f"lost deliveries: fanout {fan.get('lost')}, latency {lat.get('lost')}")
        figures.error = "; ".join(errors) or None
    finally:
        server.stop()
    _say(f"{label}: {figures.deliveries_per_s} deliveries/s, {figures.cpu_us_per_delivery} us CPU/delivery "
         f"(redis {figures.redis_cpu_s} s of {rnd((figures.server_cpu_s or 0) + (figures.redis_cpu_s or 0))} s), "
         f"p50 {figures.p50_ms} ms, p99 {figures.p99_ms} ms")
    return figures


def measure_scale(launch: Callable[[], ServerProcess], opts: argparse.Namespace, redis: RedisServer,
                  label: str, nodes: int, conns: int) -> ScaleFigures:
    """`conns` members over `nodes` nodes (with the backplane when more than one)."""
    redis.flush()
    with configured(opts, nodes, redis.url if nodes > 1 else None):
        server = launch()
    try:
        row = as_row(run_scale(RunContext(launch=lambda: server, opts=opts, conns=conns)))
    finally:
        server.stop()
    figures = ScaleFigures(config=label, conns=conns, joined=row.get("joined"), join_s=row.get("join_s"),
                           rss_per_conn_kb=row.get("rss_per_conn_kb"), bcast_reached=row.get("bcast_reached"),
                           bcast_expected=row.get("bcast_expected"), bcast_s=row.get("bcast_s"),
                           join_bytes=row.get("join_bytes"), error=row.get("error"))
    if figures.join_s is not None and figures.bcast_s is not None and row.get("bcast_all"):
        figures.total_s = rnd(figures.join_s + figures.bcast_s)
    _say(f"scale {label}: {figures.joined} of {conns} joined in {figures.join_s} s, "
         f"{figures.rss_per_conn_kb} KB/conn, {figures.join_bytes} bytes to members, "
         f"broadcast reached {figures.bcast_reached} of {figures.bcast_expected} in {figures.bcast_s} s")
    return figures


def _ratio(a: float | None, b: float | None) -> float | None:
    return rnd(a / b, 2) if a is not None and b else None


def run_cluster(ctx: RunContext) -> ClusterResult:
    """The three configurations, then scale N on one node against 2N on two (see the module docstring)."""
    opts = ctx.opts
    conns = ctx.conns or max(opts.conns)
    result = ClusterResult(conns=conns)
    redis = RedisServer()
    try:
        redis.start()
        measured = [measure_config(ctx.launch, opts, redis, *config) for _ in range(ROUNDS) for config in CONFIGS]
        configs = [mean_of(measured[index::len(CONFIGS)]) for index in range(len(CONFIGS))]
        one, with_bp, two = configs
        result.configs = [asdict(figures) for figures in configs]
        result.deliv_1, result.deliv_bp, result.deliv_2 = (c.deliveries_per_s for c in configs)
        result.cpu_us_1, result.cpu_us_bp, result.cpu_us_2 = (c.cpu_us_per_delivery for c in configs)
        result.cpu_x_bp = _ratio(with_bp.cpu_us_per_delivery, one.cpu_us_per_delivery)
        result.cpu_x_2 = _ratio(two.cpu_us_per_delivery, one.cpu_us_per_delivery)
        result.p99_1, result.p99_bp, result.p99_2 = (c.p99_ms for c in configs)
        if one.p99_ms is not None and with_bp.p99_ms is not None:
            result.added_p99_ms = rnd(with_bp.p99_ms - one.p99_ms)
        scale = [measure_scale(ctx.launch, opts, redis, "1 node", 1, conns),
                 measure_scale(ctx.launch, opts, redis, "2 nodes", 2, 2 * conns)]
        result.scale = [asdict(figures) for figures in scale]
        result.scale_1_s, result.scale_2_s = (s.total_s for s in scale)
        errors = [f"{c.config}: {c.error}" for c in configs if c.error]
        errors += [f"scale {s.config}: {s.error}" for s in scale if s.error]
        result.error = "; ".join(errors) or None
    finally:
        redis.stop()
    return result


SCENARIO = Scenario(
    name="cluster",
    help="""one node, one node with the Redis backplane, two nodes
(chatsrv --workers 2), in two alternating rounds, with a
redis-server of its own: fanout (--cluster-messages per
sender) deliveries/s and server+Redis CPU per delivery (us), latency p50/p99 at the first of --rates; then --conns
N members on one node against 2N on two (join + broadcast
reach s).  cpu x = CPU per delivery / one node's.  Give one
--conns.  Not part of `all`.""",
    key_metric="cpu_x_bp",
    headline=("cpu_x_bp", "added_p99_ms", "scale_2_s"),
    columns=(("server", "server"), ("N", "conns"), ("deliv/s 1", "deliv_1"), ("bp", "deliv_bp"),
             ("2", "deliv_2"), ("us/deliv 1", "cpu_us_1"), ("bp", "cpu_us_bp"), ("2", "cpu_us_2"),
             ("cpu x bp", "cpu_x_bp"), ("x 2", "cpu_x_2"), ("p99 ms 1", "p99_1"), ("bp", "p99_bp"),
             ("2", "p99_2"), ("N on 1 s", "scale_1_s"), ("2N on 2 s", "scale_2_s")),
    run=lambda ctx: run_cluster(ctx),
    sizes=(Size("--cluster-messages", int, "messages per sender in each fanout run (cluster)", 20000, 200),),
    per_conns=True,
    lanchat_only=True,
    in_all=False,
)
