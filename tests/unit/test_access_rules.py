"""Who may join at all, in ChatService with a fake outbox and a fake clock (no sockets).

Covers docs/protocol.md, "Extension: operators and access": the password
(missing, wrong, right, and repeated wrong ones slowed down per address) and
the allow and deny lists of addresses.
"""

from __future__ import annotations

from typing import Any

import pytest

from chatsrv.access import Access, FailureTracker, parse_network
from chatsrv.service import ChatService
from lanchat.wire import ProtocolError
from tests.support.fakes import Clock as FakeClock
from tests.unit.test_operators import Member, _ports


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def password_service(clock: FakeClock) -> ChatService:
    return ChatService(clock=clock, rate=0, access=Access(password="class101"))


def hello(service: ChatService, host: str, **fields: Any) -> Member:
    member = Member(service, (host, next(_ports)))
    member.send(type="hello", nick=f"u{next(_ports)}", **fields)
    return member


def test_password_missing_wrong_and_right(clock: FakeClock) -> None:
    """No password or a wrong one: auth_failed and closed; the right one: welcome."""
    service = password_service(clock)
    missing = hello(service, "127.0.0.2")
    [error] = missing.take()
    assert error["code"] == "auth_failed" and "needs a password" in error["message"] and missing.outbox.closed
    wrong = hello(service, "127.0.0.2", password="class102")
    [error] = wrong.take()
    assert error["code"] == "auth_failed" and error["message"] == "wrong password" and wrong.outbox.closed
    right = hello(service, "127.0.0.2", password="class101")
    assert right.take()[0]["type"] == "welcome" and not right.outbox.closed


def test_repeated_wrong_passwords_are_slowed_down(clock: FakeClock) -> None:
    """After three wrong passwords an address waits 1, 2, 4 ... s; even the right one is refused meanwhile."""
    service = password_service(clock)
    for _ in range(3):
        assert hello(service, "127.0.0.5", password="guess").take()[0]["message"] == "wrong password"
    assert "try again in 1 s" in hello(service, "127.0.0.5", password="guess").take()[0]["message"]
    clock.now += 1
    assert hello(service, "127.0.0.5", password="guess").take()[0]["message"] == "wrong password"  # 4th: now wait 2 s
    waiting = hello(service, "127.0.0.5", password="class101").take()[0]
    assert waiting["code"] == "auth_failed" and "try again in 2 s" in waiting["message"]
    assert hello(service, "127.0.0.6", password="class101").take()[0]["type"] == "welcome"  # others unaffected
    clock.now += 2
    assert hello(service, "127.0.0.5", password="class101").take()[0]["type"] == "welcome"
    assert service.access.failures.failures("127.0.0.5") == 0


def test_failure_tracker_doubles_the_wait_and_forgets() -> None:
    """Waits double up to the cap; quiet addresses are forgotten; memory is bounded."""
    tracker = FailureTracker(free_tries=1, max_wait=4, forget_after=100, max_hosts=3)
    waits = []
    for attempt in range(5):
        tracker.failed("a", 0.0)
        waits.append(tracker.wait_left("a", 0.0))
    assert waits == [1, 2, 4, 4, 4]
    assert tracker.wait_left("a", 100.0) == 0 and tracker.failures("a") == 0
    for host in "bcde":
        tracker.failed(host, 200.0)
    assert tracker.failures("b") == 0 and tracker.failures("e") == 1


@pytest.mark.parametrize(
    ("allow", "deny", "host", "admitted"),
    [
        ([], [], "127.0.0.2", True),
        (["127.0.0.0/30"], [], "127.0.0.2", True),
        (["127.0.0.0/30"], [], "127.0.0.9", False),
        ([], ["127.0.0.2"], "127.0.0.2", False),
        ([], ["127.0.0.2"], "127.0.0.3", True),
        (["127.0.0.0/8"], ["127.0.0.2/32"], "127.0.0.2", False),
        (["127.0.0.0/8"], [], "::ffff:127.0.0.5", True),
        (["127.0.0.0/8"], [], "::1", False),
        (["::1"], [], "::1", True),
    ],
)
def test_allow_and_deny(clock: FakeClock, allow: list[str], deny: list[str], host: str, admitted: bool) -> None:
    """Deny wins over allow; with any allow, only allowed networks get in; IPv4-mapped addresses match IPv4 rules."""
    access = Access(allow=[parse_network(n) for n in allow], deny=[parse_network(n) for n in deny])
    service = ChatService(clock=clock, access=access)
    if admitted:
        Member(service, (host, 1))
    else:
        with pytest.raises(ProtocolError) as refused:
            Member(service, (host, 1))
        assert refused.value.code == "not_allowed" and refused.value.fatal
        assert not service.sessions
