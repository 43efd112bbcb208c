"""chatlab timewait: who closes first holds TIME_WAIT, and a restart's bind needs SO_REUSEADDR (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanchat_lab.timewait import tcp_states
from tests.lab.test_scenarios import assert_png, run_json, run_lab

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")

PROC_SAMPLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2331 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0
   1: 0100007F:AF26 0100007F:2331 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0
   2: 0100007F:2331 0100007F:B000 08 00000000:00000000 00:00000000 00000000     0        0 2 1 0
"""


def test_proc_net_tcp_is_parsed() -> None:
    """Ports are hex, the state is hex, and a TIME_WAIT timer (3) counts clock ticks."""
    states = tcp_states(PROC_SAMPLE, clock_ticks=100)
    assert states[(9009, 0)] == ("LISTEN", None)
    assert states[(0xAF26, 9009)] == ("TIME_WAIT", 60.0)
    assert states[(9009, 0xB000)] == ("CLOSE_WAIT", None)


def test_the_first_closer_holds_time_wait_and_a_plain_bind_fails(capsys) -> None:
    """Client first: client in TIME_WAIT; server first: server; after a server's close a plain bind is refused."""
    result = run_json(capsys, "timewait", "--connections", "1")
    by_first = {case["first"]: case for case in result["cases"]}
    client_first = [(step["client"], step["server"]) for step in by_first["client"]["steps"]]
    assert client_first == [("ESTABLISHED", "ESTABLISHED"), ("FIN_WAIT2", "CLOSE_WAIT"), ("TIME_WAIT", "(gone)")]
    server_first = [(step["client"], step["server"]) for step in by_first["server"]["steps"]]
    assert server_first == [("ESTABLISHED", "ESTABLISHED"), ("CLOSE_WAIT", "FIN_WAIT2"), ("(gone)", "TIME_WAIT")]
    assert by_first["client"]["time_wait_on"] == "client" and by_first["server"]["time_wait_on"] == "server"
    assert 0 < by_first["server"]["time_wait_left"] <= 120
    rebind = result["rebind"]
    assert rebind["time_wait_sockets"] == 1
    assert rebind["plain_bind"] == "EADDRINUSE" and rebind["reuseaddr_bind"] == "ok"


def test_timewait_report_and_plot(capsys, tmp_path: Path) -> None:
    """The report names the holder and the bind outcomes; --plot writes a PNG."""
    target = tmp_path / "timewait.png"
    code, out, err = run_lab(capsys, "timewait", "--connections", "1", "--plot", str(target))
    assert code == 0, err
    assert "the client closed first and holds TIME_WAIT" in out
    assert "the server closed first and holds TIME_WAIT" in out
    assert "plain bind() to port" in out and "fails with EADDRINUSE" in out
    assert "SO_REUSEADDR then bind(): succeeds" in out
    width, height = assert_png(target)
    assert width > 600 and height > 200
