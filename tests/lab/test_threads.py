"""chatlab threads: with an iterative server the second client waits at accept; with threads nobody waits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.test_scenarios import assert_png, run_json, run_lab

HOLD = 0.4
STAGGER = 0.05


@pytest.mark.timeout(60)
def test_iterative_server_makes_the_second_client_wait_at_accept(capsys) -> None:
    """Client 2 connects at once to both servers, but the iterative one accepts it only after client 1 left."""
    result = run_json(capsys, "threads", "--clients", "2", "--hold", str(HOLD), "--stagger", str(STAGGER))
    servers = {server["server"]: server["clients"] for server in result["servers"]}
    for clients in servers.values():
        assert all(client["error"] is None for client in clients)
        assert clients[1]["connect_ms"] < (HOLD - STAGGER) * 1000 / 2  # the handshake does not wait for accept()
    iterative, threaded = servers["iterative"][1], servers["threaded"][1]
    # Client 1 stays HOLD s from STAGGER s before client 2 arrived: client 2 waits at least the difference.
    assert iterative["accepted_after_ms"] >= (HOLD - STAGGER) * 1000 * 0.9
    assert iterative["answer_after_ms"] >= iterative["accepted_after_ms"]
    assert threaded["accepted_after_ms"] < (HOLD - STAGGER) * 1000 / 2


@pytest.mark.timeout(60)
def test_threads_report_and_plot(capsys, tmp_path: Path) -> None:
    """The report has both tables and the longest waits; --plot writes a PNG."""
    target = tmp_path / "threads.png"
    code, out, err = run_lab(
        capsys, "threads", "--clients", "2", "--hold", "0.2", "--stagger", "0.05", "--plot", str(target)
    )
    assert code == 0, err
    assert "iterative server (socketserver.TCPServer, one client at a time):" in out
    assert "threaded server (socketserver.ThreadingTCPServer" in out
    assert out.count("-> the longest wait at accept:") == 2
    assert "connect() took, ms" in out and "accept() after, ms" in out
    assert_png(target)


def test_threads_refuses_a_run_too_long(capsys) -> None:
    """The iterative run takes clients x hold seconds: the flags are bounded, with one line saying so."""
    code, _, err = run_lab(capsys, "threads", "--clients", "50")
    assert code == 1 and "--clients is at most 20" in err
