"""Scenario store: what keeping history in a SQLite file costs fan-out, in alternating pairs.

Runs the fanout scenario (its sizes) --store-pairs times against a server
with `--db :memory:` and, right after, against one with a fresh SQLite file
(what `chatsrv` uses by default), and reports file / memory deliveries/s per
pair and their median. Pairs back to back, so that a noisy moment of a
shared machine hits both halves of one pair rather than all runs of one kind.
lanchat alone (the other servers keep no history).
Owns: the store run and its result record.
Must not import: the registry, the runner, the report or the CLI.
"""
from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..launchers import ServerProcess
from ..procstat import rnd
from ..records import OPTIONAL
from .base import RunContext, Scenario, Size
from .fanout import run_fanout


@dataclass
class StoreResult:
    pairs: int
    clients: int
    senders: int
    messages: int
    memory_per_s: list[float | None] = field(default_factory=list)
    file_per_s: list[float | None] = field(default_factory=list)
    ratio_by_pair: list[float | None] = field(default_factory=list)
    median_ratio: float | None = None
    median_memory_per_s: float | None = None
    median_file_per_s: float | None = None
    error: str | None = field(default=None, metadata=OPTIONAL)


@contextmanager
def _database(ctx: RunContext, db: str) -> Iterator[RunContext]:
    """A context whose launch() starts the server with `--db db`; its servers stop when the block ends."""
    opts = ctx.opts
    started: list[ServerProcess] = []

    def launch() -> ServerProcess:
        saved = opts.db
        opts.db = db  # the launcher reads it while starting the server
        try:
            server = ctx.launch()
        finally:
            opts.db = saved
        started.append(server)
        return server
    try:
        yield RunContext(launch=launch, opts=opts)
    finally:
        for server in started:
            server.stop()


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def run_store(ctx: RunContext) -> StoreResult:
    """--store-pairs pairs of fanout runs: :memory:, then a fresh SQLite file."""
    opts = ctx.opts
    result = StoreResult(pairs=opts.store_pairs, clients=opts.clients, senders=opts.senders, messages=opts.messages)
    with tempfile.TemporaryDirectory(prefix="lanchat-store-") as folder:
        for pair in range(opts.store_pairs):
            rates: list[float | None] = []
            for db in (":memory:", str(Path(folder) / f"pair{pair}.db")):
                with _database(ctx, db) as run:
                    fanout = run_fanout(run)
                figures = fanout.figures
                error = fanout.ending.error if fanout.ending else None
                if figures is not None and figures.lost:
                    error = error or f"{figures.lost} deliveries lost with --db {db}"
                if error and result.error is None:
                    result.error = f"pair {pair + 1}: {error}"
                rates.append(figures.deliveries_per_s if figures and not error else None)
            memory, file = rates
            result.memory_per_s.append(memory)
            result.file_per_s.append(file)
            result.ratio_by_pair.append(rnd(file / memory, 3) if memory and file else None)
    result.median_ratio = rnd(_median(result.ratio_by_pair), 3)
    result.median_memory_per_s = rnd(_median(result.memory_per_s), 0)
    result.median_file_per_s = rnd(_median(result.file_per_s), 0)
    return result


SCENARIO = Scenario(
    name="store",
    help="""fanout (its sizes) with --db :memory: and then with a fresh
SQLite file (chatsrv's default), --store-pairs pairs back to
back; reports file/memory deliveries/s per pair and the median
(lanchat only).""",
    key_metric="median_ratio",
    headline=("median_ratio",),
    columns=(("server", "server"), ("N", "clients"), ("S", "senders"), ("M", "messages"),
             ("pairs", "pairs"), ("memory deliv/s", "median_memory_per_s"),
             ("file deliv/s", "median_file_per_s"), ("file/memory by pair", "ratio_by_pair"),
             ("median", "median_ratio")),
    run=lambda ctx: run_store(ctx),
    sizes=(Size("--store-pairs", int, "alternating :memory:/file fanout pairs (store)", 5, 1),),
    lanchat_only=True,
)
