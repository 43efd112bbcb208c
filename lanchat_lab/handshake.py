"""Scenario `handshake` (root): every TCP segment of one chat session, as a numbered ladder.

A `chatsrv` child listens on 127.0.0.1. A raw `AF_PACKET` socket on the
loopback interface (root: CAP_NET_RAW) copies every packet; then a plain
socket client joins (`hello`), reads its `welcome`, says one line, says
`bye` and closes. The ladder shows the three-way handshake (SYN, SYN-ACK,
ACK), the data segments with the lanchat messages they carry, their
acknowledgements, and the four-way teardown (FIN, ACK, FIN, ACK), with
sequence numbers relative to each side's initial one, as Wireshark shows
them.

Owns the capture socket and the pure parser `parse_segment`. No threads:
the kernel keeps the copies in the capture socket's buffer while the
session runs; they are read afterwards, polling with a deadline until both
FINs are in. Imports: lanchat.wire, lanchat_lab.bots (LabError),
lanchat_lab.serverproc.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from lanchat import platforms
from lanchat.i18n import _
from lanchat.wire import FrameDecoder, decode_payload, encode_frame, encode_payload
from lanchat_lab.bots import LabError
from lanchat_lab.serverproc import ServerProcess

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # linux/if_packet.h: on loopback each packet is seen leaving and arriving; keep one
DEADLINE = 5.0
FLAG_NAMES = [(0x02, "SYN"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK")]


@dataclass
class Segment:
    """One TCP segment as read off the wire."""

    source: int  # port
    destination: int
    seq: int
    ack: int
    flags: int
    payload: bytes

    @property
    def flag_text(self) -> str:
        return "-".join(name for bit, name in FLAG_NAMES if self.flags & bit)


def parse_segment(frame: bytes) -> Segment | None:
    """An Ethernet frame (as AF_PACKET gives it on lo) carrying IPv4 + TCP -> its Segment, else None."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    header_length = (ip[0] & 0x0F) * 4
    (total_length,) = struct.unpack_from("!H", ip, 2)
    if ip[0] >> 4 != 4 or ip[9] != 6 or len(ip) < header_length + 20:
        return None
    tcp = ip[header_length:total_length]
    source, destination, seq, ack, offset_byte, flags = struct.unpack_from("!HHIIBB", tcp, 0)
    return Segment(source, destination, seq, ack, flags, bytes(tcp[(offset_byte >> 4) * 4 :]))


SO_ATTACH_FILTER = 26  # asm-generic/socket.h


def port_filter(port: int) -> list[tuple[int, int, int, int]]:
    """Classic BPF for "IPv4, TCP, source or destination port `port`" on an Ethernet frame (tcpdump -dd style).

    The kernel then copies only this session's segments to the capture
    socket, whatever else runs on the loopback interface.
    """
    return [
        (0x28, 0, 0, 12),  # 0: ldh [12]            ethertype
        (0x15, 0, 10, 0x0800),  # 1: jeq IPv4, else drop
        (0x30, 0, 0, 23),  # 2: ldb [23]            IP protocol
        (0x15, 0, 8, 6),  # 3: jeq TCP, else drop
        (0x28, 0, 0, 20),  # 4: ldh [20]            fragment offset
        (0x45, 6, 0, 0x1FFF),  # 5: jset: a later fragment has no TCP header: drop
        (0xB1, 0, 0, 14),  # 6: ldxb 4*([14]&0xf)   x = IP header length
        (0x48, 0, 0, 14),  # 7: ldh [x+14]          source port
        (0x15, 2, 0, port),  # 8: jeq port: accept
        (0x48, 0, 0, 16),  # 9: ldh [x+16]          destination port
        (0x15, 0, 1, port),  # 10: jeq port: accept, else drop
        (0x06, 0, 0, 0x40000),  # 11: accept (up to 256 KiB)
        (0x06, 0, 0, 0),  # 12: drop
    ]


def _attach_filter(capture: socket.socket, port: int) -> None:
    program = port_filter(port)
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *instruction) for instruction in program))
    capture.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(program), ctypes.addressof(code)))
    while True:  # what arrived before the filter was attached
        try:
            capture.recv(65535)
        except BlockingIOError:
            return


def _open_capture() -> socket.socket:
    if not hasattr(socket, "AF_PACKET"):
        raise LabError(_("handshake needs Linux (AF_PACKET sockets)"))
    if os.geteuid() != 0:
        raise LabError(_("handshake needs root: it watches the loopback interface with a raw socket (try: sudo chatlab handshake)"))
    capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    # Root may exceed rmem_max: other programs' loopback traffic shares this buffer while the session runs.
    capture.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", socket.SO_RCVBUF), 16 << 20)
    capture.bind(("lo", 0))
    capture.setblocking(False)
    return capture


