"""An attacker's toolkit for the abuse tests: what a student with a script would run.

Each attack is a plain function on real sockets, bounded in time and volume
(every loop ends by a deadline or a count, and a `stop` event ends it early),
so a test can run it in a thread beside honest clients and always join it.
Rates are paced with a monotonic clock, not by sending as fast as possible,
so that a test measures the server's policy and not the machine's speed.

Imports only the standard library, lanchat.wire and chatclient.discovery (the
real probe); never chatsrv (an attacker has no access to it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

from chatclient.discovery import probe
from lanchat.wire import encode_frame, encode_payload

Address = tuple[str, int]


def _paced(per_second: float, seconds: float, stop: threading.Event, total: int | None = None) -> Iterator[int]:
    """Yield send counts so that about `per_second` sends happen, for at most `seconds` (or `total` sends)."""
    start = time.monotonic()
    deadline = start + seconds
    sent = 0
    while not stop.is_set() and (total is None or sent < total):
        now = time.monotonic()
        if now >= deadline:
            return
        due = int((now - start) * per_second) + 1 - sent
        if due <= 0:
            stop.wait(min(0.01, deadline - now))
            continue
        if total is not None:
            due = min(due, total - sent)
        yield due
        sent += due


class Counter:
    """How many sends an attack made so far, for a test that waits until the attack is in full swing."""

    def __init__(self) -> None:
        self.value = 0


def flood_discovery(
    server: Address,
    stop: threading.Event,
    *,
    per_second: float = 900,
    seconds: float = 10,
    source: str = "127.0.0.1",
    counter: Counter | None = None,
) -> int:
    """Send full-size `discover` probes from one socket at `per_second`; answers are not read. Returns probes sent."""
    data = probe()
    sent = 0
    counter = counter if counter is not None else Counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        for due in _paced(per_second, seconds, stop):
            for _ in range(due):
                try:
                    sock.sendto(data, server)
                except OSError:
                    continue  # a full send buffer or an ICMP error: an attacker just goes on
                sent += 1
                counter.value = sent
    return sent


def flood_pings(
    sock: socket.socket, stop: threading.Event, *, per_second: float = 1000, seconds: float = 5, id_size: int = 16
) -> int:
    """Send `ping`s with an `id` of `id_size` characters on a joined TCP socket; returns pings sent."""
    sent = 0
    for due in _paced(per_second, seconds, stop):
        frames = b"".join(
            encode_frame(encode_payload({"type": "ping", "id": "p" * id_size, "t": float(sent + n)}))
            for n in range(due)
        )
        try:
            sock.sendall(frames)
        except OSError:
            return sent  # the server closed us: the flood is over
        sent += due
    return sent


def flood_rooms(
    sock: socket.socket,
    stop: threading.Event,
    *,
    rooms: int = 1000,
    per_second: float = 5000,
    seconds: float = 10,
    prefix: str = "r",
) -> int:
    """On a joined TCP socket, `join` `rooms` new rooms and say one line in each (so each has history).

    Returns the number of rooms asked for.
    """
    asked = 0
    for due in _paced(per_second, seconds, stop, total=rooms):
        frames = b"".join(
            encode_frame(encode_payload({"type": "join", "room": f"{prefix}{asked + n}"}))
            + encode_frame(encode_payload({"type": "say", "text": "x"}))
            for n in range(due)
        )
        try:
            sock.sendall(frames)
        except OSError:
            return asked
        asked += due
    return asked


def drip(
    server: Address, stop: threading.Event, *, data: bytes | None = None, interval: float = 1.0, seconds: float = 30
) -> float:
    """Open a TCP connection and send `data` (default: a hello frame) one byte every `interval` seconds.

    Stops when the server closes the connection, when `data` is all sent, at
    `seconds`, or on `stop`. Returns how long the connection stayed open.
    """
    payload = data if data is not None else encode_frame(encode_payload({"type": "hello", "nick": "slowloris"}))
    start = time.monotonic()
    deadline = start + seconds
    with socket.create_connection(server, timeout=5) as sock:
        for byte in payload:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if _closed_within(sock, min(interval, max(0.0, deadline - time.monotonic())), stop):
                break
            if stop.is_set() or time.monotonic() >= deadline:
                break
    return time.monotonic() - start


def _closed_within(sock: socket.socket, wait: float, stop: threading.Event) -> bool:
    """True if the server closes `sock` within `wait` seconds (anything it sends meanwhile is read and dropped)."""
    deadline = time.monotonic() + wait
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(min(left, 0.1))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return True
        if not data:
            return True
    return False
