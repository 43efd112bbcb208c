"""Smoke test of the benchmark's cluster scenario: one tiny run (three configurations, then scale), via --json.

It starts its own redis-server (persistence off) and stops it; skipped where redis-server or the redis
package is missing, as the backplane tests are.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def row() -> dict[str, Any]:
    pytest.importorskip("redis", reason="the backplane needs the redis package: pip install -e '.[backplane]'")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    command = [sys.executable, str(ROOT / "scripts" / "bench.py"), "cluster", "--tiny", "--json",
               "--timeout", "30", "--idle", "5", "--server-dir", str(ROOT)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL, check=False)
    assert done.stdout.strip(), f"no JSON on stdout; stderr:\n{done.stderr}"
    [result] = json.loads(done.stdout)["results"]
    assert not result.get("error"), f"{result['error']}\n{done.stderr}"
    return dict(result)


@pytest.mark.timeout(180)
def test_each_configuration_delivers_everything_and_is_timed(row: dict[str, Any]) -> None:
    configs = {config["config"]: config for config in row["configs"]}
    assert list(configs) == ["1 node", "1 node+bp", "2 nodes"]
    assert [(c["nodes"], c["backplane"]) for c in configs.values()] == [(1, False), (1, True), (2, True)]
    for config in configs.values():
        assert config["deliveries"] > 0 and config["deliveries_per_s"] > 0
        assert config["cpu_us_per_delivery"] is not None and config["server_cpu_s"] is not None
        assert config["latency_sent"] > 0 and config["latency_lost"] == 0
        assert 0 < config["p50_ms"] <= config["p99_ms"]
        assert len(config["rounds"]) == 2 and config["deliveries"] == sum(r["deliveries"] for r in config["rounds"])
    assert configs["1 node"]["redis_cpu_s"] == 0.0  # no backplane: Redis is not counted
    assert row["deliv_2"] == configs["2 nodes"]["deliveries_per_s"] and row["p99_bp"] == configs["1 node+bp"]["p99_ms"]


@pytest.mark.timeout(180)
def test_scale_puts_twice_the_members_on_two_nodes(row: dict[str, Any]) -> None:
    one, two = row["scale"]
    assert (one["config"], two["config"]) == ("1 node", "2 nodes")
    assert one["joined"] == one["conns"] == row["conns"] and two["joined"] == two["conns"] == 2 * row["conns"]
    for scale in (one, two):
        assert scale["bcast_reached"] == scale["bcast_expected"] > 0 and scale["join_bytes"] > 0
        assert scale["total_s"] == pytest.approx(scale["join_s"] + scale["bcast_s"], abs=0.002)
