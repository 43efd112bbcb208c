"""The benchmark's result records and report (scripts/lanchat_bench): the JSON rows keep their keys and order."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from lanchat_bench.cli import parse_args, sizes  # scripts/ is not on the default path
from lanchat_bench.procstat import CpuShare
from lanchat_bench.records import EMPTY, FLAT, OPTIONAL, OPTIONAL_ERROR, as_row
from lanchat_bench.report import ratios, report, summarize
from lanchat_bench.scenarios import REGISTRY
from lanchat_bench.scenarios.base import Outcome
from lanchat_bench.scenarios.fanout import FanoutFigures, FanoutResult
from lanchat_bench.scenarios.slow import SlowResult


@dataclass
class Inner:
    a: int
    b: int | None


@dataclass
class Outer:
    first: int
    inner: Inner | None = field(default=None, metadata=FLAT)
    early_error: str | None = field(default=None, metadata=OPTIONAL_ERROR)
    plain: str | None = None
    note: str | None = field(default=None, metadata=OPTIONAL)
    sub: Inner | None = field(default=None, metadata=EMPTY)


def test_as_row_follows_the_field_markers() -> None:
    """FLAT merges in place, OPTIONAL leaves unset keys out, EMPTY prints {}, a plain None stays null."""
    assert as_row(Outer(1)) == {"first": 1, "plain": None, "sub": {}}
    row = as_row(Outer(1, Inner(2, None), early_error="x", note="n", sub=Inner(3, 4)))
    assert list(row.items()) == [("first", 1), ("a", 2), ("b", None), ("error", "x"), ("plain", None),
                                 ("note", "n"), ("sub", {"a": 3, "b": 4})]
    with pytest.raises(TypeError):
        as_row({"first": 1})


def test_fanout_rows_keep_the_keys_and_order_of_the_json_output() -> None:
    """A failed join has its settings and the error only; a measured run has every figure in report order."""
    settings = {"clients": 6, "senders": 2, "messages": 200, "size": 100, "window": None}
    failed = FanoutResult(**settings, ending=Outcome(error="only 5 of 6 joined"))  # type: ignore[arg-type]
    assert as_row(failed) == {**settings, "error": "only 5 of 6 joined"}
    figures = FanoutFigures(expected=2400, received=2400, lost=0, wall_s=0.1, deliveries_per_s=24000.0,
                            messages_per_s=4000.0, stopped="done", cpu=CpuShare(50.0, 40.0))
    udp = FanoutResult(**settings, figures=figures, ending=Outcome(seq_gaps=0, reordered=1))  # type: ignore[arg-type]
    assert list(as_row(udp)) == [
        "clients", "senders", "messages", "size", "window", "expected", "received", "lost", "wall_s",
        "deliveries_per_s", "messages_per_s", "stopped", "server_cpu_pct", "bench_cpu_pct", "seq_gaps", "reordered"]


def test_a_slow_round_that_never_started_prints_empty_phases() -> None:
    row = as_row(SlowResult(clients=4, messages=10, size=1024, error="lanchat did not come up"))
    assert row["base"] == row["with_stuck"] == row["base_after"] == {}
    assert row["error"] == "lanchat did not come up" and row["rate_ratio"] is None and "others_left" not in row


def test_report_prints_each_scenario_table_errors_ratios_and_rounds() -> None:
    rows = [{"scenario": "fanout", "transport": "tcp", "server": server, "round": round_, "clients": 6,
             "deliveries_per_s": rate, "wall_s": 1.0, "server_cpu_pct": 50.0}
            for round_, (server, rate) in enumerate([("lanchat", 2000.0), ("ncat", 1000.0)] * 2, 1)]
    rows.append({"scenario": "slow", "transport": "tcp", "server": "lanchat", "round": 1, "error": "boom"})
    summary = summarize(rows)
    text = report(summary, ratios(summary))
    lines = text.splitlines()
    assert lines[0] == "== fanout ==" and lines[1].split()[:3] == ["server", "tr", "N"]
    assert any(line.split()[:3] == ["lanchat", "tcp", "6"] for line in lines)
    assert any(line.split()[:2] == ["ncat", "2.0"] for line in lines)  # lanchat / ncat deliveries/s
    assert "== slow ==" in lines and "  ! lanchat tcp: boom" in lines


def test_help_explains_every_registered_scenario_and_size(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    shown = capsys.readouterr().out
    for name, scenario in REGISTRY.items():
        assert f"  {name} " in shown and scenario.help.splitlines()[0] in shown
        assert f"{name}-udp" in shown or not scenario.udp
    for size in sizes():
        assert size.flag in shown
    assert sorted(size.dest for size in sizes()) == sorted(
        ["clients", "senders", "messages", "size", "rates", "probe", "duration", "conns", "joins",
         "slow_clients", "slow_messages", "slow_size", "abuse_clients", "abuse_rate", "abuse_duration", "store_pairs",
         "cluster_messages"])
