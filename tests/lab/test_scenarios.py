"""Each chatlab scenario run small, with its report and its numbers checked."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from lanchat_lab.cli import main


def run_lab(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run_lab(capsys, *argv, "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def assert_png(path: Path) -> tuple[int, int]:
    """A real PNG: signature, IHDR first, every chunk's CRC right, IEND last; returns (width, height)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, kinds = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc
        kinds.append(kind)
        position += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --- sticky --------------------------------------------------------------------


def test_sticky_merges_without_framing_and_is_exact_with_it(capsys) -> None:
    """Naive recv(1024) shows merged chunks and a cut message; framing gives exactly the messages; UDP keeps
    boundaries."""
    result = run_json(capsys, "sticky", "--messages", "40", "--big", "2500")
    naive = result["tcp_naive"]
    assert naive["merged_chunks"] >= 1
    assert naive["split_messages"] >= 1  # the 2500-byte message cannot fit one recv(1024)
    assert len(naive["chunks"]) < result["messages"]
    assert "".join(chunk["text"] for chunk in naive["chunks"]).startswith("message 0 from the sender;message 1 from")
    framed = result["tcp_framed"]
    assert framed["exact"] and len(framed["messages"]) == 41
    assert framed["messages"][:2] == ["message 0 from the sender;", "message 1 from the sender;"]
    udp = result["udp"]
    assert udp["received"] == 41 and udp["boundaries_kept"]
    assert udp["truncated"] == [40] and udp["sizes"][40] == 1024


def test_sticky_report_reads_well(capsys) -> None:
    """The report names merged chunks, the exact framed count and the truncated datagram."""
    code, out, _ = run_lab(capsys, "sticky", "--messages", "50")
    assert code == 0
    assert "1. TCP, naive receiver: recv(1024)" in out
    assert "held several messages merged" in out
    assert "-> 51 messages:" in out and "exactly the messages sent" in out
    assert "MSG_TRUNC is set" in out


def test_sticky_plot_writes_a_png(capsys, tmp_path: Path) -> None:
    """--plot draws the stream picture into a valid PNG."""
    target = tmp_path / "sticky.png"
    code, out, err = run_lab(capsys, "sticky", "--plot", str(target))
    assert code == 0, err
    assert f"picture: {target}" in out
    width, height = assert_png(target)
    assert width > 600 and height > 200


# --- compare (TCP side) ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_compare_tcp_is_complete_in_order_and_once(capsys, tmp_path: Path, monkeypatch) -> None:
    """Over TCP every message arrives, none lost, reordered or duplicated; the report and a PNG say so; no files
    left."""
    monkeypatch.chdir(tmp_path)  # the lab's server must not leave a history database behind
    target = tmp_path / "compare.png"
    code, out, err = run_lab(
        capsys,
        "compare",
        "--transports",
        "tcp",
        "--bots",
        "2",
        "--messages",
        "60",
        "--rate",
        "400",
        "--plot",
        str(target),
    )
    assert code == 0, err
    assert "delivered / expected" in out and "120 / 120" in out
    assert "TCP delivered 120 of 120 messages, every one, in order, once" in out
    assert_png(target)
    result = run_json(capsys, "compare", "--transports", "tcp", "--bots", "2", "--messages", "60", "--rate", "400")
    tcp = result["transports"]["tcp"]
    assert (tcp["expected"], tcp["delivered"], tcp["lost"], tcp["seq_lost"], tcp["reordered"], tcp["duplicated"]) == (
        120,
        120,
        0,
        0,
        0,
        0,
    )
    assert tcp["framing_bytes"] == 4 and tcp["payload_bytes"] > 50
    assert 0 < tcp["latency_ms"]["p50"] <= tcp["latency_ms"]["p99"] <= tcp["latency_ms"]["max"] < 2000
    assert tcp["join_ms"]["max"] > 0
    assert tcp["messages_per_second"] > 100
    assert len(result["latency_series"]["tcp"]) == 120
    assert sorted(path.name for path in tmp_path.iterdir()) == ["compare.png"]


def test_compare_refuses_faults_for_a_server_it_does_not_start(capsys) -> None:
    """--udp-loss with --host is explained in one line (faults are the server's flags)."""
    code, out, err = run_lab(capsys, "compare", "--host", "127.0.0.1", "--port", "1", "--udp-loss", "5")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "start chatsrv with them yourself" in err


