"""Teacher controls in ChatService, with a fake outbox and a fake clock (no sockets).

Covers docs/protocol.md, "Extension: operators and access": for each
operator command, that it works for an operator, is refused to anyone else,
and reaches exactly the people it should. The password and the address
rules are in tests/unit/test_access_rules.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chatsrv.service import ChatService
from chatsrv.session import Session
from lanchat.wire import ProtocolError, encode_payload
from tests.support.fakes import Clock as FakeClock
from tests.support.fakes import FakeOutbox

SECRET = "s3cret-op"


class Member:
    """One connected session and what it received."""

    def __init__(self, service: ChatService, address: tuple[str, int]) -> None:
        self.service = service
        self.outbox = FakeOutbox()
        self.session: Session = service.connect(self.outbox, address, "tcp", 65536)

    def send(self, **payload: Any) -> None:
        self.service.receive(self.session, [encode_payload(payload)])

    def take(self) -> list[dict[str, Any]]:
        """Everything received since the last take."""
        got, self.outbox.payloads = self.outbox.payloads, []
        return got

    def kinds(self) -> list[tuple[Any, ...]]:
        return [(p["type"], p.get("event") or p.get("reason") or p.get("code")) for p in self.take()]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(clock: FakeClock) -> ChatService:
    return ChatService(clock=clock, rate=0, op_secret=SECRET)


_ports = iter(range(40000, 60000))


def join(service: ChatService, nick: str, room: str = "lobby", host: str = "127.0.0.1", **hello: Any) -> Member:
    member = Member(service, (host, next(_ports)))
    member.send(type="hello", nick=nick, room=room, **hello)
    assert member.take()[0]["type"] == "welcome"
    return member


def settle(*members: Member) -> None:
    for member in members:
        member.take()


@pytest.fixture
def cast(service: ChatService) -> dict[str, Member]:
    """teacher (operator) and bob, carol in the lobby; dave in another room."""
    members = {
        "teacher": join(service, "teacher"),
        "bob": join(service, "bob", host="127.0.0.2"),
        "carol": join(service, "carol", host="127.0.0.3"),
        "dave": join(service, "dave", room="other", host="127.0.0.4"),
    }
    members["teacher"].send(type="op", secret=SECRET)
    settle(*members.values())
    return members


# --- operator status -------------------------------------------------------------


def test_op_with_the_right_secret_tells_the_room_only(service: ChatService) -> None:
    """A right secret makes an operator, and its room (not other rooms) sees a notice."""
    teacher, bob, dave = join(service, "teacher"), join(service, "bob"), join(service, "dave", room="other")
    settle(teacher, bob)
    teacher.send(type="op", secret=SECRET)
    assert service.moderation.is_operator(teacher.session)
    for member in (teacher, bob):
        [notice] = member.take()
        assert notice["type"] == "notice" and notice["event"] == "op" and notice["nick"] == "teacher"
    assert dave.take() == []


def test_wrong_secret_is_refused_to_the_sender_only(service: ChatService) -> None:
    """A wrong secret gets not_allowed, counts down the tries, and nobody else hears of it."""
    bob, carol = join(service, "bob"), join(service, "carol")
    settle(bob)
    bob.send(type="op", secret="guess")
    [error] = bob.take()
    assert error["code"] == "not_allowed" and "4 tries left" in error["message"]
    assert not service.moderation.is_operator(bob.session)
    assert carol.take() == []


def test_five_wrong_secrets_close_the_connection(service: ChatService, clock: FakeClock) -> None:
    """The fifth wrong secret closes the connection; earlier ones leave it open."""
    bob = join(service, "bob", host="127.0.0.9")
    for attempt in range(1, 6):
        clock.now += 120  # beyond any per-address wait: only the per-connection count applies
        bob.send(type="op", secret=f"guess{attempt}")
        assert bob.outbox.closed == (attempt == 5)
    assert bob.take()[-1]["code"] == "not_allowed"
    assert service.registry.find("bob") is None


def test_wrong_secrets_from_one_address_are_slowed_down(service: ChatService, clock: FakeClock) -> None:
    """After a few wrong secrets, an address must wait before even a right one is looked at."""
    for attempt in range(3):
        guesser = join(service, f"g{attempt}", host="127.0.0.7")
        guesser.send(type="op", secret="nope")
    late = join(service, "late", host="127.0.0.7")
    late.send(type="op", secret=SECRET)
    [error] = late.take()
    assert error["code"] == "not_allowed" and "try again in" in error["message"]
    assert not service.moderation.is_operator(late.session)
    other = join(service, "other", host="127.0.0.8")
    other.send(type="op", secret=SECRET)
    assert service.moderation.is_operator(other.session)
    clock.now += 2
    late.send(type="op", secret=SECRET)
    assert service.moderation.is_operator(late.session)


# --- every command is refused to non-operators ------------------------------------

OPERATOR_PAYLOADS = [
    {"type": "kick", "nick": "carol"},
    {"type": "kick", "nick": "carol", "ban": True},
    {"type": "unban", "address": "127.0.0.3"},
    {"type": "mute", "nick": "carol"},
    {"type": "unmute", "nick": "carol"},
    {"type": "lock"},
    {"type": "unlock"},
    {"type": "slow", "seconds": 5},
    {"type": "announce", "text": "free pizza"},
    {"type": "topic", "text": "homework"},
]


@pytest.mark.parametrize("payload", OPERATOR_PAYLOADS, ids=lambda p: p["type"] + ("+ban" if p.get("ban") else ""))
def test_operator_commands_are_refused_to_others(
    service: ChatService, cast: dict[str, Member], payload: dict[str, Any]
) -> None:
    """A non-operator gets not_allowed, nothing changes, and nobody else hears anything."""
    bob = cast["bob"]
    bob.send(**payload)
    [error] = bob.take()
    assert error["type"] == "error" and error["code"] == "not_allowed" and "/op" in error["message"]
    assert not bob.outbox.closed
    for name in ("teacher", "carol", "dave"):
        assert cast[name].take() == [], name
    moderation = service.moderation
    assert not moderation.mutes and not moderation.locked and not moderation.slow and not service.access.banned
    assert service.registry.find("carol") is not None
    assert service.registry.room("lobby").topic is None  # type: ignore[union-attr]


def test_refusals_do_not_count_as_errors_in_a_row(service: ChatService, cast: dict[str, Member]) -> None:
    """A member refused by a rule many times (more than max_errors) stays connected."""
    bob = cast["bob"]
    for _ in range(service.max_errors + 5):
        bob.send(type="lock")
    assert not bob.outbox.closed and service.registry.find("bob") is not None


# --- kick and ban -----------------------------------------------------------------


def test_kick_tells_the_room_and_the_target_then_closes(service: ChatService, cast: dict[str, Member]) -> None:
    """The target's room sees left/kicked with who and why; the target is told, then closed."""
    cast["teacher"].send(type="kick", nick="bob", reason="spamming")
    for name in ("teacher", "carol", "bob"):
        [left] = cast[name].take()
        assert left == {
            **left,
            "type": "left",
            "nick": "bob",
            "reason": "kicked",
            "by": "teacher",
            "message": "spamming",
        }
    assert cast["bob"].outbox.closed
    assert cast["dave"].take() == []
    assert service.registry.find("bob") is None


