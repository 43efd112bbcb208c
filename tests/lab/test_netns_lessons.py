"""Lessons that need a real, slow or lossy link: --netns-rate, handshake --netns-loss, chatlab trace-wire.

The root-only runs are skipped with the reason when this machine cannot make
network namespaces (or tc is missing); the missing-tool answers (exit 2) and
the pure pieces run everywhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time

import pytest

from lanchat_lab import netns, tracewire
from lanchat_lab.handshake import Segment, ladder
from lanchat_lab.tracewire import parse_trace
from tests.lab.test_scenarios import run_json, run_lab

MISSING = netns.namespaces_unavailable()
needs_netns = pytest.mark.skipif(MISSING is not None, reason=f"netns lab: {MISSING}")
needs_tc = pytest.mark.skipif(shutil.which("tc") is None, reason="tc (iproute2) is not installed")


def ours() -> list[str]:
    pid = os.getpid()
    return [name for name in netns.list_namespaces() if name in (f"chatlab{pid}s", f"chatlab{pid}c")]


# --- --netns-rate --------------------------------------------------------------


@needs_netns
@needs_tc
@pytest.mark.timeout(90)
def test_compare_netns_rate_really_slows_the_link(capsys) -> None:
    """200 messages/s of 1,500 characters (~340 KB/s) into a 1mbit (125 KB/s) link queue up (loopback: p50 < 1 ms)."""
    result = run_json(
        capsys, "compare", "--netns-rate", "1mbit", "--transports", "tcp", "--bots", "1",
        "--messages", "60", "--rate", "200", "--size", "1500",
    )
    assert result["setup"]["netns_rate"] == "1mbit" and result["setup"]["mode"] == "netns"
    tcp = result["transports"]["tcp"]
    assert tcp["delivered"] == 60 and tcp["lost"] == 0
    assert tcp["latency_ms"]["p50"] > 50, tcp["latency_ms"]
    drops = result["link_drops"]
    assert set(drops) == {"to_bots", "to_server"} and all(isinstance(n, int) and n >= 0 for n in drops.values())
    assert ours() == []


def test_netns_rate_must_be_a_tc_rate(capsys) -> None:
    """A rate tc would not understand is refused by the option parser (exit 2), before anything is built."""
    with pytest.raises(SystemExit) as stopped:
        run_lab(capsys, "compare", "--netns-rate", "fast")
    assert stopped.value.code == 2
    assert "not a rate" in capsys.readouterr().err


# --- missing tools: one line, exit 2 ----------------------------------------------


def _root_without(monkeypatch: pytest.MonkeyPatch, *absent: str) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda name: None if name in absent else f"/usr/sbin/{name}")


@pytest.mark.parametrize(
    ("argv", "absent", "named"),
    [
        (["compare", "--netns-rate", "1mbit"], ("tc",), "needs tc"),
        (["compare", "--netns-loss", "5"], ("nft",), "needs nft"),
        (["handshake", "--netns-loss", "1"], ("ip", "nft"), "needs ip, nft"),
        (["trace-wire", "--netns-rate", "1mbit"], ("tc",), "needs tc"),
    ],
)
def test_a_missing_tool_is_one_line_and_exit_2(capsys, monkeypatch, argv, absent, named) -> None:
    """Root, but a tool is missing: one line naming it and its package, exit 2 (not 1, not a traceback)."""
    _root_without(monkeypatch, *absent)
    code, out, err = run_lab(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and named in err and "apt-get install" in err


@pytest.mark.parametrize("argv", [["handshake", "--netns-loss", "1"], ["trace-wire", "--netns-rate", "1mbit"]])
def test_without_root_the_namespace_runs_say_so_and_exit_1(capsys, monkeypatch, argv) -> None:
    """Not root: one line saying so (a mistake of this run, not of the machine), exit 1."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, _, err = run_lab(capsys, *argv)
    assert code == 1 and err.count("\n") == 1 and "needs root" in err


def test_handshake_without_af_packet_exits_2(capsys, monkeypatch) -> None:
    """A system without AF_PACKET sockets cannot watch segments: one line, exit 2."""
    monkeypatch.delattr(socket, "AF_PACKET", raising=False)
    code, _, err = run_lab(capsys, "handshake")
    assert code == 2 and err.count("\n") == 1 and "AF_PACKET" in err


# --- handshake --netns-loss: a lost SYN ----------------------------------------------


