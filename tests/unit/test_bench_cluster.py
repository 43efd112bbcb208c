"""The cluster scenario's pieces that need no chatsrv: not part of `all`, and its own redis-server."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from lanchat_bench.cli import parse_args  # scripts/ is not on the default path
from lanchat_bench.launchers import port_listening
from lanchat_bench.scenarios.cluster import RedisServer


def test_cluster_runs_only_when_asked_for() -> None:
    assert "cluster" not in parse_args(["all"]).scenarios
    assert parse_args(["cluster", "--conns", "300"]).scenarios == ["cluster"]


@pytest.mark.timeout(30)
def test_its_redis_server_starts_on_a_free_loopback_port_empties_and_stops_by_pid() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    redis = RedisServer()
    redis.start()
    try:
        assert redis.url == f"redis://127.0.0.1:{redis.port}/0" and port_listening(redis.port)
        assert redis.command(b"SET lanchat:x 1").startswith(b"+OK")
        redis.flush()
        assert redis.command(b"DBSIZE") == b":0\r\n"
        assert redis.command(b"CONFIG GET save").endswith(b"save\r\n$0\r\n\r\n")  # persistence off
        process = redis.proc
    finally:
        redis.stop()
    assert process is not None and process.poll() is not None and not port_listening(redis.port)