def test_kicked_member_may_rejoin(service: ChatService, cast: dict[str, Member]) -> None:
    """A kick is not a ban: the same address and nick can join again."""
    cast["teacher"].send(type="kick", nick="bob")
    again = join(service, "bob", host="127.0.0.2")
    assert service.registry.find("bob") is again.session


def test_kick_from_another_room_confirms_to_the_operator(service: ChatService, cast: dict[str, Member]) -> None:
    """An operator kicking someone in another room gets a notice; the lobby is not told."""
    cast["teacher"].send(type="kick", nick="dave")
    [notice] = cast["teacher"].take()
    assert notice["event"] == "kick" and notice["nick"] == "dave"
    assert cast["bob"].take() == [] and cast["dave"].outbox.closed


def test_ban_keeps_the_address_out_until_unban(service: ChatService, cast: dict[str, Member]) -> None:
    """A banned address cannot connect again (other addresses can) until an operator unbans it."""
    cast["teacher"].send(type="kick", nick="bob", ban=True)
    notice = cast["teacher"].take()[-1]
    assert notice["event"] == "ban" and notice["address"] == "127.0.0.2"
    assert [p["ban"] for p in cast["carol"].take()] == [True]
    with pytest.raises(ProtocolError) as refused:
        Member(service, ("127.0.0.2", 5555))
    assert refused.value.code == "not_allowed" and refused.value.fatal
    join(service, "erin", host="127.0.0.5")
    settle(cast["carol"], cast["dave"])
    cast["teacher"].send(type="unban", address="127.0.0.2")
    assert cast["teacher"].take()[-1]["event"] == "unban"
    assert cast["carol"].take() == [] and cast["dave"].take() == []  # only the operator is told
    join(service, "bob", host="127.0.0.2")


