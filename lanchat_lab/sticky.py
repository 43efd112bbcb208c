"""Scenario `sticky`: the sticky-packet (粘包) lesson, with real sockets on loopback.

1. TCP, naive: N small `send`s and one big one; a receiver that trusts
   `recv(1024)` to return one message gets merged messages and the big one
   cut in pieces.
2. TCP, framed: the same sends with the 4-byte length prefix of docs/protocol.md §2,
   read with the same `recv(1024)` through `lanchat.wire.FrameDecoder`:
   exactly the N messages.
3. UDP: one `recvfrom` per datagram, boundaries kept; the big datagram,
   larger than the receive buffer, is cut off (MSG_TRUNC) and the rest is gone.

With `nagle=True` the sender keeps Nagle's algorithm on (no TCP_NODELAY):
while data it sent is not yet acknowledged, the kernel holds small writes
back and sends them together, one of the classic causes of merging. The
result counts the data segments the sender's kernel really sent
(`TCP_INFO` tcpi_data_segs_out) beside the number of `send` calls, in both
modes (Linux also merges small writes with Nagle off, "autocorking", while
an earlier segment still waits in the device queue).

Owns the sockets of this demonstration (no server, no threads: the sender
writes everything first, like a receiver that is busy for a moment, so the
result is the same every run) and the pure analysis `pieces_of_chunks`.
Imports: lanchat.wire.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Any

from lanchat import platforms
from lanchat.wire import FrameDecoder, encode_frame

TIMEOUT = 5.0


def make_messages(count: int, big: int = 0) -> list[bytes]:
    """`count` short messages, then (if `big`) one message of `big` bytes."""
    messages = [f"message {number} from the sender;".encode() for number in range(count)]
    if big:
        head = f"message {count} is a big one ({big} bytes):".encode()
        messages.append((head + b"=" * big)[:big])
    return messages


def pieces_of_chunks(message_sizes: list[int], chunk_sizes: list[int]) -> list[list[tuple[int, str, int]]]:
    """Which part of which message each received chunk holds.

    For every chunk: a list of (message index, part, bytes) with part one of
    "whole", "start", "middle", "end". Pure arithmetic on the two lists of
    sizes: where the sender's boundaries fall inside the receiver's chunks.
    """
    result: list[list[tuple[int, str, int]]] = []
    message = 0
    used = 0  # bytes of `message` already placed in earlier chunks
    for chunk_size in chunk_sizes:
        room = chunk_size
        pieces: list[tuple[int, str, int]] = []
        while room > 0 and message < len(message_sizes):
            left = message_sizes[message] - used
            take = min(left, room)
            if used == 0 and take == message_sizes[message]:
                part = "whole"
            elif used == 0:
                part = "start"
            elif take == left:
                part = "end"
            else:
                part = "middle"
            pieces.append((message, part, take))
            room -= take
            used += take
            if used == message_sizes[message]:
                message += 1
                used = 0
        result.append(pieces)
    return result


def data_segments_sent(sock: socket.socket) -> int | None:
    """Segments carrying data this socket's kernel sent (Linux `TCP_INFO` tcpi_data_segs_out), or None.

    Offset 156 in `struct tcp_info` (linux/tcp.h, stable ABI, Linux 4.6 and later).
    """
    raw = platforms.read_tcp_info(sock, 160)
    if raw is None:
        return None
    (segments,) = struct.unpack_from("I", raw, 156)
    return int(segments)


def autocorking() -> bool | None:
    """Whether Linux's tcp_autocorking is on (None where /proc does not say)."""
    try:
        return Path("/proc/sys/net/ipv4/tcp_autocorking").read_text().strip() != "0"
    except OSError:
        return None


