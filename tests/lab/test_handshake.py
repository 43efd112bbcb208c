"""chatlab handshake: the segment parser, the BPF filter's jumps, and (root only) a real session's ladder."""

from __future__ import annotations

import os
import struct

import pytest

from lanchat_lab.handshake import parse_segment, port_filter
from tests.lab.test_scenarios import run_json, run_lab
from tests.lab.test_wireshark import _ip

ROOT_ONLY = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="handshake watches loopback with a raw socket: root only"
)


def test_parse_segment_reads_ports_seq_ack_flags_and_data() -> None:
    """An Ethernet/IPv4/TCP frame gives its ports, numbers, flags and payload; UDP and ARP give None."""
    tcp = struct.pack("!HHIIBBHHH", 40000, 9009, 1000, 5000, 5 << 4, 0x18, 65535, 0, 0) + b"data"
    segment = parse_segment(_ip(6, b"\x7f\0\0\x01", b"\x7f\0\0\x01", tcp))
    assert segment is not None
    assert (segment.source, segment.destination, segment.seq, segment.ack) == (40000, 9009, 1000, 5000)
    assert segment.flag_text == "PSH-ACK" and segment.payload == b"data"
    assert parse_segment(_ip(17, b"\x7f\0\0\x01", b"\x7f\0\0\x01", b"\0" * 8)) is None
    assert parse_segment(b"\0" * 12 + b"\x08\x06" + b"\0" * 28) is None


def test_filter_jumps_land_on_accept_or_drop() -> None:
    """Every jump of the BPF program stays inside it, and the last two instructions accept and drop."""
    program = port_filter(9009)
    for index, (code, jt, jf, _) in enumerate(program):
        if code & 0x07 == 0x05:  # a jump
            assert index + 1 + jt < len(program) and index + 1 + jf < len(program)
    assert program[-2] == (0x06, 0, 0, 0x40000) and program[-1] == (0x06, 0, 0, 0)


@ROOT_ONLY
@pytest.mark.timeout(60)
def test_handshake_ladder_of_a_real_session(capsys) -> None:
    """SYN, SYN-ACK, ACK first; hello, welcome, say, bye carried; both sides send a FIN; seq starts at 0."""
    result = run_json(capsys, "handshake")
    segments = result["segments"]
    assert [s["flags"] for s in segments[:3]] == ["SYN", "SYN-ACK", "ACK"]
    assert segments[0]["seq"] == 0 and segments[1]["ack"] == 1
    carried = [kind for s in segments for kind in s["carries"]]
    assert {"hello", "welcome", "say", "bye"} <= set(carried)
    fins = {s["direction"] for s in segments if "FIN" in s["flags"]}
    assert fins == {"client -> server", "server -> client"}
    assert "ACK" in segments[-1]["flags"]
    code, out, _ = run_lab(capsys, "handshake")
    assert code == 0 and "-> three-way handshake: segments 1, 2" in out


def test_handshake_without_root_says_so(capsys, monkeypatch) -> None:
    """Not root: one line saying why, exit 1."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, _, err = run_lab(capsys, "handshake")
    assert code == 1 and ("handshake needs root" in err or "handshake needs Linux" in err)
