"""The TCP adapter's I/O rules: recv sizes, what counts as a lagging reader's progress, when paused senders go on.

Real TCP over 127.0.0.1 for the kernel's acknowledgement counter; a fake probe and a fake clock
(the outbox's seams) for the dating rules; a scripted reader for the waiting rule.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from chatsrv.backpressure import KEPT_UP_LOOK, MIN_PROGRESS, POLL, Backpressure
from chatsrv.outbox import State, TCPOutbox, WriteCombiner
from chatsrv.tcp import BURST_RECV_SIZE, RECV_SIZE, configure_socket, next_recv_size
from chatsrv.tcpinfo import Acknowledged, acknowledgements
from tests.helpers import wait_until

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO is read on Linux")


def test_a_full_recv_makes_the_next_one_big_and_a_short_one_small_again() -> None:
    """Idle members wait with a small buffer; a flood is read in big batches."""
    assert RECV_SIZE < BURST_RECV_SIZE
    assert next_recv_size(RECV_SIZE, RECV_SIZE) == BURST_RECV_SIZE
    assert next_recv_size(BURST_RECV_SIZE, BURST_RECV_SIZE) == BURST_RECV_SIZE
    assert next_recv_size(100, BURST_RECV_SIZE) == RECV_SIZE
    assert next_recv_size(100, RECV_SIZE) == RECV_SIZE


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(server side, peer) over loopback; the peer has a tiny receive buffer and reads only when told."""
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.socket()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer.connect(listener.getsockname())
    server_side, _ = listener.accept()
    listener.close()
    configure_socket(server_side, send_buffer=65536)
    try:
        yield server_side, peer
    finally:
        peer.close()
        server_side.close()


@linux_only
def test_kernel_buffering_is_not_progress_but_acknowledged_bytes_are(tcp_pair) -> None:
    """A peer that reads nothing shows no progress once its buffers are full; reading a little shows some."""
    server_side, peer = tcp_pair
    outbox = TCPOutbox(server_side, WriteCombiner(), limit=0)
    outbox.put([b'{"type":"notice","text":"' + b"x" * 1000 + b'"}'] * 1000, 1)  # ~1 MB: far beyond both buffers
    outbox.flush()  # the kernel takes what fits; a writer thread blocks on the rest
    wait_for_closed_window(server_side)
    settled_at = outbox.progress(time.monotonic())  # the peer's buffer is full: what it took has been looked at
    assert outbox.progress(time.monotonic() + 1000) == settled_at, "nothing was acknowledged since the last look"

    peer.settimeout(5)
    got = 0
    while got < 64 * 1024:
        got += len(peer.recv(65536))
    # The writer's next send or this look sees the acknowledgements.
    wait_until(lambda: outbox.progress(time.monotonic()) > settled_at, timeout=5)
    peer.shutdown(socket.SHUT_RDWR)
    outbox.cut()
    outbox.join(5)


def wait_for_closed_window(sock: socket.socket) -> None:
    """Wait until the peer's window is closed: its acknowledged count stops growing."""
    readings: list[int] = []

    def settled() -> bool:
        answer = acknowledgements(sock)
        readings.append(answer[0] if answer else -1)
        return len(readings) > 3 and readings[-1] == readings[-2] == readings[-3] > 0

    wait_until(settled, timeout=5, interval=0.02)


class ScriptedProbe:
    """Stands in for the TCP_INFO probe: answers what the test says the peer acknowledged, and counts looks."""

    def __init__(self, acked: int = 0, quiet: float = 0.0) -> None:
        self.acked = acked
        self.quiet = quiet  # seconds since the peer's last ACK
        self.looks = 0

    def __call__(self, sock: socket.socket) -> Acknowledged | None:
        self.looks += 1
        return self.acked, self.quiet


class FakeClock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_dated_by_the_last_acknowledgement_not_by_the_look(tcp_pair) -> None:
    """Looked at late, a member's progress is dated when its peer last acknowledged: a stuck one shows its age."""
    server_side, _peer = tcp_pair
    probe = ScriptedProbe(acked=64 * 1024, quiet=0.3)  # the last ACK: 0.3 s ago
    outbox = TCPOutbox(server_side, WriteCombiner(), limit=0, probe=probe)
    looked_at = time.monotonic() + 10.0
    assert outbox.progress(looked_at) == looked_at - 0.3


