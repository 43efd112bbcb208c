"""The UDP side of the lab: injected faults measured with seq, a restart UDP does not notice, kernel loss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lanchat_lab import netns
from lanchat_lab.cli import main
from lanchat_lab.measure import binomial_bound

ROOT = Path(__file__).resolve().parents[2]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result: dict[str, Any] = json.loads(captured.out)
    return result


@pytest.mark.timeout(60)
def test_udp_loss_20_seed_3_is_within_a_binomial_bound_and_tcp_is_untouched(capsys) -> None:
    """Under --udp-loss 20 --seed 3 UDP loses about 20 % (4 sigma), exactly what the server injected; TCP loses
    nothing."""
    result = run_json(
        capsys, "compare", "--udp-loss", "20", "--seed", "3", "--bots", "2", "--messages", "150", "--rate", "500"
    )
    tcp, udp = result["transports"]["tcp"], result["transports"]["udp"]
    assert (tcp["lost"], tcp["seq_lost"], tcp["reordered"], tcp["duplicated"]) == (0, 0, 0, 0)
    assert tcp["from_other"] == [300, 300]  # UDP bots' messages reach TCP bots: the faults are on the way down only
    low, high = binomial_bound(udp["seq_total"], 0.2)
    assert low <= udp["seq_lost"] / udp["seq_total"] <= high
    low, high = binomial_bound(udp["expected"], 0.2)
    assert low <= udp["lost_fraction"] <= high
    # On loopback the network adds (almost) nothing: the bots' count is the server's. A busy
    # machine can drop a datagram in a bot's own socket buffer, so allow one per bot.
    assert 0 <= udp["seq_lost"] - udp["server"]["injected_lost"] <= 2
    assert result["setup"]["udp_faults"] == ["--udp-loss", "20", "--seed", "3"]


@pytest.mark.timeout(60)
def test_udp_duplicates_and_reordering_show_up_in_the_report(capsys) -> None:
    """Injected duplicates and reordering are counted from seq and named in the report; TCP has none."""
    code = main(
        [
            "compare",
            "--udp-dup",
            "10",
            "--udp-reorder",
            "10",
            "--seed",
            "5",
            "--bots",
            "2",
            "--messages",
            "150",
            "--rate",
            "500",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = {
        line.split("  ")[0]: line.split()
        for line in out.splitlines()
        if line.startswith(("reordered (seq)", "duplicated (seq)"))
    }
    tcp_reordered, udp_reordered = lines["reordered (seq)"][-2:]
    tcp_duplicated, udp_duplicated = lines["duplicated (seq)"][-2:]
    assert tcp_reordered == tcp_duplicated == "0"
    assert int(udp_reordered) > 0 and int(udp_duplicated) > 0
    assert "server: injected duplicates" in out and "out of order" in out and "duplicated" in out


@pytest.mark.timeout(60)
def test_restart_udp_notices_only_by_silence(capsys, tmp_path: Path) -> None:
    """After a SIGKILL, TCP bots know at once; UDP bots only after their timeout; all come back (and a timeline PNG)."""
    picture = tmp_path / "restart.png"
    result = run_json(
        capsys,
        "restart",
        "--before",
        "0.3",
        "--down",
        "1.2",
        "--interval",
        "0.1",
        "--udp-timeout",
        "0.6",
        "--plot",
        str(picture),
    )
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_transport: dict[str, list[dict[str, Any]]] = {"tcp": [], "udp": []}
    for bot in result["bots"]:
        by_transport[bot["transport"]].append(bot)
        assert bot["back_after_restart"] is not None and bot["back_after_restart"] < 2.0
    assert all(bot["noticed_after"] < 0.3 for bot in by_transport["tcp"])
    for bot in by_transport["udp"]:
        # Silence is counted from the last pong, up to one ping interval before the kill.
        assert 0.6 - 2 * 0.1 <= bot["noticed_after"] < 1.2
        assert any("server presumed gone" in text and "without any error" in text for _, text in bot["events"])


@pytest.mark.timeout(60)
def test_slow_udp_member_is_never_removed_but_loses(capsys, tmp_path: Path) -> None:
    """A stuck UDP member is not removed; its own kernel drops what does not fit, seen as seq gaps (and a PNG)."""
    picture = tmp_path / "slow.png"
    result = run_json(
        capsys,
        "slow",
        "--readers",
        "2",
        "--messages",
        "400",
        "--rate",
        "400",
        "--size",
        "1000",
        "--stuck",
        "tcp,udp",
        "--plot",
        str(picture),
    )
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stuck = {member["nick"]: member for member in result["stuck_members"]}
    assert result["removed"]["reason"] == "slow"
    assert stuck["stuck-tcp"]["closed_by_server"]
    assert not stuck["stuck-udp"]["closed_by_server"]
    assert 0 < stuck["stuck-udp"]["received"] < 400 and stuck["stuck-udp"]["seq_gaps"] > 0


MISSING = netns.namespaces_unavailable()


@pytest.mark.skipif(MISSING is not None, reason=f"netns lab: {MISSING}")
@pytest.mark.timeout(90)
def test_kernel_loss_tcp_delivers_everything_udp_loses(capsys, tmp_path: Path) -> None:
    """10 % kernel drops each way: TCP complete with a latency tail, UDP short; a PNG; no namespace left."""
    target = tmp_path / "netns.png"
    code = main(
        ["compare", "--netns-loss", "10", "--bots", "2", "--messages", "100", "--rate", "200", "--plot", str(target)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "TCP delivered 200 of 200 messages, every one, in order, once" in out
    delivered = next(line for line in out.splitlines() if line.startswith("delivered / expected")).split()
    udp_delivered, udp_expected = int(delivered[-3]), int(delivered[-1])
    assert udp_expected == 200 and udp_delivered < 200
    assert "dropped by the kernel" in out
    assert [name for name in netns.list_namespaces() if name.startswith(f"chatlab{os.getpid()}")] == []


def test_chatclient_trace_wire_over_udp_shows_one_datagram_per_recv(server) -> None:
    """With --udp, the trace says each recvfrom is exactly one datagram, no length prefix."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatclient",
            "--udp",
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--nick",
            "uma",
            "--trace-wire",
        ],
        check=False,
        input="over udp\n",
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "you are uma" in done.stdout and "wire:" not in done.stdout
    assert "wire: recvfrom " in done.stderr and "1 datagram = 1 payload" in done.stderr
