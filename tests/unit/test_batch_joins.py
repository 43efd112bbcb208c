"""The batch_joins feature (docs/protocol.md §13): a room's joins and leaves of one interval as one payload.

An interval is held open by a pretend waiting batch (`held_open`): the fan-out
keeps a room's changes while another batch waits, and a batch that nobody
waits for releases them. The members joining inside it use UDP sessions,
whose batches never defer, so each one's welcome is delivered at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chatclient.state import ClientState
from chatsrv import fanout
from chatsrv.service import ChatService
from chatsrv.session import Session
from tests.support.fakes import Clock, FakeOutbox, connect, send


@pytest.fixture
def service() -> ChatService:
    service = ChatService(clock=Clock(), rate=0, server_name="test")
    service.fanout.clock = Clock()  # the hold's time stands still unless a test moves it
    return service


def join(service: ChatService, nick: str, batched: bool, room: str = "lobby") -> tuple[Session, FakeOutbox]:
    session, outbox = connect(service, transport="udp")
    hello: dict[str, Any] = {"type": "hello", "nick": nick, "room": room}
    if batched:
        hello["features"] = ["batch_joins"]
    send(service, session, **hello)
    assert outbox.last()["type"] == "welcome", outbox.payloads
    return session, outbox


@contextmanager
def held_open(service: ChatService) -> Iterator[None]:
    """Another batch 'waits' meanwhile, so the room's changes are kept; the next batch after it releases them."""
    service.fanout.waiting.arrive()
    try:
        yield
    finally:
        service.fanout.waiting.depart()


def after_welcome(outbox: FakeOutbox) -> list[dict[str, Any]]:
    """What a member received after its last welcome, without seq and ts."""
    last = max(i for i, p in enumerate(outbox.payloads) if p["type"] == "welcome")
    return [{k: v for k, v in p.items() if k not in ("seq", "ts")} for p in outbox.payloads[last + 1 :]]


def test_welcome_says_which_features_the_server_accepted(service: ChatService) -> None:
    """welcome.features lists what was asked for and is known; unknown names are ignored; absent when none."""
    session, outbox = connect(service)
    send(service, session, type="hello", nick="ann", features=["batch_joins", "time_travel"])
    assert outbox.last()["features"] == ["batch_joins"]
    _, old = join(service, "bob", batched=False)
    assert "features" not in old.last()
    session, outbox = connect(service)
    send(service, session, type="hello", nick="cid", features="batch_joins")
    assert outbox.last()["code"] == "bad_request" and "features" in outbox.last()["message"]


def test_a_burst_reaches_a_batched_member_as_one_payload_and_an_old_member_as_one_notice_each(
    service: ChatService,
) -> None:
    """Three joins in one interval: one `members` for the member that asked, three `joined` for the other."""
    _, new_style = join(service, "ann", batched=True)
    _, old_style = join(service, "bob", batched=False)
    with held_open(service):
        for nick in ("c1", "c2", "c3"):
            join(service, nick, batched=False)
        assert [p["changes"] for p in after_welcome(new_style)] == [[{"joined": "bob"}]]  # the rest still held
    send(service, join(service, "c4", batched=False)[0], type="ping")  # a batch nobody waits for
    assert after_welcome(new_style)[1:] == [
        {
            "type": "members",
            "room": "lobby",
            "changes": [{"joined": "c1"}, {"joined": "c2"}, {"joined": "c3"}, {"joined": "c4"}],
        },
    ]
    assert after_welcome(old_style) == [
        {"type": "joined", "nick": nick, "room": "lobby"} for nick in ("c1", "c2", "c3", "c4")
    ]


def test_a_message_said_after_a_join_is_never_seen_before_it(service: ChatService) -> None:
    """The held join goes out before the newcomer's first message, in both styles."""
    _, new_style = join(service, "ann", batched=True)
    _, old_style = join(service, "bob", batched=False)
    with held_open(service):
        carol, _ = join(service, "carol", batched=True)
        send(service, carol, type="say", text="hi all")
        send(service, carol, type="whisper", to="bob", text="psst")
    kinds = [(p["type"], p.get("text")) for p in after_welcome(new_style)]
    assert kinds == [("members", None), ("members", None), ("message", "hi all")]
    kinds = [(p["type"], p.get("text")) for p in after_welcome(old_style)]
    assert kinds == [("joined", None), ("message", "hi all"), ("whisper", "psst")]


def test_a_personal_payload_comes_after_the_changes_before_it(service: ChatService) -> None:
    """A whisper from a newcomer reaches an old member after the newcomer's join."""
    _, old_style = join(service, "bob", batched=False)
    with held_open(service):
        carol, _ = join(service, "carol", batched=False)
        send(service, carol, type="whisper", to="bob", text="psst")
    assert [p["type"] for p in after_welcome(old_style)] == ["joined", "whisper"]


def test_a_leave_and_rejoin_in_one_interval_shows_both_in_order(service: ChatService) -> None:
    """bob leaves and comes back within one interval: both are told, in order, and the client keeps bob."""
    ann_session, new_style = join(service, "ann", batched=True)
    _, old_style = join(service, "zed", batched=False)
    bob, _ = join(service, "bob", batched=False)
    with held_open(service):
        send(service, bob, type="bye")
        join(service, "bob", batched=False)
    send(service, ann_session, type="ping")
    members = [p for p in after_welcome(new_style) if p["type"] == "members"]
    assert members[-1]["changes"] == [{"left": "bob", "reason": "quit"}, {"joined": "bob"}]
    assert [(p["type"], p.get("nick")) for p in after_welcome(old_style)[-2:]] == [("left", "bob"), ("joined", "bob")]
    state = ClientState(nick="ann")
    state.apply({"type": "welcome", "nick": "ann", "room": "lobby", "users": ["ann", "bob", "zed"], "history": []})
    lines = state.apply(members[-1])
    assert [line.text for line in lines] == ["bob left (quit)", "bob joined lobby"]
    assert sorted(state.users) == ["ann", "bob", "zed"]