def test_a_member_that_keeps_up_is_looked_at_once_per_kept_up_look_not_per_send() -> None:
    """Sends the kernel takes whole cost no extra system call, but for one look every KEPT_UP_LOOK (not every POLL)."""
    clock = FakeClock()
    server_side, peer = socket.socketpair()
    with server_side, peer:
        probe = ScriptedProbe()  # answers: as on a Linux TCP socket
        outbox = TCPOutbox(server_side, WriteCombiner(), limit=1 << 20, probe=probe, clock=clock)
        looks_at_start = probe.looks  # the outbox asks once whether the probe answers at all

        def send_twenty(first_seq: int) -> None:
            for seq in range(first_seq, first_seq + 20):
                outbox.put([b'{"type":"notice","text":"hi"}'], seq)
                outbox.flush()

        send_twenty(1)
        assert outbox.pending_bytes == 0 and probe.looks == looks_at_start
        clock.now += POLL
        send_twenty(21)
        assert probe.looks == looks_at_start + 1  # the first look is due POLL after the start
        clock.now += POLL
        send_twenty(41)
        assert probe.looks == looks_at_start + 1, "a member that keeps up is not looked at every POLL"
        clock.now += KEPT_UP_LOOK - POLL
        send_twenty(61)
        assert probe.looks == looks_at_start + 2


def test_a_trickle_of_acknowledgements_is_not_reading(tcp_pair) -> None:
    """A peer that stopped still ACKs a few KB (its buffer, a delayed ACK, window probes): not progress; 16 KiB is."""
    server_side, _peer = tcp_pair
    clock = FakeClock()
    probe = ScriptedProbe()
    outbox = TCPOutbox(server_side, WriteCombiner(), limit=0, probe=probe, clock=clock)
    before = clock.now
    clock.now += 1.0
    for _ in range(3):
        probe.acked += 3_000
        assert outbox.progress(clock.now) == before
    probe.acked += MIN_PROGRESS
    assert outbox.progress(clock.now) == clock.now


def test_without_acknowledgements_bytes_the_kernel_takes_are_progress() -> None:
    """Where the probe cannot tell (no TCP_INFO), every send the kernel takes dates progress, and looks cost nothing."""
    clock = FakeClock()
    server_side, peer = socket.socketpair()
    with server_side, peer:
        looks: list[socket.socket] = []

        def no_answer(sock: socket.socket) -> Acknowledged | None:
            looks.append(sock)
            return None

        outbox = TCPOutbox(server_side, WriteCombiner(), limit=1 << 20, probe=no_answer, clock=clock)
        started = clock.now
        clock.now += 5.0
        assert outbox.progress(clock.now) == started  # nothing sent yet: no progress
        outbox.put([b'{"type":"notice","text":"hi"}'], 1)
        outbox.flush()
        assert outbox.progress(clock.now) == started + 5.0
        assert len(looks) == 1  # asked once, at the start


def test_bytes_waiting_only_for_the_next_send_are_not_lagging() -> None:
    """Above the soft limit but not yet sent (the kernel has room): nobody is paused; once sent, nothing lags."""
    server_side, peer = socket.socketpair()
    with server_side, peer:
        server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        backpressure = Backpressure()
        outbox = TCPOutbox(server_side, WriteCombiner(), limit=40_000, backpressure=backpressure)
        assert outbox.put([b'{"type":"notice","text":"' + b"x" * 1000 + b'"}'] * 20, 1)  # ~20 KB > soft limit 10 KB
        assert outbox.pending_bytes > outbox.soft_limit
        assert backpressure.lagging_count == 0
        outbox.flush()
        assert outbox.pending_bytes == 0 and backpressure.lagging_count == 0


@linux_only
def test_acknowledgements_of_a_closed_socket_are_unknown() -> None:
    """A closed socket gives None instead of raising."""
    sock = socket.socket()
    sock.close()
    assert acknowledgements(sock) is None


class ScriptedOutbox:
    """Stands in for a TCPOutbox (a LaggingReader): its peer progresses on every look while `acknowledging` is set."""

    def __init__(self, acknowledging: bool) -> None:
        self.acknowledging = acknowledging
        self.is_lagging = True
        self.last_progress = time.monotonic()
        self.looks = 0
        self.third_look = threading.Event()

    def progress(self, now: float) -> float:
        self.looks += 1
        if self.acknowledging:
            self.last_progress = now
        if self.looks == 3:
            self.third_look.set()
        return self.last_progress