def test_bad_flags_are_one_line(capsys) -> None:
    """A bad value is one line on stderr with exit 2, no traceback."""
    with pytest.raises(SystemExit) as stop:
        main(["compare", "--udp-loss", "120"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "percentage" in err


# --- slow -------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_slow_member_is_removed_and_readers_keep_their_rate(capsys) -> None:
    """The stuck member leaves with reason slow; every reader gets every message at about the sending rate."""
    result = run_json(capsys, "slow", "--readers", "2", "--messages", "400", "--rate", "400", "--size", "1000")
    assert result["removed"] is not None and result["removed"]["reason"] == "slow"
    for reader in result["readers"]:
        assert reader["received"] == reader["expected"] == 400
        # The server may hold the sender back briefly (backpressure, until the stuck member's TCP
        # has acknowledged nothing for 0.05 s) but never waits for it for long, then goes on at full rate.
        assert reader["longest_gap_ms"] < 1000
        assert reader["kept_up"] >= 0.5
        assert reader["rate_after"] > 400 * 0.7
    stuck = result["stuck_members"][0]
    assert stuck["closed_by_server"] and stuck["received"] < 400


def test_slow_report_prints_the_figures() -> None:
    """The report says who was removed, when, and each reader's rate and latency."""
    from lanchat_lab.report import slow_report

    result = {
        "setup": {
            "readers": 1,
            "messages": 10,
            "rate": 100.0,
            "size": 5,
            "outbox": 1000,
            "stuck_buffer": 4096,
            "stuck": ["tcp"],
            "duration": 1.0,
        },
        "removed": {"reason": "slow", "seconds": 0.25, "after_message": 4},
        "readers": [
            {
                "nick": "reader1",
                "received": 10,
                "expected": 10,
                "kept_up": 1.0,
                "rate_before": 99.0,
                "rate_after": 101.0,
                "latency_ms": {"p50": 0.3, "p99": 1.0, "max": 2.0},
                "longest_gap_ms": 12.0,
            }
        ],
        "stuck_members": [
            {
                "nick": "stuck-tcp",
                "transport": "tcp",
                "received": 3,
                "bytes_taken": 9000,
                "closed_by_server": True,
                "seq_gaps": 0,
            }
        ],
    }
    text = slow_report(result)
    assert 'removed by the server with reason "slow" 0.25 s after the first message' in text
    assert "reader1   10 / 10" in text and "100 %" in text and "99.0 / 101.0" in text
    assert "every reader got every message at the sending rate: nobody waited" in text
    result["readers"][0]["longest_gap_ms"] = 240.0
    assert "the room waited once, at most 240 ms" in slow_report(result)


# --- restart -----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_restart_tcp_notices_at_once_and_comes_back(capsys) -> None:
    """After a SIGKILL the TCP bots notice within a moment, retry, and rejoin once the server is back."""
    result = run_json(capsys, "restart", "--transports", "tcp", "--before", "0.3", "--down", "0.8", "--interval", "0.1")
    assert result["bots"]
    for bot in result["bots"]:
        assert bot["noticed_after"] is not None and bot["noticed_after"] < 0.5
        assert bot["back_after_restart"] is not None and bot["back_after_restart"] < 2.0
        assert bot["failed_attempts"] >= 1
        texts = [text for _, text in bot["events"]]
        assert any("TCP knows at once" in text for text in texts)
        assert any("back in the room" in text for text in texts)


# --- sticky --nagle --------------------------------------------------------------


def test_sticky_nagle_merges_sends_into_fewer_segments(capsys) -> None:
    """With Nagle on, the sender's kernel sends fewer data segments than there were send() calls, and says so."""
    result = run_json(capsys, "sticky", "--messages", "40", "--big", "0", "--nagle")
    assert result["nagle"] is True
    naive = result["tcp_naive"]
    assert naive["send_calls"] == 40
    if naive["segments_sent"] is None:
        pytest.skip("this kernel does not report tcpi_data_segs_out (Linux 4.6 and later do)")
    assert 1 <= naive["segments_sent"] < 40
    code, out, _ = run_lab(capsys, "sticky", "--messages", "40", "--big", "0", "--nagle")
    assert code == 0
    assert "40 send() calls left as" in out and "Nagle on: while sent data waits for its ACK" in out


def test_sticky_without_nagle_counts_segments_too(capsys) -> None:
    """Nagle off by default (TCP_NODELAY): the report still shows segments beside send() calls."""
    result = run_json(capsys, "sticky", "--messages", "20", "--big", "0")
    assert result["nagle"] is False
    segments = result["tcp_naive"]["segments_sent"]
    assert segments is None or 1 <= segments <= 20
