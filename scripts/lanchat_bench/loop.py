"""The one event loop that drives every simulated client.

Owns: the selector (epoll) and every socket of a phase, non-blocking
connect / send / receive, the senders' pump (frames produced only while the
kernel takes them), parking of idle members, UDP housekeeping (hello retries,
pings, a stalled send window) and bounded waiting (`run_until`: every wait
ends by a condition, a deadline, an idle limit or the server's exit).
Must not import: the launchers, the scenarios or anything above them; it
sees the server only as a `Target` (address and liveness).
"""
from __future__ import annotations

import os
import selectors
import socket
import time
from collections.abc import Callable
from typing import Protocol

from .conn import LOOPBACK, Conn

RECV_SIZE = 256 * 1024
#: A sender stops producing frames while this much is still unsent.
SEND_HIGH_WATER = 256 * 1024
#: How often parked (idle) members are read, seconds.
SWEEP_EVERY = 0.2


class Target(Protocol):
    """What the loop needs of the server under test."""

    host: str
    port: int

    def alive(self) -> bool: ...


def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for a big receive buffer; as root, past net.core.rmem_max."""
    force = getattr(socket, "SO_RCVBUFFORCE", 33)
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class Loop:
    """One selector for every simulated client, plus bounded waiting."""

    def __init__(self, server: Target) -> None:
        self.server = server
        self.selector = selectors.DefaultSelector()
        self.conns: list[Conn] = []
        self.ready_count = 0
        self.failed_count = 0
        self.next_health_check = 0.0
        #: Idle members read by a periodic sweep instead of the selector.
        self.parked: list[Conn] = []
        self.next_sweep = 0.0

    # -- registration ----------------------------------------------------
    def _want(self, conn: Conn, mask: int) -> None:
        if conn.sock is None or conn.closed or mask == conn.mask:
            return
        if conn.mask == 0:
            self.selector.register(conn.sock, mask, conn)
        elif mask == 0:
            self.selector.unregister(conn.sock)
        else:
            self.selector.modify(conn.sock, mask, conn)
        conn.mask = mask

    def _update(self, conn: Conn) -> None:
        mask = selectors.EVENT_READ if conn.reading else 0
        if conn.connecting or conn.outbuf or (conn.out.to_send and not conn.udp and conn.reading):
            mask |= selectors.EVENT_WRITE
        self._want(conn, mask)

    # -- opening and closing ---------------------------------------------
    def open(self, conn: Conn, rcvbuf: int | None = None) -> None:
        """Start a non-blocking connect (TCP) or a hello (UDP)."""
        address = (self.server.host, self.server.port)
        self.conns.append(conn)
        if conn.datagram is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            set_receive_buffer(sock, rcvbuf or 4 * 1024 * 1024)
            sock.bind((conn.source or LOOPBACK, 0))
            sock.connect(address)
            sock.setblocking(False)
            conn.sock = sock
            self._update(conn)
            self.transmit(conn, conn.proto.login(conn))
            conn.datagram.tries = 1
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if conn.source is not None:
            sock.bind((conn.source, 0))
        sock.setblocking(False)
        conn.sock = sock
        error = sock.connect_ex(address)
        if error not in (0, 115):   # 115 = EINPROGRESS
            self.close(conn, f"connect: {os.strerror(error)}")
            return
        conn.connecting = True
        self._update(conn)

    def close(self, conn: Conn, why: str | None = None) -> None:
        if conn.closed:
            return
        conn.set_failed(why or "closed")
        if conn.sock is not None:
            self._want(conn, 0)
            conn.sock.close()
        conn.closed = True

    def close_all(self) -> None:
        for conn in self.conns:
            self.close(conn)
        self.selector.close()

    def park(self, conn: Conn) -> None:
        """Read an idle member every SWEEP_EVERY seconds, not on each event.

        With C members in a room every join sends C notices; reading each
        one as it comes costs the generator a recv per notice (12.5 M for
        C = 5,000) and makes it, not the server, the bottleneck.  The server
        does the same work either way: the notices wait in socket buffers.
        """
        conn.reading = False
        self._update(conn)
        self.parked.append(conn)

    def unpark_all(self) -> None:
        for conn in self.parked:
            if not conn.closed:
                conn.reading = True
                self._update(conn)
        self.parked.clear()

    def sweep(self, now: float) -> None:
        for conn in self.parked:
            if not conn.closed:
                self._readable(conn, now)

    def stop_reading(self, conn: Conn) -> None:
        """Make a member that never reads again (the stuck one)."""
        conn.reading = False
        self._update(conn)

    # -- I/O ---------------------------------------------------------------
    def transmit(self, conn: Conn, data: bytes) -> None:
        """Send bytes (TCP) or one datagram (UDP) without ever blocking."""
        if conn.closed or conn.sock is None or not data:
            return
        conn.last_send = time.perf_counter()
        if conn.datagram is not None:
            try:
                conn.sock.send(conn.datagram.stamped(data))
            except BlockingIOError:
                conn.tally.errors["udp send would block"] += 1
            except OSError as error:
                conn.tally.errors[f"udp send: {error.strerror}"] += 1
            return
        conn.outbuf += data
        if not conn.connecting:
            self._flush(conn)

    def _flush(self, conn: Conn) -> None:
        assert conn.sock is not None
        try:
            sent = conn.sock.send(conn.outbuf)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self.close(conn, f"send: {error.strerror}")
            return
        del conn.outbuf[:sent]
        self._update(conn)

    def _pump(self, conn: Conn) -> None:
        """Feed a sender's queued messages to the kernel until it pushes back."""
        assert conn.sock is not None
        out = conn.out
        if conn.datagram is not None:
            allowed = out.to_send
            if out.window:
                allowed = min(allowed, out.window - (out.sent - out.acked))
            frame = conn.datagram.stamped(out.frame)
            for _ in range(max(allowed, 0)):
                try:
                    conn.sock.send(frame)
                except BlockingIOError:
                    break
                except OSError as error:
                    conn.tally.errors[f"udp send: {error.strerror}"] += 1
                    break
                out.to_send -= 1
                out.sent += 1
            conn.last_send = time.perf_counter()
            return
        for _ in range(8):
            if out.to_send and len(conn.outbuf) < SEND_HIGH_WATER:
                batch = min(out.to_send, max(1, SEND_HIGH_WATER // len(out.frame)))
                conn.outbuf += out.frame * batch
                out.to_send -= batch
                out.sent += batch
            if not conn.outbuf:
                break
            before = len(conn.outbuf)
            self._flush(conn)
            if conn.closed or len(conn.outbuf) == before or conn.outbuf:
                break
        self._update(conn)

    def _readable(self, conn: Conn, now: float) -> None:
        assert conn.sock is not None
        if conn.udp:
            proto = conn.proto
            for _ in range(256):
                try:
                    data = conn.sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError as error:
                    conn.tally.errors[f"udp recv: {error.strerror}"] += 1
                    break
                conn.tally.bytes += len(data)
                conn.tally.last_bytes = now
                proto.datagram(conn, data, now)
            if conn.out.to_send:
                self._pump(conn)
            return
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as error:
            self.close(conn, f"recv: {error.strerror}")
            return
        if not data:
            self.close(conn, "closed by server")
            return
        conn.tally.bytes += len(data)
        conn.tally.last_bytes = now
        conn.proto.feed(conn, data, now)

    def _writable(self, conn: Conn) -> None:
        assert conn.sock is not None
        if conn.connecting:
            error = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self.close(conn, f"connect: {os.strerror(error)}")
                return
            conn.connecting = False
            self.transmit(conn, conn.proto.login(conn))
        if conn.udp:
            self._pump(conn)
            self._update(conn)
        elif conn.out.to_send or conn.outbuf:
            self._pump(conn)
        else:
            self._update(conn)

    def step(self, timeout: float) -> None:
        """Wait at most `timeout` seconds and handle whatever is ready."""
        events = self.selector.select(timeout)
        now = time.perf_counter()
        for key, mask in events:
            conn = key.data
            if mask & selectors.EVENT_WRITE and not conn.closed:
                self._writable(conn)
            if mask & selectors.EVENT_READ and not conn.closed:
                self._readable(conn, now)

    def start_sending(self, conn: Conn, data: bytes, count: int, window: int = 0) -> None:
        out = conn.out
        out.frame = data
        out.to_send += count
        out.window = window
        out.last_ack = time.perf_counter()
        self._pump(conn)

    def udp_housekeeping(self, now: float) -> None:
        """Hello retries, keep-alive pings and a stalled send window."""
        for conn in self.conns:
            session = conn.datagram
            if session is None or conn.closed:
                continue
            if not conn.ready:
                if now - session.hello_at > 0.5:
                    if session.tries >= 10:
                        conn.set_failed("no welcome after 10 hellos (UDP served?)")
                    elif not conn.failed:
                        session.tries += 1
                        self.transmit(conn, conn.proto.login(conn))
                continue
            if now - conn.last_send > session.ping_every:
                self.transmit(conn, b'{"type":"ping"}')
            out = conn.out
            if out.to_send and out.window and out.sent - out.acked >= out.window and now - out.last_ack > 0.5:
                # Echoes of the window were lost: write them off, go on.
                conn.tally.errors["udp window timeout"] += 1
                out.acked = out.sent
                out.last_ack = now
            if out.to_send:
                self._pump(conn)

    # -- bounded waiting ----------------------------------------------------
    def run_until(self, done: Callable[[], bool], deadline: float, idle: float | None = None,
                  progress: Callable[[], float] | None = None,
                  tick: Callable[[float], float | None] | None = None) -> str:
        """Run the loop until done() or a limit; returns why it stopped.

        `progress` returns a number that grows while things happen; with
        `idle`, the wait ends after that many seconds without growth.
        `tick(now)` runs every iteration and may return how long the loop
        may sleep at most.
        """
        last_value = progress() if progress else 0.0
        last_change = time.perf_counter()
        while True:
            if done():
                return "done"
            now = time.perf_counter()
            if now >= deadline:
                return "deadline"
            if self.parked and now >= self.next_sweep:
                self.next_sweep = now + SWEEP_EVERY
                self.sweep(now)
                now = time.perf_counter()
            if now >= self.next_health_check:
                self.next_health_check = now + 0.25
                if not self.server.alive():
                    return "server exited"
            if progress is not None and idle is not None:
                value = progress()
                if value != last_value:
                    last_value, last_change = value, now
                elif now - last_change > idle:
                    return "idle"
            timeout = min(0.05, deadline - now)
            if tick is not None:
                wanted = tick(now)
                if wanted is not None:
                    timeout = min(timeout, wanted)
            self.step(max(timeout, 0.0))
