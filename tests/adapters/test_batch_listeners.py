"""ChatService batch listeners with real threads: a batch that another is waiting to follow leaves its sends to it."""

from __future__ import annotations

import threading

import pytest

from chatsrv.service import MAX_DEFERRED, ChatService
from tests.helpers import wait_until
from tests.unit.test_service import Clock, FakeOutbox, encode_payload, member


@pytest.fixture
def service() -> ChatService:
    return ChatService(clock=Clock(), rate=0, server_name="test")


def test_batches_that_queue_up_call_the_listeners_once_after_the_last(service: ChatService) -> None:
    """Two batches waiting for the lock together: one listener call, made after both were delivered."""
    alice, _ = member(service, "alice")
    bob, carol_box = member(service, "bob")[0], member(service, "carol")[1]
    seen_by_carol: list[int] = []
    service.batch_listeners.append(lambda: seen_by_carol.append(len(carol_box.of_type("message"))))
    threads = [
        threading.Thread(target=service.receive, args=(who, [encode_payload({"type": "say", "text": f"hi from {who.nick}"})]))
        for who in (alice, bob)
    ]
    with service.registry.lock:  # a batch in progress: both senders queue up behind it
        for thread in threads:
            thread.start()
        wait_until(lambda: len(service._entering) == 2, timeout=5)
    for thread in threads:
        thread.join(5)
    assert seen_by_carol == [2]


def test_a_constant_queue_still_flushes_every_few_batches(service: ChatService) -> None:
    """However busy the lock, the listeners run after at most MAX_DEFERRED deferred batches."""
    alice, _ = member(service, "alice")
    calls: list[int] = []
    service.batch_listeners.append(lambda: calls.append(1))
    service._entering.append(None)  # as if another batch were always waiting
    try:
        for number in range(MAX_DEFERRED + 1):
            service.receive(alice, [encode_payload({"type": "say", "text": f"line {number}"})])
            assert len(calls) == (1 if number == MAX_DEFERRED else 0)
    finally:
        service._entering.clear()


def test_listeners_run_even_when_a_batch_fails(service: ChatService) -> None:
    """A batch that raises still hands its queued sends to the listeners."""

    class Broken(FakeOutbox):
        def put(self, bodies: list[bytes], first_seq: int) -> bool:
            raise RuntimeError("outbox broke")

    member(service, "alice")
    calls: list[int] = []
    service.batch_listeners.append(lambda: calls.append(1))
    broken = service.connect(Broken(), ("10.0.0.9", 1), "tcp", 65536)
    with pytest.raises(RuntimeError):
        service.receive(broken, [encode_payload({"type": "hello", "nick": "broken"})])
    assert calls == [1]
