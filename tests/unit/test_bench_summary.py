"""The benchmark's pure parts (scripts/lanchat_bench): the order of rounds, the median summary and the ratios by
round."""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from lanchat_bench import runner  # scripts/ is not on the default path
from lanchat_bench.cli import parse_args
from lanchat_bench.procstat import CpuShare
from lanchat_bench.records import as_row
from lanchat_bench.report import ratios, round_ratios, summarize
from lanchat_bench.scenarios import latency, slow


def row(scenario: str, server: str, round_: int, **figures: object) -> dict[str, object]:
    return {"scenario": scenario, "transport": "tcp", "server": server, "round": round_, **figures}


def test_rounds_interleave_servers_and_scale_runs_once() -> None:
    """Each round runs every server once before the next round starts; scale is never repeated."""
    opts = parse_args(["fanout", "scale", "--vs", "--repeat", "2", "--conns", "10"])
    assert runner.plan(opts) == [
        ("fanout", "lanchat", None, 1),
        ("fanout", "miniircd", None, 1),
        ("fanout", "ncat", None, 1),
        ("fanout", "lanchat", None, 2),
        ("fanout", "miniircd", None, 2),
        ("fanout", "ncat", None, 2),
        ("scale", "lanchat", 10, 1),
        ("scale", "miniircd", 10, 1),
        ("scale", "ncat", 10, 1),
    ]
    assert parse_args(["fanout"]).repeat == 3
    assert parse_args(["fanout", "--tiny"]).repeat == 1


def test_summary_keeps_the_median_round_whole_and_lists_every_round() -> None:
    """Of three rounds the median one is shown with its own figures; the key metric of all is kept in order."""
    rows = [
        row("fanout", "lanchat", 1, deliveries_per_s=300.0, wall_s=3.0),
        row("fanout", "lanchat", 2, deliveries_per_s=100.0, wall_s=9.0),
        row("fanout", "lanchat", 3, deliveries_per_s=200.0, wall_s=5.0),
    ]
    (summary,) = summarize(rows)
    assert (summary["deliveries_per_s"], summary["wall_s"], summary["round"]) == (200.0, 5.0, 3)
    assert summary["runs"] == 3
    assert summary["rounds"] == {"deliveries_per_s": [300.0, 100.0, 200.0]}


def test_summary_reports_an_error_of_any_round() -> None:
    """A failed round cannot hide behind the median of the others."""
    rows = [
        row("slow", "lanchat", 1, rate_ratio=0.97),
        row("slow", "lanchat", 2, rate_ratio=0.99, error="server exited"),
        row("slow", "lanchat", 3, rate_ratio=0.98),
    ]
    (summary,) = summarize(rows)
    assert summary["rate_ratio"] == 0.98
    assert summary["error"] == "round 2 of 3: server exited"


def test_ratios_by_round_pair_servers_of_the_same_round() -> None:
    """lanchat / other is taken within each round, and the summary ratios use the median rows."""
    rows = [
        row("fanout", "lanchat", 1, deliveries_per_s=120.0),
        row("fanout", "miniircd", 1, deliveries_per_s=100.0),
        row("fanout", "lanchat", 2, deliveries_per_s=90.0),
        row("fanout", "miniircd", 2, deliveries_per_s=60.0),
        row("fanout", "lanchat", 3, deliveries_per_s=150.0),
        row("fanout", "miniircd", 3, deliveries_per_s=200.0),
    ]
    (by_round,) = round_ratios(rows)
    assert (by_round["other"], by_round["metric"], by_round["by_round"]) == (
        "miniircd",
        "deliveries_per_s",
        [1.2, 1.5, 0.75],
    )
    (compared,) = ratios(summarize(rows))
    assert compared["ratios"]["deliveries_per_s"] == 1.2  # median 120 / median 100


def measured(rate: float, lost: int, stuck_left_reason: str | None = None) -> slow.SlowPhase:
    """A slow phase that delivered at `rate` and lost `lost` (the stuck phase says what became of the stuck one)."""
    figures = slow.PhaseFigures(
        expected=0, received=0, lost=lost, wall_s=None, rate=rate, stopped="done", cpu=CpuShare(None, None)
    )
    fate = slow.StuckFate(stuck_left_reason, None, None) if stuck_left_reason else None
    return slow.SlowPhase(figures=figures, stuck=fate)


def test_slow_measures_the_baseline_before_and_after_the_stuck_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    """A-B-A: the baseline rate is the mean of the phases around the stuck one, and losses of both count."""
    phases = iter(
        [
            measured(rate=100.0, lost=0),
            measured(rate=90.0, lost=0, stuck_left_reason="slow"),
            measured(rate=80.0, lost=2),
        ]
    )
    order: list[bool] = []

    def phase(server: object, opts: object, with_stuck: bool) -> slow.SlowPhase:
        order.append(with_stuck)
        return next(phases)

    monkeypatch.setattr(slow, "slow_phase", phase)
    result = as_row(slow.run_slow(lambda: None, parse_args(["slow"])))  # type: ignore[arg-type]
    assert order == [False, True, False]
    assert (result["base_rate"], result["stuck_rate"], result["rate_ratio"]) == (90.0, 90.0, 1.0)
    assert result["base_lost"] == 2 and result["stuck_left_reason"] == "slow"


def test_the_garbage_collector_is_off_while_a_scenario_measures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A full collection would pause the load loop for milliseconds, which the latency tail would count."""
    seen: list[bool] = []

    class Server:
        pid = None

        def start(self) -> None: ...

        def stop(self) -> None: ...

    @dataclass
    class Measured:
        p99_ms: float

    monkeypatch.setattr(runner, "make_server", lambda *args: Server())
    monkeypatch.setattr(latency, "run_latency", lambda ctx: seen.append(gc.isenabled()) or Measured(p99_ms=1.0))
    row = runner.run_one("latency", "lanchat", parse_args(["latency"]), tmp_path)
    assert seen == [False] and gc.isenabled() and row["p99_ms"] == 1.0