def test_a_newcomer_hears_only_of_changes_after_its_own_entry(service: ChatService) -> None:
    """Its welcome listed the earlier ones; the later ones come as a members payload of their own."""
    with held_open(service):
        _, dave = join(service, "dave", batched=True)
        _, erin = join(service, "erin", batched=True)
        _, fred = join(service, "fred", batched=False)
        assert erin.last()["users"] == ["dave", "erin"]
    send(service, join(service, "gus", batched=True)[0], type="ping")
    assert [p.get("changes") for p in after_welcome(dave)] == [
        [{"joined": "erin"}, {"joined": "fred"}, {"joined": "gus"}]
    ]
    assert [p.get("changes") for p in after_welcome(erin)] == [[{"joined": "fred"}, {"joined": "gus"}]]
    assert [p.get("nick") for p in after_welcome(fred)] == ["gus"]


def test_a_member_that_left_in_the_interval_gets_nothing_more(service: ChatService) -> None:
    """Changes are sent to the room's members when released: one that left meanwhile is not among them."""
    _, ann = join(service, "ann", batched=True)
    with held_open(service):
        bob, bob_box = join(service, "bob", batched=True)
        join(service, "cid", batched=True)
        send(service, bob, type="join", room="elsewhere")
    send(service, join(service, "dan", batched=True)[0], type="ping")
    assert [p.get("changes") for p in after_welcome(ann)] == [
        [{"joined": "bob"}, {"joined": "cid"}, {"left": "bob", "reason": "moved", "to": "elsewhere"}, {"joined": "dan"}]
    ]
    assert after_welcome(bob_box) == []  # its welcome to "elsewhere" was the last thing it got


def test_the_interval_is_bounded_by_its_number_of_changes(
    service: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even while batches keep waiting, MAX_CHANGES changes are released at the end of a batch."""
    monkeypatch.setattr(fanout, "MAX_CHANGES", 3)
    _, ann = join(service, "ann", batched=True)
    with held_open(service):
        for nick in ("b1", "b2", "b3", "b4"):
            join(service, nick, batched=False)
        changes = [p["changes"] for p in after_welcome(ann)]
    assert changes == [[{"joined": "b1"}, {"joined": "b2"}, {"joined": "b3"}]]


def test_the_interval_is_bounded_in_time(service: ChatService) -> None:
    """Even while batches keep waiting, changes older than MAX_HOLD_SECONDS go out at the end of a batch."""
    clock = service.fanout.clock
    assert isinstance(clock, Clock)
    _, ann = join(service, "ann", batched=True)
    with held_open(service):
        b1, _ = join(service, "b1", batched=False)
        clock.now += fanout.MAX_HOLD_SECONDS / 2
        send(service, b1, type="ping")
        assert after_welcome(ann) == []
        clock.now += fanout.MAX_HOLD_SECONDS / 2
        send(service, b1, type="ping")
        assert [p["changes"] for p in after_welcome(ann)] == [[{"joined": "b1"}]]


def test_with_a_timer_a_burst_is_held_without_waiting_batches(service: ChatService) -> None:
    """With hold_seconds set (the TCP server sets it), a room's second change within it waits for release_due."""
    clock = service.fanout.clock
    assert isinstance(clock, Clock)
    service.fanout.hold_seconds = 0.1
    _, ann = join(service, "ann", batched=True)  # its own entry counts as the room's last change
    clock.now += 0.1
    join(service, "b1", batched=False)  # a quiet room: at once
    join(service, "b2", batched=False)  # the room is in a burst now: held
    join(service, "b3", batched=False)
    assert [p["changes"] for p in after_welcome(ann)] == [[{"joined": "b1"}]]
    service.fanout.release_due()
    assert len(after_welcome(ann)) == 1  # not due yet
    clock.now += 0.1
    service.fanout.release_due()
    assert [p["changes"] for p in after_welcome(ann)] == [[{"joined": "b1"}], [{"joined": "b2"}, {"joined": "b3"}]]
    clock.now += 0.1
    service.fanout.release_due()  # nothing held: the burst is over
    join(service, "b4", batched=False)
    assert after_welcome(ann)[-1]["changes"] == [{"joined": "b4"}]  # quiet again: at once


def test_kicked_members_details_survive_the_batch() -> None:
    """A kick's `by` and `message` travel in the change; the kicked member still gets its own `left`."""
    service = ChatService(clock=Clock(), rate=0, server_name="test", op_secret="s3cret")
    teacher, _ = join(service, "teacher", batched=True)
    _, ann = join(service, "ann", batched=True)
    _, pupil_box = join(service, "pupil", batched=False)
    send(service, teacher, type="op", secret="s3cret")
    send(service, teacher, type="kick", nick="pupil", reason="spam")
    change = [p for p in after_welcome(ann) if p["type"] == "members"][-1]["changes"][-1]
    assert change == {"left": "pupil", "reason": "kicked", "by": "teacher", "message": "spam"}
    assert pupil_box.last()["type"] == "left" and pupil_box.last()["reason"] == "kicked"
    state = ClientState(nick="ann")
    state.apply({"type": "welcome", "nick": "ann", "room": "lobby", "users": ["ann", "pupil"], "history": []})
    lines = state.apply({"type": "members", "room": "lobby", "changes": [change]})
    assert [line.text for line in lines] == ["pupil was kicked by teacher: spam"] and state.users == ["ann"]
