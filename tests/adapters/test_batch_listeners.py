"""ChatService batch listeners with real threads: a batch that another is waiting to follow leaves its sends to it."""

from __future__ import annotations

import threading

import pytest

from chatsrv.messages import Say
from chatsrv.service import MAX_DEFERRED, ChatService
from chatsrv.session import Session
from tests.helpers import wait_until
from tests.unit.test_service import Clock, FakeOutbox, encode_payload, member


@pytest.fixture
def service() -> ChatService:
    return ChatService(clock=Clock(), rate=0, server_name="test")


def test_batches_that_queue_up_call_the_listeners_once_after_the_last(service: ChatService) -> None:
    """Two batches waiting for the lock together: one delivery per member and one listener call, after both."""
    alice, _ = member(service, "alice")
    bob, carol_box = member(service, "bob")[0], member(service, "carol")[1]
    seen_by_carol: list[int] = []
    service.batch_listeners.append(lambda: seen_by_carol.append(len(carol_box.of_type("message"))))
    puts_before = carol_box.puts
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
    assert carol_box.puts == puts_before + 1  # both messages in one delivery


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


class Broken(FakeOutbox):
    def put(self, bodies: list[bytes], first_seq: int) -> bool:
        raise RuntimeError("outbox broke")


def test_a_delivery_that_raises_costs_only_that_member(service: ChatService, caplog: pytest.LogCaptureFixture) -> None:
    """A bug in one member's delivery is logged and removes that member; the others get the batch and are told."""
    _, alice_box = member(service, "alice")
    broken = service.connect(Broken(), ("10.0.0.9", 1), "tcp", 65536)
    _, bob_box = member(service, "bob")
    calls: list[int] = []
    service.batch_listeners.append(lambda: calls.append(1))
    service.receive(broken, [encode_payload({"type": "hello", "nick": "broken"})])
    assert broken.closed and calls == [1]
    for box in (alice_box, bob_box):
        assert [(p["type"], p["nick"]) for p in box.payloads[-2:]] == [("joined", "broken"), ("left", "broken")]
        assert box.last()["reason"] == "error"
    assert "delivering to broken" in caplog.text


def test_listeners_run_even_when_a_batch_fails(service: ChatService, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that raises still delivers and hands its queued sends to the listeners."""
    alice, _ = member(service, "alice")
    _, bob_box = member(service, "bob")
    calls: list[int] = []
    service.batch_listeners.append(lambda: calls.append(1))
    real_say = service._handlers[Say]

    def say_then_fail(session: Session, say: Say, now: float) -> None:
        real_say(session, say, now)
        raise RuntimeError("a bug after queueing")

    monkeypatch.setitem(service._handlers, Say, say_then_fail)
    with pytest.raises(RuntimeError):
        service.receive(alice, [encode_payload({"type": "say", "text": "queued first"})])
    assert calls == [1] and bob_box.last()["text"] == "queued first"


def test_udp_batches_are_never_deferred(service: ChatService) -> None:
    """A UDP peer's batch delivers at once even while others wait: its `bye` must close it before its next datagram."""
    udp, _ = member(service, "dora", transport="udp")
    _, tcp_box = member(service, "ed")
    calls: list[int] = []
    service.batch_listeners.append(lambda: calls.append(1))
    service._entering.append(None)  # as if a TCP handler were waiting for the lock
    try:
        service.receive(udp, [encode_payload({"type": "say", "text": "over udp"})])
        assert calls == [1] and tcp_box.last()["text"] == "over udp"
        service.receive(udp, [encode_payload({"type": "bye"})])
        assert udp.closed and udp.outbox.closed  # type: ignore[attr-defined]
    finally:
        service._entering.clear()