def _session(port: int, nick: str) -> int:
    """hello, welcome, say, bye, close; returns the client's port."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        client_port = int(sock.getsockname()[1])
        decoder = FrameDecoder(16 * 1024 * 1024)
        sock.sendall(encode_frame(encode_payload({"type": "hello", "nick": nick, "room": "handshake"})))
        kinds: list[str] = []
        deadline = time.monotonic() + DEADLINE
        while "welcome" not in kinds and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                raise LabError(_("the server closed the connection before its welcome"))
            kinds += [str(decode_payload(frame).get("type")) for frame in decoder.feed(data)]
        sock.sendall(encode_frame(encode_payload({"type": "say", "text": "hello, handshake"})))
        sock.sendall(encode_frame(encode_payload({"type": "bye"})))
        sock.shutdown(socket.SHUT_WR)  # our FIN; then read until the server closes too
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                break
    return client_port


def _collect(capture: socket.socket, server_port: int, client_port: int) -> list[tuple[float, Segment]]:
    """The session's segments, each once, until both FINs are in (or the deadline passes)."""
    ports = {server_port, client_port}
    found: list[tuple[float, Segment]] = []
    fins: set[int] = set()
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            frame, address = capture.recvfrom(65535)
        except BlockingIOError:
            if len(fins) == 2 and found and found[-1][1].flags & 0x10:
                break
            time.sleep(0.005)
            continue
        if address[2] == PACKET_OUTGOING:
            continue
        segment = parse_segment(frame)
        if segment is None or {segment.source, segment.destination} != ports:
            continue
        found.append((_arrival_time(capture), segment))
        if segment.flags & 0x01:
            fins.add(segment.source)
    return found


SIOCGSTAMP = 0x8906  # linux/sockios.h: when the kernel received the last packet read from this socket


def _arrival_time(capture: socket.socket) -> float:
    """The kernel's receive time of the packet just read (read later, so our own clock would be wrong)."""
    if platforms.LINUX_IOCTL is None:
        return time.time()
    try:
        seconds, microseconds = struct.unpack("ll", platforms.LINUX_IOCTL(capture.fileno(), SIOCGSTAMP, b"\0" * 16))
    except OSError:
        return time.time()
    return float(seconds + microseconds / 1e6)


def _describe(payload: bytes) -> list[str]:
    """The lanchat messages in one segment's payload (whole frames only; others are named as pieces)."""
    decoder = FrameDecoder(16 * 1024 * 1024)
    names = []
    for frame in decoder.feed(payload):
        try:
            names.append(str(decode_payload(frame).get("type")))
        except Exception:  # noqa: BLE001 - a segment may begin in the middle of a frame
            names.append("?")
    if decoder.buffered:
        names.append(f"part of a frame ({decoder.buffered} bytes)")
    return names


def ladder(segments: list[tuple[float, Segment]], client_port: int) -> list[dict[str, Any]]:
    """Number the segments, with times from the first and sequence numbers relative to each side's SYN."""
    initial: dict[int, int] = {}
    for _time, segment in segments:
        if segment.flags & 0x02:
            initial.setdefault(segment.source, segment.seq)
    start = segments[0][0] if segments else 0.0
    rows = []
    for number, (moment, segment) in enumerate(segments, 1):
        other = segment.destination
        relative_ack = (segment.ack - initial[other]) % (1 << 32) if other in initial and segment.flags & 0x10 else None
        rows.append(
            {
                "number": number,
                "ms": round((moment - start) * 1000, 3),
                "direction": "client -> server" if segment.source == client_port else "server -> client",
                "flags": segment.flag_text,
                "seq": (segment.seq - initial[segment.source]) % (1 << 32) if segment.source in initial else None,
                "ack": relative_ack,
                "length": len(segment.payload),
                "carries": _describe(segment.payload) if segment.payload else [],
            }
        )
    return rows


def run_handshake() -> dict[str, Any]:
    capture = _open_capture()
    with capture, ServerProcess("127.0.0.1", 0, ["--no-discovery"]) as server:
        port = server.start()
        _attach_filter(capture, port)
        client_port = _session(port, "shaker")
        segments = _collect(capture, port, client_port)
    return {"scenario": "handshake", "server_port": port, "client_port": client_port, "segments": ladder(segments, client_port)}
