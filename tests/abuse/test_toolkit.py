"""The attacker toolkit (tests/support/attacks.py) does what it says, so abuse tests can trust it.

Checked against plain sockets, not a chat server: what the server does with
an attack is for the abuse tests themselves.
"""

from __future__ import annotations

import socket
import threading
import time

from lanchat.wire import FrameDecoder, decode_payload
from tests.support.attacks import Counter, drip, flood_discovery, flood_pings, flood_rooms


def received_payloads(sock: socket.socket) -> list[dict[str, object]]:
    """Everything framed that is waiting on `sock` (its peer has finished sending)."""
    decoder = FrameDecoder(1 << 20)
    sock.settimeout(0.2)
    payloads = []
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        payloads.extend(decode_payload(frame) for frame in decoder.feed(data))
    return payloads


def test_flood_pings_sends_paced_well_formed_pings() -> None:
    """About per_second × seconds pings, each a valid frame with the asked id size."""
    attacker, server = socket.socketpair()
    with attacker, server:
        sent = flood_pings(attacker, threading.Event(), per_second=200, seconds=0.25, id_size=100)
        attacker.shutdown(socket.SHUT_WR)
        pings = received_payloads(server)
    assert 30 <= sent <= 52 and len(pings) == sent
    assert all(ping["type"] == "ping" and len(str(ping["id"])) == 100 for ping in pings)


def test_flood_rooms_joins_new_rooms_and_speaks_in_each() -> None:
    """`rooms` joins, each followed by a say, all to different rooms."""
    attacker, server = socket.socketpair()
    with attacker, server:
        asked = flood_rooms(attacker, threading.Event(), rooms=50, per_second=10_000, seconds=5, prefix="zz")
        attacker.shutdown(socket.SHUT_WR)
        payloads = received_payloads(server)
    joins = [payload["room"] for payload in payloads if payload["type"] == "join"]
    assert asked == 50 and len(set(joins)) == 50 and len(payloads) == 100


def test_flood_discovery_is_paced_and_stoppable() -> None:
    """Probes arrive at about the asked rate; the stop event ends the flood early."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
        target.bind(("127.0.0.1", 0))
        stop = threading.Event()
        counter = Counter()
        started = time.monotonic()
        flooder = threading.Thread(
            target=flood_discovery,
            args=(target.getsockname(), stop),
            kwargs={"per_second": 200, "seconds": 30, "counter": counter},
        )
        flooder.start()
        deadline = time.monotonic() + 5
        while counter.value < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        flooder.join(5)
        elapsed = time.monotonic() - started
        target.settimeout(0.2)
        probes = 0
        try:
            while True:
                if b'"discover"' in target.recv(2048):
                    probes += 1
        except TimeoutError:
            pass
    assert not flooder.is_alive() and elapsed < 5
    assert counter.value >= 20 and probes == counter.value and counter.value <= 200 * elapsed + 1


def test_drip_sends_one_byte_at_a_time_and_stops_when_closed() -> None:
    """Each byte comes alone; when the server closes, drip returns early."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        result: list[float] = []
        dripper = threading.Thread(
            target=lambda: result.append(
                drip(listener.getsockname(), threading.Event(), data=b"abcdef", interval=0.2, seconds=30)
            )
        )
        dripper.start()
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(5)
            assert [connection.recv(10) for _ in range(3)] == [b"a", b"b", b"c"]
        dripper.join(5)
    assert not dripper.is_alive() and result and result[0] < 5
