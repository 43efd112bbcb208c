"""Scenario `handshake` (root): every TCP segment of one chat session, as a numbered ladder.

A `chatsrv` child listens on 127.0.0.1. A raw `AF_PACKET` socket on the
loopback interface (root: CAP_NET_RAW) copies every packet; then a plain
socket client joins (`hello`), reads its `welcome`, says one line, says
`bye` and closes. The ladder shows the three-way handshake (SYN, SYN-ACK,
ACK), the data segments with the lanchat messages they carry, their
acknowledgements, and the four-way teardown (FIN, ACK, FIN, ACK), with
sequence numbers relative to each side's initial one, as Wireshark shows
them.

With `--netns-loss N` the session runs between two network namespaces
(`lanchat_lab.netns`) instead: the server's side drops exactly the first N
SYNs, and the capture on the client's veth shows each SYN again after TCP's
retransmission timeout (1 s; classic TCP doubles it on every retry, Linux
since 6.5 keeps 1 s for the first few SYN retries, sysctl
net.ipv4.tcp_syn_linear_timeouts). Segments
sent again are marked in the ladder.

Owns the capture socket and the pure parser `parse_segment`. No threads:
the kernel keeps the copies in the capture socket's buffer while the
session runs; they are read afterwards, polling with a deadline until both
FINs are in. Imports: lanchat.wire, lanchat_lab.bots (LabError),
lanchat_lab.netns, lanchat_lab.serverproc.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from lanchat.i18n import _
from lanchat.wire import FrameDecoder, decode_payload, encode_frame, encode_payload
from lanchat_lab import netns
from lanchat_lab.bots import LabError, LabUnavailable
from lanchat_lab.serverproc import ServerProcess

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # linux/if_packet.h: on loopback each packet is seen leaving and arriving; keep one
DEADLINE = 5.0
MAX_SYN_DROPS = 3  # with doubling timeouts three drops already cost 1 + 2 + 4 = 7 s
CONNECT_TIMEOUT = 1 + 2 + 4 + 8 + 5.0  # the worst case: a kernel that doubles the wait after every dropped SYN
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
SO_TIMESTAMP = 29  # asm-generic/socket.h (Python does not name it)


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


def _check_capture_possible() -> None:
    if not hasattr(socket, "AF_PACKET"):
        raise LabUnavailable(_("handshake needs AF_PACKET sockets (Linux) to watch the segments"))
    if os.geteuid() != 0:
        raise LabError(
            _("handshake needs root: it watches the loopback interface with a raw socket (try: sudo chatlab handshake)")
        )


def _open_capture(device: str = "lo") -> socket.socket:
    _check_capture_possible()
    capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    # Root may exceed rmem_max: other programs' loopback traffic shares this buffer while the session runs.
    capture.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", socket.SO_RCVBUF), 16 << 20)
    # Ask the kernel to stamp every packet as it passes: without this, a
    # packet leaving through a veth may carry no stamp and be given the time
    # it was read, long after the session.
    capture.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    capture.bind((device, 0))
    capture.setblocking(False)
    return capture


def _session(sock: socket.socket, server: tuple[str, int], nick: str) -> int:
    """connect, hello, welcome, say, bye, close; returns the client's port."""
    with sock:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(server)
        sock.settimeout(DEADLINE)
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


def _collect(
    capture: socket.socket, server_port: int, client_port: int, skip_outgoing: bool
) -> list[tuple[float, Segment]]:
    """The session's segments, each once, until both FINs are in (or the deadline passes).

    On loopback every packet passes the interface twice, leaving and arriving
    (`skip_outgoing`); on a veth each packet is seen once, in its direction.
    """
    ports = {server_port, client_port}
    found: list[tuple[float, Segment]] = []
    fins: set[int] = set()
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            frame, ancillary, _flags, address = capture.recvmsg(65535, 64)
        except BlockingIOError:
            if len(fins) == 2 and found and found[-1][1].flags & 0x10:
                break
            time.sleep(0.005)
            continue
        if skip_outgoing and address[2] == PACKET_OUTGOING:
            continue
        segment = parse_segment(frame)
        if segment is None or {segment.source, segment.destination} != ports:
            continue
        found.append((_stamp(ancillary), segment))
        if segment.flags & 0x01:
            fins.add(segment.source)
    return found


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    """When the kernel saw the packet (SO_TIMESTAMP's struct timeval).

    The packets are read after the session, so our own clock would be wrong.
    """
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(data) >= struct.calcsize("ll"):
            seconds, microseconds = struct.unpack_from("ll", data)
            return float(seconds + microseconds / 1e6)
    return time.time()


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
    seen: set[tuple[int, int, int, bytes]] = set()
    for number, (moment, segment) in enumerate(segments, 1):
        # The same SYN, FIN or data again from the same side: sent again after its timeout.
        key = (segment.source, segment.seq, segment.flags, segment.payload)
        repeated = key in seen and bool(segment.payload or segment.flags & 0x03)
        seen.add(key)
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
                "retransmission": repeated,
            }
        )
    return rows


def run_handshake(syn_drops: int | None = None) -> dict[str, Any]:
    """One session on loopback, or (syn_drops not None) between two namespaces, its first SYNs dropped."""
    if syn_drops is not None:
        return _run_in_namespaces(syn_drops)
    capture = _open_capture()
    with capture, ServerProcess("127.0.0.1", 0, ["--no-discovery"]) as server:
        port = server.start()
        _attach_filter(capture, port)
        client_port = _session(socket.socket(socket.AF_INET, socket.SOCK_STREAM), ("127.0.0.1", port), "shaker")
        segments = _collect(capture, port, client_port, skip_outgoing=True)
    return {
        "scenario": "handshake",
        "mode": "loopback",
        "server_port": port,
        "client_port": client_port,
        "segments": ladder(segments, client_port),
    }


def _run_in_namespaces(syn_drops: int) -> dict[str, Any]:
    if not 0 <= syn_drops <= MAX_SYN_DROPS:
        raise LabError(f"handshake --netns-loss is how many SYNs to drop, 0 to {MAX_SYN_DROPS}, not {syn_drops}")
    _check_capture_possible()
    with netns.NamespacePair(syn_drops=syn_drops) as pair:
        prefix = pair.exec_prefix(pair.server_ns)
        with ServerProcess(pair.server_address, 0, ["--no-discovery"], prefix=prefix) as server:
            port = server.start()
            with netns.inside(pair.client_ns):
                capture = _open_capture(pair.client_device)
                client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with capture:
                _attach_filter(capture, port)
                client_port = _session(client, (pair.server_address, port), "shaker")
                segments = _collect(capture, port, client_port, skip_outgoing=False)
            dropped = pair.dropped(pair.server_ns, "syn-dropped")
    rows = ladder(segments, client_port)
    # The rule drops the first `dropped` SYNs, so they are the client's first SYNs in the capture.
    client_syns = [row for row in rows if row["flags"] == "SYN" and row["direction"] == "client -> server"]
    for row in client_syns[:dropped]:
        row["dropped"] = True
    return {
        "scenario": "handshake",
        "mode": "netns",
        "server_port": port,
        "client_port": client_port,
        "syn_drops": syn_drops,
        "syns_dropped": dropped,
        "segments": rows,
    }