def _tcp_pair(nagle: bool = False) -> tuple[socket.socket, socket.socket]:
    """A connected (sender, receiver) pair over 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = socket.create_connection(listener.getsockname()[:2], timeout=TIMEOUT)
        receiver, _ = listener.accept()
    receiver.settimeout(TIMEOUT)
    # Nagle merges small sends on the sender's side as well. By default it is
    # switched off, so the merging we see is the receiver's; --nagle keeps it.
    sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0 if nagle else 1)
    return sender, receiver


def _receive_all(receiver: socket.socket, size: int) -> list[bytes]:
    chunks: list[bytes] = []
    while True:
        data = receiver.recv(size)
        if not data:
            return chunks
        chunks.append(data)


def tcp_naive(messages: list[bytes], recv_size: int, nagle: bool = False) -> dict[str, Any]:
    sender, receiver = _tcp_pair(nagle)
    with sender, receiver:
        for message in messages:
            sender.send(message)
        sender.shutdown(socket.SHUT_WR)  # half-close: the receiver reads until end of stream
        chunks = _receive_all(receiver, recv_size)
        segments = data_segments_sent(sender)
    pieces = pieces_of_chunks([len(m) for m in messages], [len(c) for c in chunks])
    split = {index for chunk in pieces for index, part, _ in chunk if part != "whole"}
    return {
        "recv_size": recv_size,
        "chunks": [
            {"size": len(chunk), "text": chunk.decode(errors="replace"), "pieces": [list(piece) for piece in parts]}
            for chunk, parts in zip(chunks, pieces)
        ],
        "merged_chunks": sum(1 for parts in pieces if len(parts) > 1),
        "split_messages": len(split),
        "send_calls": len(messages),
        "segments_sent": segments,
    }


def tcp_framed(messages: list[bytes], recv_size: int, nagle: bool = False) -> dict[str, Any]:
    sender, receiver = _tcp_pair(nagle)
    decoder = FrameDecoder()
    received: list[bytes] = []
    recvs = []
    with sender, receiver:
        for message in messages:
            sender.send(encode_frame(message))
        sender.shutdown(socket.SHUT_WR)
        for chunk in _receive_all(receiver, recv_size):
            frames = decoder.feed(chunk)
            received.extend(frames)
            recvs.append({"size": len(chunk), "frames": len(frames), "held": decoder.buffered})
        segments = data_segments_sent(sender)
    return {
        "recv_size": recv_size,
        "send_calls": len(messages),
        "segments_sent": segments,
        "recvs": recvs,
        "messages": [frame.decode(errors="replace") for frame in received],
        "exact": received == messages,
    }


def udp(messages: list[bytes], recv_size: int) -> dict[str, Any]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    received = []
    truncated = []
    with sender, receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(TIMEOUT)
        address = receiver.getsockname()
        for message in messages:
            sender.sendto(message, address)
        for _ in messages:
            # recvmsg, unlike recvfrom, reports MSG_TRUNC: the datagram was longer than our buffer.
            data, _, flags, _ = receiver.recvmsg(recv_size)
            received.append(data)
            truncated.append(bool(flags & socket.MSG_TRUNC))
    return {
        "recv_size": recv_size,
        "datagrams": len(messages),
        "received": len(received),
        "sizes": [len(data) for data in received],
        "truncated": [index for index, cut in enumerate(truncated) if cut],
        "boundaries_kept": all(data == message[: len(data)] for data, message in zip(received, messages)),
        "exact": received == messages,
    }


def run_sticky(count: int = 60, recv_size: int = 1024, big: int = 3000, nagle: bool = False) -> dict[str, Any]:
    messages = make_messages(count, big)
    return {
        "scenario": "sticky",
        "messages": len(messages),
        "big": big,
        "nagle": nagle,
        "autocorking": autocorking(),
        "sent_bytes": sum(len(m) for m in messages),
        "message_sizes": [len(m) for m in messages],
        "tcp_naive": tcp_naive(messages, recv_size, nagle),
        "tcp_framed": tcp_framed(messages, recv_size, nagle),
        "udp": udp(messages, recv_size),
    }
