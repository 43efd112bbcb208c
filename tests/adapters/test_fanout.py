"""chatsrv.fanout with real threads: deferral to a waiting batch, and the flush after the lock."""

from __future__ import annotations

import threading

import pytest

from chatsrv.fanout import MAX_DEFERRED
from chatsrv.messages import Say
from chatsrv.service import ChatService
from chatsrv.session import Session
from lanchat.wire import encode_payload
from tests.helpers import wait_until
from tests.support.fakes import Clock, FakeOutbox, member


@pytest.fixture
def service() -> ChatService:
    return ChatService(clock=Clock(), rate=0, server_name="test")


class SeesMessagesAtFlush(FakeOutbox):
    """Records how many messages it held at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def flush(self) -> None:
        super().flush()
        self.seen.append(len(self.of_type("message")))


def test_batches_that_queue_up_flush_once_after_the_last(service: ChatService) -> None:
    """Two batches waiting for the lock together: one delivery per member and one flush, after both."""
    alice, _ = member(service, "alice")
    bob = member(service, "bob")[0]
    _, carol_box = member(service, "carol", outbox=SeesMessagesAtFlush())
    seen_by_carol = carol_box.seen  # type: ignore[attr-defined]
    seen_by_carol.clear()
    puts_before = carol_box.puts
    threads = [
        threading.Thread(
            target=service.receive, args=(who, [encode_payload({"type": "say", "text": f"hi from {who.nick}"})])
        )
        for who in (alice, bob)
    ]
    with service.registry.lock:  # a batch in progress: both senders queue up behind it
        for thread in threads:
            thread.start()
        wait_until(lambda: service.fanout.waiting.count == 2, timeout=5)
    for thread in threads:
        thread.join(5)
    assert seen_by_carol == [2]
    assert carol_box.puts == puts_before + 1  # both messages in one delivery


def test_a_constant_queue_still_flushes_every_few_batches(service: ChatService) -> None:
    """However busy the lock, outboxes are flushed after at most MAX_DEFERRED deferred batches."""
    alice, alice_box = member(service, "alice")
    before = alice_box.flushes
    service.fanout.waiting.arrive()  # as if another batch were always waiting
    try:
        for number in range(MAX_DEFERRED + 1):
            service.receive(alice, [encode_payload({"type": "say", "text": f"line {number}"})])
            assert alice_box.flushes - before == (1 if number == MAX_DEFERRED else 0)
    finally:
        service.fanout.waiting.depart()


def test_outboxes_are_flushed_with_the_lock_released(service: ChatService) -> None:
    """`flush` is where adapters write to sockets: another thread can take the service lock meanwhile."""
    free_at_flush: list[bool] = []

    class Probing(FakeOutbox):
        def flush(self) -> None:
            def try_lock() -> None:
                taken = service.registry.lock.acquire(blocking=False)
                free_at_flush.append(taken)
                if taken:
                    service.registry.lock.release()

            other = threading.Thread(target=try_lock)
            other.start()
            other.join(5)

    member(service, "alice", outbox=Probing())
    assert free_at_flush == [True]


class Broken(FakeOutbox):
    def put(self, bodies: list[bytes], first_seq: int) -> bool:
        raise RuntimeError("outbox broke")


def test_a_delivery_that_raises_costs_only_that_member(service: ChatService, caplog: pytest.LogCaptureFixture) -> None:
    """A bug in one member's delivery is logged and removes that member; the others get the batch and are told."""
    _, alice_box = member(service, "alice")
    broken = service.connect(Broken(), ("10.0.0.9", 1), "tcp", 65536)
    _, bob_box = member(service, "bob")
    before = alice_box.flushes
    service.receive(broken, [encode_payload({"type": "hello", "nick": "broken"})])
    assert broken.closed and alice_box.flushes == before + 1  # joined and left: two deliveries, one flush
    for box in (alice_box, bob_box):
        assert [(p["type"], p["nick"]) for p in box.payloads[-2:]] == [("joined", "broken"), ("left", "broken")]
        assert box.last()["reason"] == "error"
    assert "delivering to broken" in caplog.text


def test_outboxes_are_flushed_even_when_a_batch_fails(service: ChatService, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that raises still delivers and flushes what it queued."""
    alice, _ = member(service, "alice")
    _, bob_box = member(service, "bob")
    before = bob_box.flushes
    real_say = service._handlers[Say]

    def say_then_fail(session: Session, say: Say, now: float) -> None:
        real_say(session, say, now)
        raise RuntimeError("a bug after queueing")

    def report_fails_too(session: Session, now: float) -> None:
        raise RuntimeError("a bug in the error path")

    monkeypatch.setitem(service._handlers, Say, say_then_fail)
    # A handler's exception is contained (internal_error); only one outside it can end the batch.
    monkeypatch.setattr(service, "_internal_error", report_fails_too)
    with pytest.raises(RuntimeError):
        service.receive(alice, [encode_payload({"type": "say", "text": "queued first"})])
    assert bob_box.flushes == before + 1 and bob_box.last()["text"] == "queued first"


def test_udp_batches_are_never_deferred(service: ChatService) -> None:
    """A UDP peer's batch delivers at once even while others wait: its `bye` must close it before its next datagram."""
    udp, _ = member(service, "dora", transport="udp")
    _, tcp_box = member(service, "ed")
    before = tcp_box.flushes
    service.fanout.waiting.arrive()  # as if a TCP handler were waiting for the lock
    try:
        service.receive(udp, [encode_payload({"type": "say", "text": "over udp"})])
        assert tcp_box.flushes == before + 1 and tcp_box.last()["text"] == "over udp"
        service.receive(udp, [encode_payload({"type": "bye"})])
        assert udp.closed and udp.outbox.closed  # type: ignore[attr-defined]
    finally:
        service.fanout.waiting.depart()
