"""The peer-progress probe: how much of our data the peer's TCP has acknowledged.

One function, `acknowledgements`, the default `Probe` of `chatsrv.outbox`.
It reads Linux's `TCP_INFO` (the platform layer, `lanchat.platforms`, says
once at import whether this system has it); where that is missing (macOS,
Windows, an old kernel, a closed or non-TCP socket) it returns None, and
backpressure then counts the bytes the kernel takes as progress instead
(coarser: a full socket buffer hides a reader that stopped for as long as
the buffer takes bytes). Other systems' probes belong here, behind the
same signature.

Imports: the standard library and `lanchat.platforms`.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from lanchat import platforms

# (bytes of ours the peer has acknowledged in all, seconds since its last ACK)
Acknowledged = tuple[int, float]
Probe = Callable[[socket.socket], "Acknowledged | None"]

# Linux's struct tcp_info (linux/tcp.h) only ever grows at its end, so these
# offsets hold on every kernel since 4.1 (tcpi_bytes_acked).
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
    info = platforms.read_tcp_info(sock, _TCP_INFO_SIZE)
    if info is None:
        return None
    acked = _BYTES_ACKED.unpack_from(info, _BYTES_ACKED_AT)[0]
    quiet_ms = _LAST_ACK_RECV.unpack_from(info, _LAST_ACK_RECV_AT)[0]
    return acked, quiet_ms / 1000