def test_senders_stop_waiting_for_a_member_that_acknowledges_nothing() -> None:
    """Paused senders go on after about `stall`, long before `max_pause`, when the lagging peer takes nothing."""
    backpressure = Backpressure(max_pause=30.0, stall=0.05, poll=0.01)
    stuck = ScriptedOutbox(acknowledging=False)
    backpressure.update(stuck)
    started = time.monotonic()
    backpressure.wait()
    assert time.monotonic() - started < 10.0
    assert stuck.looks >= 1


def test_senders_wait_while_a_lagging_member_keeps_acknowledging() -> None:
    """While the peer keeps taking data senders stay paused, looking again and again, until it catches up."""
    backpressure = Backpressure(max_pause=30.0, stall=0.05, poll=0.01)
    draining = ScriptedOutbox(acknowledging=True)
    backpressure.update(draining)
    caught_up: list[bool] = []

    def catch_up() -> None:
        draining.third_look.wait(10)
        caught_up.append(True)
        draining.is_lagging = False
        backpressure.update(draining)

    helper = threading.Thread(target=catch_up)
    helper.start()
    backpressure.wait()
    helper.join(10)
    assert caught_up == [True] and draining.looks >= 3


class SteppingClock:
    """A clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_pause_ends_at_max_pause_even_while_the_member_keeps_acknowledging() -> None:
    """However steadily a lagging member reads, one batch's pause is bounded by max_pause (on the injected clock)."""
    clock = SteppingClock(step=1.0)
    backpressure = Backpressure(max_pause=5.0, stall=2.0, poll=0.001, clock=clock)
    draining = ScriptedOutbox(acknowledging=True)
    backpressure.update(draining)
    started, real_start = clock.now, time.monotonic()
    backpressure.wait()
    assert draining.looks >= 3  # looked again and again while it drained ...
    assert clock.now - started <= 5.0 + 2 * clock.step  # ... and gave up at max_pause ...
    assert time.monotonic() - real_start < 4.0  # ... on the injected clock, not the real one


def test_a_member_stalled_longer_than_stall_pauses_nobody() -> None:
    """A lagging member whose last progress is older than `stall` is looked at once, and nobody waits."""
    clock = FakeClock()
    backpressure = Backpressure(max_pause=30.0, stall=0.05, poll=10.0, clock=clock)
    stuck = ScriptedOutbox(acknowledging=False)
    stuck.last_progress = clock.now - 0.06
    backpressure.update(stuck)
    started = time.monotonic()
    backpressure.wait()
    assert stuck.looks == 1 and time.monotonic() - started < 5.0  # a poll of 10 s was never waited


def test_updates_arriving_out_of_order_leave_the_last_state() -> None:
    """The call for "started lagging" may arrive after the one for "stopped": the member is still not lagging."""
    backpressure = Backpressure()
    member = ScriptedOutbox(acknowledging=True)
    member.is_lagging = True  # the state changes twice under the outbox's lock ...
    member.is_lagging = False
    backpressure.update(member)  # ... and the two calls come in either order
    backpressure.update(member)
    assert backpressure.lagging_count == 0
    backpressure.wait()  # returns at once: nobody to wait for


@linux_only
def test_a_cut_member_no_longer_lags(tcp_pair) -> None:
    """A lagging member whose connection is cut leaves the lagging set, so nobody waits for it again."""
    server_side, _peer = tcp_pair
    backpressure = Backpressure()
    outbox = TCPOutbox(server_side, WriteCombiner(), limit=1 << 22, backpressure=backpressure)
    outbox.put([b'{"type":"notice","text":"' + b"x" * 1000 + b'"}'] * 3000, 1)  # ~3 MB: the writer blocks
    outbox.flush()
    outbox.put([b'{"type":"notice","text":"more"}'], 3001)
    assert outbox.is_lagging and backpressure.lagging_count == 1
    outbox.cut()
    outbox.join(5)
    assert not outbox.is_lagging and backpressure.lagging_count == 0


def test_a_flood_is_handed_to_the_service_in_batches_bigger_than_one_small_read(make_server) -> None:
    """100 KB of frames sent at once reach the service in batches above RECV_SIZE: the handler reads bigger."""
    from lanchat.wire import encode_frame, encode_payload
    from tests.helpers import Client

    server = make_server("--rate", "0")
    batch_bytes: list[int] = []
    receive = server.service.receive

    def recording(session, bodies):  # type: ignore[no-untyped-def]
        batch_bytes.append(sum(len(body) + 4 for body in bodies))
        receive(session, bodies)

    server.service.receive = recording  # type: ignore[method-assign]
    with Client(server.port) as sender:
        sender.join("flood")
        frame = encode_frame(encode_payload({"type": "say", "text": "z" * 900}))
        sender.send_raw(frame * 110)  # ~100 KB in one write
        wait_until(lambda: sum(batch_bytes) >= len(frame) * 110, timeout=10)
    assert max(batch_bytes) > 2 * RECV_SIZE  # one small read plus a partial frame left over stays below


