"""What the client state shows in a lesson the tester ran (issue 16 follow-up): pure, payloads in, lines out."""

from __future__ import annotations

from typing import Any

from chatclient.lines import Line
from chatclient.render import fragments_text, plain, status_bar
from chatclient.state import ClientState


def _welcomed(nick: str, room: str = "lobby", **extra: Any) -> ClientState:
    state = ClientState(nick=nick)
    welcome = {"type": "welcome", "nick": nick, "room": room, "users": [nick, "teacher"], "history": []} | extra
    state.apply(welcome, 1.0)
    return state


def _texts(state: ClientState, payload: dict[str, Any], now: float = 2.0) -> list[str]:
    return [line.text for line in state.apply(payload, now)]


def test_lock_all_is_told_as_every_room_to_students_and_the_teacher() -> None:
    """`lock`/`unlock` with `all` carries no room (docs/protocol.md §9): not "unlocked lobby", not "locked maths"."""
    lock = {"type": "notice", "event": "lock", "all": True, "by": "teacher", "text": "teacher locked every room"}
    unlock = {"type": "notice", "event": "unlock", "all": True, "by": "teacher", "text": "x"}
    for state in (_welcomed("amy", "maths"), _welcomed("teacher", operators=["teacher"])):
        assert _texts(state, lock) == [
            "teacher locked every room: only operators may speak or change rooms until it is unlocked"
        ]
        assert "room locked" in state.status_marks(2.0)
        assert _texts(state, unlock) == ["teacher unlocked every room: everyone may speak and change rooms again"]
        assert "room locked" not in state.status_marks(2.0)


def test_the_udp_bar_keeps_the_server_address_in_80_columns() -> None:
    """A student over UDP, an operator in the room, 80 columns: zero loss counters shrink before the address goes."""
    state = _welcomed("student3", users=["a", "b", "c", "student3"], operators=["teacher"], seq=1)
    state.transport, state.rtt = "udp", 0.0004
    bar = fragments_text(status_bar(state, "127.0.0.1:9009", "connected", width=80))
    assert "UDP 127.0.0.1:9009 │" in bar and bar.rstrip().endswith("no loss")


def test_a_mute_after_a_reconnect_says_the_time_left_and_counts_down_like_the_server() -> None:
    """welcome.muted after a restart: "for 10 more minute(s)", not "for a while"; the bar rounds up as the server."""
    state = _welcomed("bob", muted={"by": "teacher", "minutes": 10, "seconds": 545})
    lines = _texts(
        state,
        {
            "type": "welcome",
            "nick": "bob",
            "room": "lobby",
            "users": ["bob"],
            "history": [],
            "muted": {"by": "teacher", "minutes": 10, "seconds": 545},
        },
        100.0,
    )
    assert any("you are muted for 10 more minute(s)" in line for line in lines), lines
    assert state.status_marks(100.0) == ["muted 10 min"]
    assert state.status_marks(100.0 + 30) == ["muted 9 min"]  # 515 s left: the server says "9 more minute(s)"
    assert state.status_marks(100.0 + 544) == ["muted 1 min"]
    assert state.status_marks(100.0 + 545) == []


def test_rooms_with_history_only_are_shown_apart() -> None:
    """`/rooms` lists rooms with history and nobody in them last: "with history only", not "数学 (0)"."""
    state = _welcomed("amy")
    rooms = [{"name": "lobby", "users": 4}, {"name": "数学", "users": 0}]
    assert _texts(state, {"type": "rooms", "rooms": rooms}) == ["rooms: lobby (4); with history only: 数学"]
    assert _texts(state, {"type": "rooms", "rooms": rooms[1:]}) == ["rooms: with history only: 数学"]
    assert "数学" in state.rooms  # still offered by Tab after /join


def test_a_member_who_moved_is_shown_going_where() -> None:
    """`left` with reason moved carries `to`: "韩梅梅 left (moved to 数学)"."""
    state = _welcomed("amy", users=["amy", "韩梅梅"])
    left = {"type": "left", "nick": "韩梅梅", "room": "lobby", "reason": "moved", "to": "数学", "ts": 2.0}
    assert _texts(state, left) == ["韩梅梅 left (moved to 数学)"]


def test_line_mode_marks_own_whispers_apart_from_joins_and_leaves() -> None:
    """`->` starts a join or a leave in line mode; my own whisper has a mark of its own."""
    whisper = plain(Line("whisper_out", "see you", 0.0, "me", "bob")).split("] ", 1)[1]
    joined = plain(Line("presence", "bob joined lobby", 0.0, "bob")).split("] ", 1)[1]
    assert whisper == "*to bob* see you" and joined == "-> bob joined lobby"


def test_a_nick_refused_before_joining_does_not_point_to_slash_nick() -> None:
    """At the start the UI asks for another nick at its prompt (line mode needs --nick); /nick cannot help there."""
    error = {"type": "error", "code": "nick_invalid", "message": "nick must be 1 to 24 characters"}
    people, script = ClientState(nick="a b"), ClientState(nick="a b", codes=True)
    [told] = _texts(people, error)
    assert "/nick" not in told and told.endswith("type another nick below.")
    [told] = _texts(script, error)
    assert told == "nick_invalid: nick must be 1 to 24 characters [start chatclient again with another --nick]"
    joined = _welcomed("amy")
    [told] = _texts(joined, {**error, "code": "nick_taken", "message": "taken"})
    assert told.endswith("choose another with /nick NEWNICK.")  # in a room, /nick is the way


def test_line_mode_without_a_password_says_how_to_give_one() -> None:
    error = {"type": "error", "code": "auth_failed", "message": "this server needs a password"}
    script = ClientState(nick="amy", codes=True)
    assert _texts(script, error) == [
        "auth_failed: this server needs a password [give --password SECRET or set LANCHAT_PASSWORD]"
    ]
    script = ClientState(nick="amy", codes=True, password_given=True)
    wrong = {**error, "message": "wrong password"}
    assert _texts(script, wrong) == ["auth_failed: wrong password [check the password with the teacher]"]
