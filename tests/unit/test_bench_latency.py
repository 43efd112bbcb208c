"""The latency scenario's sampled receivers, rates and probes; the scale scenario's join modes (no server)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from lanchat_bench.codecs import Irc, LanchatTcp  # scripts/ is not on the default path
from lanchat_bench.procstat import CpuShare
from lanchat_bench.records import as_row
from lanchat_bench.scenarios.latency import (
    SCENARIO,
    LatencyFigures,
    LatencyResult,
    ThreadFigures,
    phase_keys,
    phases,
    rate_tag,
    sampled_indices,
    sampled_members,
)
from lanchat_bench.scenarios.scale import BatchJoinsTcp, codec_for


def test_sampled_receivers_are_spread_over_the_join_order() -> None:
    """Five receivers: the first, the last and three evenly between; fewer members: all of them."""
    assert sampled_indices(50) == [0, 12, 24, 37, 49]
    assert sampled_indices(3) == [0, 1, 2]


def test_sampled_receivers_are_members_that_do_not_send() -> None:
    """With 5 senders (the first 5 joined) of 50, the sampled receivers are spread over the other 45."""
    assert sampled_members(50, 5) == [5, 16, 27, 38, 49]
    assert sampled_members(6, 2) == [2, 3, 4, 5]
    assert sampled_members(3, 3) == [0, 1, 2]


def test_scale_bots_ask_for_batched_joins_only_from_lanchat() -> None:
    """--joins batch: lanchat's hello carries the feature; v1 and other servers' codecs are unchanged."""
    lanchat = LanchatTcp()
    assert isinstance(codec_for(lanchat, "batch"), BatchJoinsTcp)
    assert codec_for(lanchat, "v1") is lanchat
    irc = Irc()
    assert codec_for(irc, "batch") is irc
    with pytest.raises(ValueError):
        codec_for(lanchat, "both")


def test_rates_default_to_500_and_2000_and_probes_to_both(tmp_path: Path) -> None:
    """`latency` alone plans both rates and both probes; --rates/--probe narrow them, bad values are refused."""
    from lanchat_bench.cli import parse_args

    opts = parse_args(["latency"])
    assert opts.rates == [500.0, 2000.0]
    assert opts.probe == ["loop", "threads"]
    assert parse_args(["latency", "--tiny"]).rates == [500.0, 2000.0]
    opts = parse_args(["latency", "--rates", "1000", "--probe", "threads"])
    assert (opts.rates, opts.probe) == ([1000.0], ["threads"])
    for bad in (["--rates", "0"], ["--rates", "fast"], ["--probe", "select"], ["--probe", ""]):
        with pytest.raises(SystemExit):
            parse_args(["latency", *bad])


def test_every_rate_runs_every_probe_and_udp_only_the_loop() -> None:
    """Per rate both probes, in order; the thread probe reads TCP sockets only."""
    assert phases([500.0, 2000.0], ["loop", "threads"], udp=False) == [
        (500.0, "loop"), (500.0, "threads"), (2000.0, "loop"), (2000.0, "threads")]
    assert phases([500.0], ["loop", "threads"], udp=True) == [(500.0, "loop")]
    assert phases([500.0], ["threads"], udp=True) == [(500.0, "loop")]


def test_each_phase_has_keys_of_its_own_in_the_row() -> None:
    """A rate's keys end in the rate; the thread probe's start with thr_; all of them reach the JSON row."""
    loop = LatencyFigures(sent=10, offered_rate=500.0, expected=50, received=50, lost=0, p50_ms=0.2, p90_ms=0.3,
                          p99_ms=0.5, max_ms=0.9, stopped="done", cpu=CpuShare(5.0, 9.0), sampled=5,
                          sampled_p50_ms=0.25, sampled_p99_ms=0.6, sampled_max_ms=0.9)
    threads = ThreadFigures(p50_ms=0.3, p99_ms=0.8, max_ms=1.0, arrived_p50_ms=0.2, arrived_p99_ms=0.4,
                            received=50, lost=0)
    result = LatencyResult(clients=50, senders=5, rate=500.0, duration=5.0, size=100, figures=loop)
    result.phases.update(phase_keys(500.0, loop))
    result.phases.update(phase_keys(2000.0, threads))
    row = as_row(result)
    assert row["p99_ms"] == row["p99_ms_500"] == 0.5
    assert row["sampled_p99_ms_500"] == 0.6 and row["server_cpu_pct_500"] == 5.0
    assert row["thr_p99_ms_2000"] == 0.8 and row["thr_arrived_p99_ms_2000"] == 0.4
    assert "phases" not in row and "thr_p99_ms_500" not in row
    assert rate_tag(1500.5) == "1500.5"


def test_rate_and_probe_keys_are_the_table_columns_and_headline() -> None:
    """The table shows both default rates with all-deliveries, sampled and thread-probe figures."""
    keys = {key for _, key in SCENARIO.columns}
    for tag in ("500", "2000"):
        assert {f"p99_ms_{tag}", f"sampled_p99_ms_{tag}", f"thr_p99_ms_{tag}"} <= keys
        assert f"thr_p99_ms_{tag}" in SCENARIO.headline


def test_miniircd_nodelay_runs_it_with_tcp_nodelay_on_accepted_sockets(tmp_path: Path) -> None:
    """--miniircd-nodelay starts miniircd through a wrapper that sets TCP_NODELAY on every accepted socket."""
    from lanchat_bench.cli import parse_args
    from lanchat_bench.launchers import MiniircdServer, make_server

    plain = make_server("miniircd", tmp_path, parse_args(["latency", "--vs"]), 10)
    forced = make_server("miniircd", tmp_path, parse_args(["latency", "--vs", "--miniircd-nodelay"]), 10)
    assert isinstance(plain, MiniircdServer) and isinstance(forced, MiniircdServer)
    assert (plain.nodelay, forced.nodelay) == (False, True)
    pytest.importorskip("miniircd")
    assert "TCP_NODELAY" not in " ".join(plain.command())
    command = forced.command()
    assert command[1] == "-c" and "TCP_NODELAY" in command[2] and "run_module('miniircd'" in command[2]
    assert command[3:5] == ["--listen", "127.0.0.1"]