def test_nft_rule_drops_exactly_the_first_syns() -> None:
    """The server's rules drop the first N SYNs (SYN without ACK) with a counter that counts only SYNs."""
    rules = netns._ruleset("clv1s", 0.0, 2)
    assert 'tcp flags & (syn | ack) == syn numgen inc mod 1000000 < 2 counter drop comment "syn-dropped"' in rules
    assert "syn-dropped" not in netns._ruleset("clv1s", 5.0)


def test_ladder_marks_a_segment_sent_again() -> None:
    """The same SYN twice is a retransmission; a repeated bare ACK (a duplicate ACK) is not."""
    syn = Segment(40000, 9009, 100, 0, 0x02, b"")
    syn_ack = Segment(9009, 40000, 500, 101, 0x12, b"")
    ack = Segment(40000, 9009, 101, 501, 0x10, b"")
    rows = ladder([(0.0, syn), (1.0, syn), (1.001, syn_ack), (1.002, ack), (1.003, ack)], 40000)
    assert [row["retransmission"] for row in rows] == [False, True, False, False, False]
    assert rows[1]["ms"] == 1000.0 and rows[1]["seq"] == 0


@needs_netns
@pytest.mark.timeout(60)
def test_handshake_with_a_lost_syn_shows_its_retry_after_about_a_second(capsys) -> None:
    """--netns-loss 1: the first SYN is dropped and comes again ~1 s later; then the handshake and the chat."""
    result = run_json(capsys, "handshake", "--netns-loss", "1")
    assert result["mode"] == "netns" and result["syns_dropped"] == 1
    segments = result["segments"]
    assert [s["flags"] for s in segments[:4]] == ["SYN", "SYN", "SYN-ACK", "ACK"]
    assert segments[0].get("dropped") and not segments[1].get("dropped") and segments[1]["retransmission"]
    assert 900 <= segments[1]["ms"] <= 3500, segments[1]
    carried = {kind for s in segments for kind in s["carries"]}
    assert {"hello", "welcome", "say", "bye"} <= carried
    assert ours() == []
    code, out, _ = run_lab(capsys, "handshake", "--netns-loss", "1")
    assert code == 0 and "-> 1 SYN(s) lost: the client's kernel sent its SYN again after" in out


# --- trace-wire ------------------------------------------------------------------------


def test_parse_trace_reads_chatclients_lines() -> None:
    """chatclient's wire lines -> sizes, whole frames, and which recvs hold pieces; other lines are ignored."""
    recvs = parse_trace(
        [
            "wire: recv 2896 bytes, 0 complete frames: start of the next frame (2896 bytes)",
            "chatclient: something else",
            "wire: recv 1448 bytes, 0 complete frames: middle of a frame (1448 bytes; 4344 of it so far)",
            "wire: recv 344 bytes, 1 complete frame: end of a frame begun earlier (344 bytes, [4+4684] in all)",
            "wire: recv 120 bytes, 1 complete frame: [4+116]",
        ]
    )
    assert [r["bytes"] for r in recvs] == [2896, 1448, 344, 120]
    assert [r["frames"] for r in recvs] == [0, 0, 1, 1]
    assert [r["ends_split_frame"] for r in recvs] == [False, False, True, False]
    assert recvs[0]["starts_frame"] and recvs[1]["middle"]
    assert recvs[3]["line"] == "recv 120 bytes, 1 complete frame: [4+116]"


@pytest.mark.timeout(60)
def test_trace_wire_on_loopback_frames_arrive_whole(capsys) -> None:
    """A real chatclient --trace-wire on loopback: the welcome (with history) and the pasted line, each in one recv."""
    result = run_json(capsys, "trace-wire", "--history", "5", "--size", "300", "--paste", "200")
    assert result["mode"] == "loopback" and result["split_frames"] == 0
    assert result["frames"] >= 2 and all(recv["frames"] >= 1 for recv in result["recvs"])
    welcome = result["recvs"][0]
    assert welcome["bytes"] > 5 * 300  # the history is in it


# A stand-in for chatclient: once the pasted line is read it writes the line before it and the echo in ONE
# write, as the pipe holds them when the reader was late (a loaded machine), then a last line after stdin's EOF.
_LATE_ECHO = (
    "import os, sys\n"
    "line = sys.stdin.readline()\n"
    "os.write(1, ('amy joined lobby\\n' + line).encode())\n"
    "sys.stdin.read()\n"
    "os.write(1, b'left after EOF\\n')\n"
    "os.write(2, b'wire: recv 1 bytes, 0 complete frames: x\\n')\n"
)


