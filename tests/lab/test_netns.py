"""Real packet loss in two network namespaces: runs as root with ip, nft and ethtool; always cleans up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanchat_lab import netns
from lanchat_lab.cli import main
from lanchat_lab.compare import CompareOptions
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
MISSING = netns.namespaces_unavailable()
needs_netns = pytest.mark.skipif(MISSING is not None, reason=f"netns lab: {MISSING}")


def ours(pid: int) -> list[str]:
    return [name for name in netns.list_namespaces() if name in (f"chatlab{pid}s", f"chatlab{pid}c")]


def test_a_lossy_link_gives_tcp_joins_time_for_syn_retries() -> None:
    """Under --netns-loss a SYN or SYN-ACK is dropped now and then and Linux resends it after 1, 3, 7 s: a join that
    needs two resends is slow, not broken (CI once failed a 10 % run at the old 5 s)."""
    lossy = CompareOptions(netns_loss=10.0).workload("10.77.0.1", 9009)
    clean = CompareOptions().workload("127.0.0.1", 9009)
    assert lossy.join_timeout > 7.0
    assert clean.join_timeout == 5.0


@needs_netns
@pytest.mark.timeout(90)
def test_compare_with_kernel_loss_tcp_loses_nothing_and_namespaces_go(capsys) -> None:
    """Under 10 % random drops TCP still delivers everything (retransmitting), the kernel really dropped, nothing is
    left behind."""
    code = main(
        [
            "compare",
            "--netns-loss",
            "10",
            "--transports",
            "tcp",
            "--bots",
            "2",
            "--messages",
            "80",
            "--rate",
            "200",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    tcp = result["transports"]["tcp"]
    assert result["setup"]["mode"] == "netns"
    assert (tcp["delivered"], tcp["lost"], tcp["reordered"], tcp["duplicated"]) == (160, 0, 0, 0)
    drops = result["kernel_drops"]["tcp"]
    assert drops["to_server"] + drops["to_bots"] > 0
    assert tcp["wire_source"] == "nftables counters" and tcp["wire_bytes"] > tcp["payload_bytes"]
    assert ours(os.getpid()) == []


@needs_netns
def test_namespaces_are_removed_when_interrupted() -> None:
    """A KeyboardInterrupt inside the pair still removes both namespaces (and the veth with them)."""
    pair = netns.NamespacePair(loss=5)
    with pytest.raises(KeyboardInterrupt), pair:
        assert sorted(ours(os.getpid())) == sorted([pair.server_ns, pair.client_ns])
        counters = pair.counters(pair.client_ns)
        assert "tcp-dropped" in counters and "udp-in" in counters
        raise KeyboardInterrupt
    assert ours(os.getpid()) == []


@contextlib.contextmanager
def sigint_as_in_a_terminal() -> Iterator[None]:
    """Children started in the body get SIGINT with its default action, as a terminal's foreground job does.

    A process started in the background by a script (`cmd &` without job
    control, as a CI runner may start the suite) inherits SIGINT *ignored*;
    exec keeps an ignored signal ignored and Python then leaves it so: a
    chatlab started from it rightly never sees the Ctrl-C this test sends.
    A handler (not SIG_IGN) is reset to the default by exec.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@needs_netns
@pytest.mark.timeout(60)
def test_ctrl_c_on_a_running_chatlab_removes_its_namespaces() -> None:
    """SIGINT to a chatlab in the middle of a netns run: exit 130, one line, no namespace left, no server left."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "lanchat_lab", "compare", "--netns-loss", "5", "--transports", "tcp"]
    command += ["--messages", "100000", "--rate", "50"]
    with sigint_as_in_a_terminal():
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    try:
        wait_until(lambda: len(ours(process.pid)) == 2, timeout=20, interval=0.05)
        time.sleep(0.5)  # let the server and the bots start inside (the point is to interrupt a real run)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.terminate()  # chatlab takes SIGTERM like Ctrl-C: its namespaces and server go too
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    assert process.returncode == 130
    assert err.strip().count("\n") == 0 and "interrupted" in err
    assert ours(process.pid) == []


def test_missing_root_is_one_line(capsys, monkeypatch) -> None:
    """Without root the netns scenario says so in one line and exits 1."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code = main(["compare", "--netns-loss", "5"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "needs root" in err


def test_missing_tools_are_named_with_their_package(monkeypatch) -> None:
    """A missing tool is named, with the Debian package that brings it."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda name: None if name in ("nft", "tc") else f"/usr/sbin/{name}")
    assert netns.missing_prerequisites() == "needs nft (Debian/Ubuntu: apt-get install -y nftables)"
    reason = netns.missing_prerequisites(need_tc=True)
    assert reason is not None and "nft, tc" in reason and "iproute2 nftables" in reason
