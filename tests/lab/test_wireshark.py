"""The Wireshark dissector (tools/wireshark/lanchat.lua) read by tshark on a pcap written from a scripted exchange."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from lanchat.wire import encode_frame, encode_payload, with_seq

ROOT = Path(__file__).resolve().parents[2]
DISSECTOR = ROOT / "tools" / "wireshark" / "lanchat.lua"
TSHARK = shutil.which("tshark")

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")

CLIENT, SERVER = (b"\x7f\x00\x00\x01", 40000), (b"\x7f\x00\x00\x01", 9009)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip(protocol: int, source: bytes, destination: bytes, body: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0x4000, 64, protocol, 0, source, destination)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return b"\0" * 12 + b"\x08\x00" + header + body  # Ethernet: zero addresses, IPv4


class Capture:
    """Writes a pcap (Ethernet) of TCP segments and UDP datagrams between CLIENT and SERVER."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.seq = {"c": 1000, "s": 5000}

    def tcp(self, side: str, flags: int, data: bytes = b"") -> None:
        (source, sport), (destination, dport) = (CLIENT, SERVER) if side == "c" else (SERVER, CLIENT)
        other = "s" if side == "c" else "c"
        segment = (
            struct.pack("!HHIIBBHHH", sport, dport, self.seq[side], self.seq[other], 5 << 4, flags, 65535, 0, 0) + data
        )
        self.seq[side] += len(data) + (1 if flags & 0x03 else 0)  # SYN and FIN count one
        self.packets.append(_ip(6, source, destination, segment))

    def udp(self, side: str, data: bytes) -> None:
        (source, sport), (destination, dport) = (CLIENT, SERVER) if side == "c" else (SERVER, CLIENT)
        header = struct.pack("!HHHH", sport, dport, 8 + len(data), 0)
        self.packets.append(_ip(17, source, destination, header + data))

    def write(self, path: Path) -> None:
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
        for number, packet in enumerate(self.packets):
            out.append(struct.pack("<IIII", 1_700_000_000, number * 1000, len(packet), len(packet)) + packet)
        path.write_bytes(b"".join(out))


def frame(payload: dict[str, object], seq: int | None = None) -> bytes:
    body = encode_payload(payload)
    return encode_frame(with_seq(body, seq) if seq is not None else body)


def fields(pcap: Path, *names: str) -> list[list[str]]:
    command = [
        TSHARK or "tshark",
        "-n",
        "-X",
        f"lua_script:{DISSECTOR}",
        "-r",
        str(pcap),
        "-Y",
        "lanchat",
        "-T",
        "fields",
    ]
    command += ["-E", "occurrence=a", "-E", "aggregator=|"]
    for name in names:
        command += ["-e", name]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Lua: Error" not in done.stderr and "lua_load" not in done.stderr, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def test_tcp_frames_are_reassembled_and_split_and_udp_datagrams_read(tmp_path: Path) -> None:
    """A hello cut across two segments, two frames in one segment, a welcome with nested messages, and UDP."""
    capture = Capture()
    capture.tcp("c", 0x02)  # SYN
    capture.tcp("s", 0x12)  # SYN-ACK
    capture.tcp("c", 0x10)  # ACK
    hello = frame({"type": "hello", "nick": "amy", "room": "lobby"})
    capture.tcp("c", 0x18, hello[:7])  # the header and 3 bytes of JSON
    capture.tcp("c", 0x18, hello[7:])
    history = [{"type": "message", "id": 1, "room": "lobby", "from": "bob", "text": "older", "seq": 99}]
    welcome = frame({"type": "welcome", "nick": "amy", "room": "lobby", "users": ["amy", "bob"], "history": history}, 1)
    message = frame({"type": "message", "id": 2, "room": "lobby", "from": "bob", "text": 'hi "amy"', "ts": 1.5}, 2)
    capture.tcp("s", 0x18, welcome + message)  # sticky: two frames in one segment
    capture.udp("c", encode_payload({"type": "hello", "nick": "李雷", "room": "maths"}))
    capture.udp("s", with_seq(encode_payload({"type": "challenge", "cookie": "abc"}), 1))
    pcap = tmp_path / "lanchat.pcap"
    capture.write(pcap)

    rows = fields(
        pcap,
        "frame.number",
        "lanchat.type",
        "lanchat.seq",
        "lanchat.nick",
        "lanchat.room",
        "lanchat.from",
        "lanchat.text",
    )
    by_frame = {row[0]: row[1:] for row in rows}
    assert by_frame["5"] == ["hello", "", "amy", "lobby", "", ""]  # reassembled in the segment that completed it
    assert "4" not in by_frame  # the first piece alone is no message
    assert by_frame["6"] == ["welcome|message", "1|2", "amy", "lobby|lobby", "bob", 'hi "amy"']  # not the history's
    assert by_frame["7"] == ["hello", "", "李雷", "maths", "", ""]
    assert by_frame["8"] == ["challenge", "1", "", "", "", ""]


def test_native_byte_order_header_is_marked_malformed(tmp_path: Path) -> None:
    """A tutorial client's struct.pack('i') header reads as 553648128: shown as a bad length, not waited for."""
    capture = Capture()
    capture.tcp("c", 0x02)
    capture.tcp("s", 0x12)
    capture.tcp("c", 0x10)
    body = encode_payload({"type": "hello", "nick": "tutorial"})
    capture.tcp("c", 0x18, struct.pack("<i", len(body)) + body)
    pcap = tmp_path / "native.pcap"
    capture.write(pcap)
    command = [TSHARK or "tshark", "-n", "-X", f"lua_script:{DISSECTOR}", "-r", str(pcap), "-Y", "lanchat"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = int.from_bytes(struct.pack("<i", len(body)), "big")
    assert f"bad length {expected} (little-endian it is {len(body)}: struct.pack('i') instead of '!I'?)" in done.stdout
