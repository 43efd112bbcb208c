"""The latency scenario's second probe: a receiver thread with a blocking socket per sampled member.

An independent harness timed a few receivers, each in its own thread doing
blocking `recv` calls, while the load loop drove everything else. This probe
does the same with already-joined connections: `ThreadProbe.start` takes each
sampled connection out of the loop's selector, gives it a timeout (so that its
socket is blocking) and a thread of its own; every message that thread reads
is timed twice:
- `woken`: when the thread ran again after `recv` (what such a harness sees:
  the kernel's wake-up of the thread and the benchmark's own GIL are in it);
- `arrived`: the kernel's receive timestamp of the bytes (SO_TIMESTAMPNS,
  taken when the server's segment reached the socket: no thread wake-up and no
  GIL of this process in it).
The difference between the two is the receiving side's share of the tail.

Owns: the receiver threads (started and joined here; none outlives `stop`).
Must not import: the loop, the launchers or anything above them (it sees a
connection through `Conn` and its codec only).
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Sequence

from .conn import Conn, Tally

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; the control message has the same number
TIMESPEC = struct.Struct("@ll")
RECV_SIZE = 64 * 1024
#: How long one blocking recv waits before the thread looks at its stop flag, seconds.
POLL = 0.2


class Receiver:
    """One sampled member's thread and what it measured."""

    def __init__(self, conn: Conn, stop: threading.Event) -> None:
        self.conn = conn
        self.stop = stop
        self.tally = Tally(want_latency=True)
        #: Per message: seconds from its scheduled send to the kernel's receive timestamp.
        self.arrived: list[float] = []
        #: Messages read without a kernel timestamp (left out of `arrived`).
        self.unstamped = 0
        self.error: str | None = None
        self.thread = threading.Thread(target=self.run, name=f"probe-{conn.nick}", daemon=True)

    def run(self) -> None:
        conn, sock = self.conn, self.conn.sock
        assert sock is not None
        latencies = self.tally.latencies
        assert latencies is not None
        # realtime (the kernel's stamp) -> perf_counter (the texts' scheduled times)
        offset = time.time() - time.perf_counter()
        while not self.stop.is_set() and not conn.closed:
            try:
                data, ancillary, _flags, _addr = sock.recvmsg(RECV_SIZE, 64)
            except TimeoutError:
                continue
            except OSError as error:
                self._failed(f"recv: {error.strerror}")
                return
            woken = time.perf_counter()
            if not data:
                self._failed("closed by server")
                return
            arrived = self._stamp(ancillary, offset)
            before = len(latencies)
            conn.tally.bytes += len(data)
            conn.proto.feed(conn, data, woken)
            if arrived is None:
                self.unstamped += len(latencies) - before
            else:
                late = woken - arrived
                self.arrived.extend(latency - late for latency in latencies[before:])

    def _failed(self, why: str) -> None:
        if not self.stop.is_set():   # after stop, the loop closing the socket is no error
            self.error = why

    def _stamp(self, ancillary: Sequence[tuple[int, int, bytes]], offset: float) -> float | None:
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= TIMESPEC.size:
                seconds, nanos = TIMESPEC.unpack_from(payload)
                return seconds + nanos / 1e9 - offset
        return None


class ThreadProbe:
    """Receiver threads for `conns` (joined TCP members the caller's loop no longer reads)."""

    def __init__(self, conns: Sequence[Conn]) -> None:
        self.stop_flag = threading.Event()
        self.receivers = [Receiver(conn, self.stop_flag) for conn in conns]

    def start(self) -> None:
        for receiver in self.receivers:
            conn = receiver.conn
            assert conn.sock is not None and not conn.udp
            conn.tally = receiver.tally
            conn.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            conn.sock.settimeout(POLL)   # blocking (with a timeout), as in the independent harness
            receiver.thread.start()

    def received(self) -> int:
        return sum(receiver.tally.received for receiver in self.receivers)

    def stop(self) -> None:
        """Ask every thread to stop and join it (each ends within POLL seconds)."""
        self.stop_flag.set()
        for receiver in self.receivers:
            if receiver.thread.is_alive():
                receiver.thread.join(POLL * 5 + 1)

    def woken(self) -> list[float]:
        return sorted(x for receiver in self.receivers for x in receiver.tally.latencies or [])

    def arrived(self) -> list[float]:
        """Kernel-stamped latencies of the messages whose read came with a stamp."""
        return sorted(x for receiver in self.receivers for x in receiver.arrived)

    def unstamped(self) -> int:
        return sum(receiver.unstamped for receiver in self.receivers)

    def errors(self) -> list[str]:
        return [receiver.error for receiver in self.receivers if receiver.error]