def test_ban_removes_every_connection_from_the_address(service: ChatService, cast: dict[str, Member]) -> None:
    """A banned address's second connection goes too."""
    second = join(service, "bob2", host="127.0.0.2")
    cast["teacher"].send(type="kick", nick="bob", ban=True)
    assert second.outbox.closed and service.registry.find("bob2") is None


def test_operators_cannot_be_kicked_or_banned_by_address(service: ChatService, cast: dict[str, Member]) -> None:
    """Kicking an operator, or banning an address an operator uses, is refused."""
    helper = join(service, "helper", host="127.0.0.3")
    helper.send(type="op", secret=SECRET)
    cast["teacher"].send(type="kick", nick="helper")
    assert cast["teacher"].take()[-1]["code"] == "not_allowed"
    cast["teacher"].send(type="kick", nick="carol", ban=True)  # carol shares 127.0.0.3 with helper
    error = cast["teacher"].take()[-1]
    assert error["code"] == "not_allowed" and "127.0.0.3" in error["message"]
    assert service.registry.find("carol") is not None and not service.access.banned


def test_kick_unknown_nick(cast: dict[str, Member]) -> None:
    """Kicking a nick nobody has is no_such_user."""
    cast["teacher"].send(type="kick", nick="nobody")
    assert cast["teacher"].take()[-1]["code"] == "no_such_user"


# --- mute ---------------------------------------------------------------------------


def test_mute_is_seen_by_target_and_operator_only(cast: dict[str, Member]) -> None:
    """A mute is told to the muted member and the operator, nobody else."""
    cast["teacher"].send(type="mute", nick="bob", minutes=5)
    [told] = cast["bob"].take()
    [confirmed] = cast["teacher"].take()
    for notice in (told, confirmed):
        assert (
            notice["event"] == "mute"
            and notice["nick"] == "bob"
            and notice["by"] == "teacher"
            and notice["minutes"] == 5
        )
    assert told["text"].startswith("teacher muted you for 5 minute(s): you can read")
    assert confirmed["text"] == "you muted bob for 5 minute(s)"
    assert cast["carol"].take() == [] and cast["dave"].take() == []


def test_muted_member_cannot_speak_rename_or_whisper_except_to_operators(cast: dict[str, Member]) -> None:
    """Muted: say, nick and whispers to members are refused; whispers to operators pass."""
    cast["teacher"].send(type="mute", nick="bob")
    settle(*cast.values())
    bob = cast["bob"]
    bob.send(type="say", text="hello?")
    error = bob.take()[-1]
    assert error["code"] == "not_allowed" and "muted by teacher" in error["message"]
    bob.send(type="nick", nick="notbob")
    assert bob.take()[-1]["code"] == "not_allowed"
    bob.send(type="whisper", to="carol", text="psst")
    assert bob.take()[-1]["code"] == "not_allowed"
    bob.send(type="whisper", to="teacher", text="sorry, may I speak?")
    assert cast["teacher"].take()[-1]["type"] == "whisper"
    assert cast["carol"].take() == []
    carol = cast["carol"]
    carol.send(type="say", text="I still can")
    assert bob.take()[-1]["text"] == "I still can"


def test_mute_runs_out(cast: dict[str, Member], clock: FakeClock, service: ChatService) -> None:
    """A mute for some minutes ends by itself."""
    cast["teacher"].send(type="mute", nick="bob", minutes=2)
    settle(*cast.values())
    clock.now += 119
    cast["bob"].send(type="say", text="now?")
    assert cast["bob"].take()[-1]["code"] == "not_allowed"
    clock.now += 2
    cast["bob"].send(type="say", text="now!")
    assert cast["carol"].take()[-1]["text"] == "now!"
    service.tick()  # the service's tick forgets the mute that ran out (and tells bob)
    assert not service.moderation.active


