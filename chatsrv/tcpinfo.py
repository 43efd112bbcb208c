"""The peer-progress probe: how much of our data the peer's TCP has acknowledged.

One function, `acknowledgements`, the default `Probe` of `chatsrv.outbox`.
It reads Linux's `TCP_INFO`; where that is missing (another system, an old
kernel, a closed or non-TCP socket) it returns None, and backpressure then
counts the bytes the kernel takes as progress instead. Other systems'
probes belong here, behind the same signature.

Imports: the standard library only.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

# (bytes of ours the peer has acknowledged in all, seconds since its last ACK)
Acknowledged = tuple[int, float]
Probe = Callable[[socket.socket], "Acknowledged | None"]

# Linux's struct tcp_info (linux/tcp.h) only ever grows at its end, so these
# offsets hold on every kernel since 4.1 (tcpi_bytes_acked).
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_INFO_SIZE = 128
_LAST_ACK_RECV = struct.Struct("=I")  # tcpi_last_ack_recv: ms since the last ACK arrived
_LAST_ACK_RECV_AT = 56
_BYTES_ACKED = struct.Struct("=Q")  # tcpi_bytes_acked: bytes of ours the peer has acknowledged
_BYTES_ACKED_AT = 120


def acknowledgements(sock: socket.socket) -> Acknowledged | None:
    """What the peer's TCP has acknowledged: (bytes in all, seconds since the last ACK).

    The kernel counts these itself, whatever this process sent or is still
    sending, so they measure the reader and nothing else. None where the
    kernel cannot tell (not Linux, an old kernel, or the socket is closed).
    """
    if _TCP_INFO is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_SIZE)
    except (OSError, ValueError):
        return None
    if len(info) < _TCP_INFO_SIZE:
        return None
    acked = _BYTES_ACKED.unpack_from(info, _BYTES_ACKED_AT)[0]
    quiet_ms = _LAST_ACK_RECV.unpack_from(info, _LAST_ACK_RECV_AT)[0]
    return acked, quiet_ms / 1000