def read_until(sock: socket.socket, done: Callable[[], bool], timeout: float = 5.0) -> int:
    """Read (and drop) what arrives until `done()`; returns the bytes read."""
    sock.settimeout(0.05)
    got = 0
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not done in time"
        try:
            got += len(sock.recv(1 << 16))
        except TimeoutError:
            pass
    return got


def test_outbox_states_follow_the_diagram() -> None:
    """OPEN -> DRAINING (the kernel refused bytes) -> OPEN (all sent) -> DRAINING -> CLOSING (close) -> CUT."""
    server_side, peer = socket.socketpair()
    with server_side, peer:
        server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        outbox = TCPOutbox(server_side, WriteCombiner(), limit=1 << 22, probe=ScriptedProbe())
        notice = b'{"type":"notice","text":"' + b"x" * 1000 + b'"}'
        assert outbox.state is State.OPEN
        outbox.put([b'{"type":"notice","text":"hi"}'], 1)
        outbox.flush()
        assert outbox.state is State.OPEN and outbox.pending_bytes == 0  # the kernel took it all
        peer.recv(1 << 16)
        outbox.put([notice] * 500, 2)  # ~500 KB: far beyond both buffers
        outbox.flush()
        assert outbox.state is State.DRAINING
        read_until(peer, lambda: outbox.state is State.OPEN)
        assert outbox.pending_bytes == 0
        outbox.put([notice] * 500, 502)
        outbox.flush()
        assert outbox.state is State.DRAINING
        outbox.close()
        assert outbox.state is State.CLOSING
        assert outbox.put([notice], 1002), "puts while closing are ignored, not refused"
        read_until(peer, lambda: outbox.state is State.CUT)
        outbox.join(5)


def test_an_overflowed_outbox_refuses_puts_and_is_cut_on_close() -> None:
    """OPEN -> OVERFLOWED (a put over the limit) -> CUT (close sends nothing more); a cut outbox ignores puts."""
    server_side, peer = socket.socketpair()
    with server_side, peer:
        outbox = TCPOutbox(server_side, WriteCombiner(), limit=10_000, probe=ScriptedProbe())
        notice = b'{"type":"notice","text":"' + b"x" * 1000 + b'"}'
        assert outbox.put([notice] * 5, 1)
        assert not outbox.put([notice] * 6, 6)
        assert outbox.state is State.OVERFLOWED
        assert not outbox.put([b'{"type":"notice","text":"hi"}'], 12), "nothing more for a member that overflowed"
        outbox.close()
        assert outbox.state is State.CUT
        assert outbox.put([notice], 13)
        peer.settimeout(5)
        assert peer.recv(1 << 16) == b"", "the queued bytes are dropped with the connection"


def test_a_writer_thread_that_cannot_start_cuts_its_member_and_the_flush_goes_on(monkeypatch) -> None:
    """No thread left (RuntimeError from start): that member is cut, not left DRAINING with no writer for ever,
    and the combiner still sends to the other members marked in the same flush."""
    import chatsrv.outbox

    class NoThread(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(chatsrv.outbox.threading, "Thread", NoThread)
    stuck_side, stuck_peer = socket.socketpair()
    fine_side, fine_peer = socket.socketpair()
    with stuck_side, stuck_peer, fine_side, fine_peer:
        stuck_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        combiner = WriteCombiner()
        stuck = TCPOutbox(stuck_side, combiner, limit=1 << 22, probe=ScriptedProbe())
        fine = TCPOutbox(fine_side, combiner, limit=1 << 22, probe=ScriptedProbe())
        notice = b'{"type":"notice","text":"' + b"x" * 1000 + b'"}'
        stuck.put([notice] * 500, 1)  # far beyond the buffers: a writer would be needed
        fine.put([b'{"type":"notice","text":"hi"}'], 1)
        stuck.flush()
        assert stuck.state is State.CUT
        fine_peer.settimeout(5)
        assert b'"hi"' in fine_peer.recv(1 << 16)
        stuck.join(1)  # no thread to join: returns