def test_a_timed_mute_ends_with_a_notice_to_the_member_only(
    cast: dict[str, Member], clock: FakeClock, service: ChatService
) -> None:
    """The tick tells the member its mute ran out (event unmute, expired), once, and the operator in
    the room a short line; the other students do not hear it."""
    cast["teacher"].send(type="mute", nick="bob", minutes=1)
    settle(*cast.values())
    clock.now += 59
    service.tick()
    assert cast["bob"].take() == []
    clock.now += 1
    service.tick()
    [notice] = cast["bob"].take()
    assert notice["type"] == "notice" and notice["event"] == "unmute" and notice["expired"] is True
    assert notice["nick"] == "bob" and "the room hears you again" in notice["text"]
    [told] = cast["teacher"].take()
    assert told["event"] == "unmute" and told["nick"] == "bob" and told["expired"] is True
    assert told["text"] == "the mute of bob has ended: the room hears them again"
    assert cast["carol"].take() == [] and cast["dave"].take() == []
    service.tick()
    assert cast["bob"].take() == []
    cast["bob"].send(type="say", text="free")
    assert cast["carol"].take()[-1]["text"] == "free"


def test_lock_all_stops_speaking_and_moving_for_students_everywhere(cast: dict[str, Member]) -> None:
    """`lock` with `all`: everyone is told; non-operators may neither speak nor join; unlock all ends it."""
    cast["teacher"].send(type="lock", all=True)
    for member in cast.values():
        notice = member.take()[-1]
        assert notice["event"] == "lock" and notice["all"] is True and "every room" in notice["text"]
    cast["bob"].send(type="say", text="hello?")
    assert cast["bob"].take()[-1]["code"] == "not_allowed"
    cast["bob"].send(type="join", room="recess")
    error = cast["bob"].take()[-1]
    assert error["code"] == "not_allowed" and "stay where you are" in error["message"]
    cast["teacher"].send(type="join", room="recess")
    cast["teacher"].send(type="say", text="operators still may")
    assert cast["teacher"].take()[-1]["text"] == "operators still may"
    cast["teacher"].send(type="unlock", all=True)
    settle(*cast.values())
    cast["bob"].send(type="join", room="recess")
    assert cast["bob"].take()[0]["type"] == "welcome"


def test_a_refused_rule_is_logged_as_what_happened(cast: dict[str, Member], caplog: pytest.LogCaptureFixture) -> None:
    """The server log says "muted bob tried to speak", not "protocol error from bob"."""
    cast["teacher"].send(type="mute", nick="bob")
    settle(*cast.values())
    with caplog.at_level(logging.INFO, logger="chatsrv"):
        cast["bob"].send(type="say", text="hi")
    lines = [record.getMessage() for record in caplog.records if record.name == "chatsrv"]
    assert any(line.startswith("muted bob tried to speak") for line in lines), lines
    assert not any("protocol error" in line for line in lines)


def test_unmute_is_seen_by_target_and_operator_only(cast: dict[str, Member]) -> None:
    """Unmute lets the member speak again; only it and the operator are told."""
    cast["teacher"].send(type="mute", nick="bob")
    settle(*cast.values())
    cast["teacher"].send(type="unmute", nick="bob")
    for name in ("teacher", "bob"):
        assert cast[name].take()[-1]["event"] == "unmute"
    assert cast["carol"].take() == [] and cast["dave"].take() == []
    cast["bob"].send(type="say", text="thanks")
    assert cast["carol"].take()[-1]["text"] == "thanks"


def test_mute_outlasts_a_reconnect(service: ChatService, cast: dict[str, Member], clock: FakeClock) -> None:
    """A mute belongs to the nick: rejoining with it shows `muted` in welcome, with the time left, and stays muted."""
    cast["teacher"].send(type="mute", nick="bob", minutes=10)
    cast["bob"].send(type="bye")
    clock.now += 30.5
    again = Member(service, ("127.0.0.2", 6000))
    again.send(type="hello", nick="Bob")
    welcome = again.take()[0]
    assert welcome["muted"] == {"by": "teacher", "minutes": 10, "seconds": 570}
    again.send(type="say", text="sneaky")
    assert again.take()[-1]["code"] == "not_allowed"


