"""Smoke test of scripts/bench.py: one tiny run of every scenario against chatsrv, checked via --json.

Only lanchat is measured (no --vs: CI may lack miniircd and ncat). The run starts and stops its own
servers on 127.0.0.1; LANCHAT_SERVER_DIR may point the benchmark at another checkout's chatsrv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_DIR = Path(os.environ.get("LANCHAT_SERVER_DIR", ROOT))
HAS_UDP = (SERVER_DIR / "chatsrv" / "udp.py").exists()
SCENARIOS = ["fanout", "latency", "scale", "slow", "store"] + (
    ["fanout-udp", "latency-udp", "ceiling"] if HAS_UDP else []
)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """Run the benchmark once with tiny sizes and return its parsed JSON."""
    command = [
        sys.executable, str(ROOT / "scripts" / "bench.py"), *SCENARIOS, "--tiny", "--json",
        "--conns", "30", "--timeout", "20", "--idle", "3", "--slow-grace", "5",
        "--server-dir", str(SERVER_DIR),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=100, stdin=subprocess.DEVNULL, check=False)
    assert done.stdout.strip(), f"no JSON on stdout; stderr:\n{done.stderr}"
    parsed: dict[str, Any] = json.loads(done.stdout)
    parsed["_stderr"] = done.stderr
    return parsed


def result(report: dict[str, Any], scenario: str, transport: str = "tcp") -> dict[str, Any]:
    rows = [r for r in report["results"] if r["scenario"] == scenario and r["transport"] == transport]
    assert len(rows) == 1, f"expected one {scenario}/{transport} row in {report['results']}"
    row: dict[str, Any] = rows[0]
    assert not row.get("error"), f"{scenario}/{transport}: {row['error']}\n{report['_stderr']}"
    assert row["server"] == "lanchat"
    return row


@pytest.mark.timeout(120)
def test_fanout_delivers_every_message_to_every_member(report: dict[str, Any]) -> None:
    """Over TCP every say reaches every member of the room, the sender included, and nothing is lost."""
    row = result(report, "fanout")
    assert row["expected"] == row["senders"] * row["messages"] * row["clients"]
    assert row["received"] == row["expected"]
    assert row["lost"] == 0
    assert row["deliveries_per_s"] > 0


@pytest.mark.timeout(120)
def test_latency_reports_percentiles_without_loss(report: dict[str, Any]) -> None:
    """The open-loop latency run loses nothing over TCP and reports ordered percentiles."""
    row = result(report, "latency")
    assert row["sent"] > 0 and row["lost"] == 0
    assert 0 <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]


@pytest.mark.timeout(120)
def test_latency_runs_both_rates_with_the_thread_probe(report: dict[str, Any]) -> None:
    """Each default rate is measured by the loop and by receiver threads, which get every message."""
    row = result(report, "latency")
    for tag in ("500", "2000"):
        assert row[f"lost_{tag}"] == 0 and row[f"thr_lost_{tag}"] == 0
        assert row[f"thr_received_{tag}"] > 0
        assert 0 <= row[f"thr_p50_ms_{tag}"] <= row[f"thr_p99_ms_{tag}"] <= row[f"thr_max_ms_{tag}"]
        assert row[f"thr_arrived_p50_ms_{tag}"] is not None


@pytest.mark.timeout(120)
def test_scale_joins_everyone_and_one_broadcast_reaches_all(report: dict[str, Any]) -> None:
    """All idle connections join and a single broadcast reaches each of them."""
    row = result(report, "scale")
    assert row["joined"] == row["conns"] == 30
    assert row["bcast_all"] is True and row["bcast_reached"] == 30
    assert row["rss_after_kb"] and row["rss_before_kb"]


@pytest.mark.timeout(120)
def test_slow_member_is_removed_and_others_lose_nothing(report: dict[str, Any]) -> None:
    """A member that never reads is removed with reason slow while the others still get everything."""
    row = result(report, "slow")
    # On a failure, say why: how each phase stopped, who else left, the server's last log lines.
    phases = {name: row[name] for name in ("base", "with_stuck", "base_after")}
    assert row["base_lost"] == 0 and row["stuck_lost"] == 0, phases
    assert "others_left" not in row, phases
    assert row["base_rate"] > 0 and row["stuck_rate"] > 0
    assert row["stuck_left_reason"] == "slow"
    assert row["stuck_socket"] in ("closed by server", "reset by server")


@pytest.mark.timeout(120)
def test_store_compares_a_file_with_memory_pair_by_pair(report: dict[str, Any]) -> None:
    """Each pair measures fan-out with --db :memory: and with a SQLite file, losing nothing, and gives the ratio."""
    row = result(report, "store")
    assert row["pairs"] == 1
    assert len(row["memory_per_s"]) == len(row["file_per_s"]) == len(row["ratio_by_pair"]) == 1
    memory, file = row["memory_per_s"][0], row["file_per_s"][0]
    assert memory > 0 and file > 0
    assert row["ratio_by_pair"][0] == pytest.approx(file / memory, abs=0.001)
    assert row["median_ratio"] == row["ratio_by_pair"][0]


@pytest.mark.timeout(120)
@pytest.mark.skipif(not HAS_UDP, reason="this chatsrv has no UDP transport (chatsrv/udp.py) yet")
def test_udp_fanout_and_latency_complete_the_handshake_and_deliver(report: dict[str, Any]) -> None:
    """UDP clients pass the cookie handshake and, on loopback, receive (nearly) every message."""
    fanout = result(report, "fanout", "udp")
    assert fanout["expected"] == fanout["senders"] * fanout["messages"] * fanout["clients"]
    assert fanout["lost"] == fanout["expected"] - fanout["received"]
    assert fanout["received"] >= 0.95 * fanout["expected"]
    latency = result(report, "latency", "udp")
    assert latency["received"] >= 0.95 * latency["expected"] > 0
    assert latency["p50_ms"] is not None


@pytest.mark.timeout(120)
@pytest.mark.skipif(not HAS_UDP, reason="this chatsrv has no UDP transport (chatsrv/udp.py) yet")
def test_ceiling_puts_udp_fanout_beside_a_bare_sendto_loop_and_tcp(report: dict[str, Any]) -> None:
    """The bare sendto loop, UDP fan-out and TCP fan-out are each measured, and UDP is given as a share of the loop."""
    row = result(report, "ceiling")
    assert row["ceiling_per_s"] > 0 and row["udp_per_s"] > 0 and row["tcp_per_s"] > 0
    assert 0 < row["ceiling_received"] <= row["clients"] * row["senders"] * row["messages"]
    assert row["udp_of_ceiling"] == pytest.approx(row["udp_per_s"] / row["ceiling_per_s"], abs=0.001)