@pytest.mark.timeout(30)
def test_trace_wire_keeps_an_echo_that_arrived_with_the_line_before_it(monkeypatch) -> None:
    """Two lines in one read of the pipe: the echo is found at once, not lost in a reader's buffer."""
    monkeypatch.setattr(tracewire, "DEADLINE", 5.0)
    started = time.monotonic()
    out, err = tracewire._paste([sys.executable, "-c", _LATE_ECHO], "pasted ----")
    assert out == ["amy joined lobby", "pasted ----", "left after EOF"]
    assert err == ["wire: recv 1 bytes, 0 complete frames: x"]
    assert time.monotonic() - started < tracewire.DEADLINE  # it did not sit out the deadline waiting


@pytest.mark.timeout(60)
def test_trace_wire_reads_chatclients_lines_under_a_chinese_locale(capsys, monkeypatch) -> None:
    """chatclient's wire lines are parsed: under a Chinese locale it must still write them in English."""
    monkeypatch.setenv("LANGUAGE", "zh_CN")
    result = run_json(capsys, "trace-wire", "--history", "3", "--size", "100", "--paste", "50")
    assert result["recvs"] and result["frames"] >= 2


@needs_netns
@needs_tc
@pytest.mark.timeout(90)
def test_trace_wire_over_a_slow_link_splits_frames_across_recvs(capsys) -> None:
    """At 1mbit the welcome of a 30 x 1,000-character history (~240 ms on the link) arrives over several recvs."""
    result = run_json(capsys, "trace-wire", "--history", "30", "--size", "1000", "--netns-rate", "1mbit")
    assert result["mode"] == "netns" and result["rate"] == "1mbit"
    assert result["split_frames"] >= 1
    first = result["recvs"][0]
    assert first["starts_frame"] and first["frames"] == 0
    assert ours() == []
    code, out, _ = run_lab(capsys, "trace-wire", "--history", "30", "--size", "1000", "--netns-rate", "1mbit")
    assert code == 0 and "arrived split across recvs" in out


def test_compare_picture_title_names_the_rate_limit() -> None:
    """A --netns-rate run's picture says the link was limited (and by how much)."""
    from lanchat_lab.plot import _compare_title

    setup = {"bots_per_transport": 3, "messages_per_transport": 300, "rate": 100.0, "mode": "netns", "netns_loss": None,
             "netns_rate": "1mbit", "udp_faults": []}
    assert _compare_title(setup) == "TCP vs UDP: 3 bots each, 300 messages at 100/s, link limited to 1mbit"


@pytest.mark.timeout(60)
def test_trace_wire_picture(capsys, tmp_path) -> None:
    """--plot draws one bar per recv into a real PNG."""
    from tests.lab.test_scenarios import assert_png

    pytest.importorskip("matplotlib")
    picture = tmp_path / "trace.png"
    argv = ["trace-wire", "--history", "3", "--size", "100", "--paste", "50", "--plot", str(picture)]
    code, out, err = run_lab(capsys, *argv)
    assert code == 0, err
    assert f"picture: {picture}" in out
    width, height = assert_png(picture)
    assert width > 500 and height > 200


def test_findings_name_the_full_link_and_where_each_transport_waited() -> None:
    """--netns-rate: the findings say the link overflowed, what that cost each transport, and where TCP waited."""
    from lanchat_lab.report import _link_findings

    def side(p50: float) -> dict[str, object]:
        return {"latency_ms": {"p50": p50}}

    result = {
        "setup": {"netns_rate": "1mbit"},
        "link_drops": {"to_bots": 170, "to_server": 8},
        "transports": {"tcp": side(1254.7), "udp": side(413.6)},
    }
    (text,) = _link_findings(result)
    assert text.startswith("The 1mbit link was the bottleneck: its queue overflowed and dropped 178 packets")
    assert "UDP's median of 414 ms is the wait in that queue; TCP's 1,255 ms is longer" in text
    result["link_drops"] = {"to_bots": 0, "to_server": 0}
    assert _link_findings(result) == ["The 1mbit link carried this load: its queue never overflowed."]
    assert _link_findings({"link_drops": None}) == []