def test_operators_cannot_be_muted(service: ChatService, cast: dict[str, Member]) -> None:
    """Muting an operator is refused."""
    helper = join(service, "helper", host="127.0.0.6")
    helper.send(type="op", secret=SECRET)
    cast["teacher"].send(type="mute", nick="helper")
    assert cast["teacher"].take()[-1]["code"] == "not_allowed"


# --- rooms ---------------------------------------------------------------------------


def test_lock_lets_only_operators_speak_in_that_room(cast: dict[str, Member]) -> None:
    """Lock tells the room (not others); then members are refused, operators and other rooms speak."""
    cast["teacher"].send(type="lock")
    for name in ("teacher", "bob", "carol"):
        [notice] = cast[name].take()
        assert notice["event"] == "lock" and notice["room"] == "lobby" and notice["by"] == "teacher"
    assert cast["dave"].take() == []
    cast["bob"].send(type="say", text="hey")
    error = cast["bob"].take()[-1]
    assert error["code"] == "not_allowed" and "locked" in error["message"]
    assert cast["carol"].take() == []
    cast["teacher"].send(type="say", text="listen up")
    assert cast["bob"].take()[-1]["text"] == "listen up"
    cast["dave"].send(type="say", text="fine here")
    assert cast["dave"].take()[-1]["text"] == "fine here"


def test_unlock_tells_the_room_and_frees_speech(cast: dict[str, Member]) -> None:
    """Unlock tells the room only, and members may speak again."""
    cast["teacher"].send(type="lock")
    settle(*cast.values())
    cast["teacher"].send(type="unlock")
    for name in ("teacher", "bob", "carol"):
        assert cast[name].take()[-1]["event"] == "unlock"
    assert cast["dave"].take() == []
    cast["bob"].send(type="say", text="free")
    assert cast["carol"].take()[-1]["text"] == "free"


def test_slow_mode_spaces_one_members_messages(cast: dict[str, Member], clock: FakeClock) -> None:
    """Slow mode is told to the room; a second message within the gap is refused, then allowed."""
    cast["teacher"].send(type="slow", seconds=10)
    for name in ("teacher", "bob", "carol"):
        assert [p["event"] for p in cast[name].take()] == ["slow"]
    assert cast["dave"].take() == []
    bob, carol = cast["bob"], cast["carol"]
    bob.send(type="say", text="one")
    carol.send(type="say", text="mine")  # another member is not held up by bob
    bob.send(type="say", text="two")
    error = bob.take()[-1]
    assert error["code"] == "rate_limited" and "wait 10 s" in error["message"]
    for _ in range(3):
        cast["teacher"].send(type="say", text="operators are exempt")
    clock.now += 10
    bob.send(type="say", text="three")
    texts = [p["text"] for p in carol.take() if p["type"] == "message"]
    assert texts == ["one", "mine", "operators are exempt", "operators are exempt", "operators are exempt", "three"]
    cast["teacher"].send(type="slow", seconds=0)
    bob.send(type="say", text="four")
    bob.send(type="say", text="five")
    assert [p["text"] for p in carol.take() if p["type"] == "message"] == ["four", "five"]


def test_slow_notice_names_the_gap(cast: dict[str, Member]) -> None:
    """The slow-mode notice carries the seconds, for the room only."""
    cast["teacher"].send(type="slow", seconds=7.5)
    for name in ("teacher", "bob", "carol"):
        [notice] = cast[name].take()
        assert notice["event"] == "slow" and notice["seconds"] == 7.5 and notice["room"] == "lobby"
    assert cast["dave"].take() == []


def test_topic_is_told_to_the_room_and_shown_in_welcome(service: ChatService, cast: dict[str, Member]) -> None:
    """A topic reaches the room (not others) and every later welcome; no text clears it."""
    cast["teacher"].send(type="topic", text="Sockets, part 2")
    for name in ("teacher", "bob", "carol"):
        [notice] = cast[name].take()
        assert notice["event"] == "topic" and notice["topic"] == "Sockets, part 2"
    assert cast["dave"].take() == []
    newcomer = Member(service, ("127.0.0.9", 1))
    newcomer.send(type="hello", nick="erin")
    assert newcomer.take()[0]["topic"] == "Sockets, part 2"
    cast["teacher"].send(type="topic")
    assert "topic" not in cast["bob"].take()[-1]
    cast["dave"].send(type="join", room="lobby")
    assert "topic" not in cast["dave"].take()[0]


def test_announce_reaches_every_room(service: ChatService, cast: dict[str, Member]) -> None:
    """An announcement is a notice to every member of every room, with who sent it."""
    cast["teacher"].send(type="announce", text="Ten minutes left")
    for member in cast.values():
        [notice] = member.take()
        assert notice == {
            **notice,
            "type": "notice",
            "event": "announce",
            "text": "Ten minutes left",
            "from": "teacher",
        }


# --- what welcome and users say about operators -------------------------------------


def test_welcome_and_users_mark_operators_and_room_state(service: ChatService, cast: dict[str, Member]) -> None:
    """welcome and users list the room's operators, and welcome says locked and slow."""
    cast["teacher"].send(type="lock")
    cast["teacher"].send(type="slow", seconds=3)
    newcomer = join(service, "erin", host="127.0.0.9")
    newcomer.send(type="join", room="lobby")
    welcome = newcomer.take()[0]
    assert welcome["operators"] == ["teacher"] and welcome["locked"] is True and welcome["slow"] == 3
    cast["dave"].send(type="who", room="lobby")
    assert cast["dave"].take()[-1]["operators"] == ["teacher"]
    cast["dave"].send(type="join", room="lobby")
    assert "operators" in cast["dave"].take()[0]


def test_operator_moving_rooms_is_marked_in_joined(cast: dict[str, Member]) -> None:
    """When an operator moves in, the room's `joined` says operator: true."""
    cast["teacher"].send(type="join", room="other")
    joined = [p for p in cast["dave"].take() if p["type"] == "joined"]
    assert joined[-1]["nick"] == "teacher" and joined[-1]["operator"] is True
    cast["carol"].send(type="join", room="other")
    joined = [p for p in cast["dave"].take() if p["type"] == "joined"]
    assert "operator" not in joined[-1]


def test_operator_status_ends_with_the_session(service: ChatService, cast: dict[str, Member]) -> None:
    """An operator who leaves is no longer one; the same nick rejoining must /op again."""
    cast["teacher"].send(type="bye")
    again = join(service, "teacher")
    assert not service.moderation.is_operator(again.session)
    assert service.moderation.operators == set()


def test_moderation_stays_off_the_hot_path_until_used(service: ChatService, cast: dict[str, Member]) -> None:
    """With operators but no mute, lock or slow room, `say` skips every moderation check."""
    assert service.moderation.active is False
    cast["teacher"].send(type="mute", nick="bob", minutes=1)
    assert service.moderation.active is True
    cast["teacher"].send(type="unmute", nick="bob")
    assert service.moderation.active is False


# --- audit ---------------------------------------------------------------------------


def test_operator_actions_are_audited_with_who_whom_and_where(
    cast: dict[str, Member], caplog: pytest.LogCaptureFixture
) -> None:
    """Each action logs the operator's nick and address and the target's nick and address."""
    with caplog.at_level(logging.INFO, logger="chatsrv.audit"):
        cast["teacher"].send(type="mute", nick="bob", minutes=3)
        cast["teacher"].send(type="kick", nick="carol", reason="rude")
        cast["teacher"].send(type="lock")
        cast["bob"].send(type="announce", text="me too")
    lines = [r.getMessage() for r in caplog.records if r.name == "chatsrv.audit"]
    assert any(l.startswith("audit: mute by teacher [tcp 127.0.0.1:") and "bob [tcp 127.0.0.2:" in l for l in lines), (
        lines
    )
    assert any(
        l.startswith("audit: kick by teacher [tcp 127.0.0.1:") and "carol [tcp 127.0.0.3:" in l and "rude" in l
        for l in lines
    ), lines
    assert any(l.startswith("audit: lock by teacher [tcp 127.0.0.1:") and "room lobby" in l for l in lines), lines
    assert any(l.startswith("audit: refused announce by bob [tcp 127.0.0.2:") for l in lines), lines


def test_failed_op_attempts_are_audited(service: ChatService, caplog: pytest.LogCaptureFixture) -> None:
    """A wrong secret is logged with the address it came from."""
    bob = join(service, "bob", host="127.0.0.2")
    with caplog.at_level(logging.INFO, logger="chatsrv.audit"):
        bob.send(type="op", secret="guess")
    assert any("audit: op refused for bob [tcp 127.0.0.2:" in r.getMessage() for r in caplog.records)
