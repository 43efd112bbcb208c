"""The client's view of a `members` burst (docs/protocol.md §13): one line per run, the user list kept right."""

from __future__ import annotations

from typing import Any

from chatclient import render
from chatclient.state import ClientState


def welcomed(users: list[str]) -> ClientState:
    state = ClientState(nick="ann")
    state.apply({"type": "welcome", "nick": "ann", "room": "lobby", "users": ["ann", *users], "history": []})
    return state


def burst(*changes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "members", "room": "lobby", "changes": list(changes), "ts": 1000.0, "seq": 9}


def test_twelve_joins_are_one_line_naming_three() -> None:
    """12 joins: "12 joined lobby: p0, p1, p2, and 9 more", and all 12 are in the user list."""
    state = welcomed([])
    nicks = [f"p{i}" for i in range(12)]
    lines = state.apply(burst(*({"joined": nick} for nick in nicks)))
    assert [render.plain(line).split("] ", 1)[1] for line in lines] == ["-> 12 joined lobby: p0, p1, p2, and 9 more"]
    assert state.users == ["ann", *nicks]


def test_a_single_join_reads_like_the_version_1_notice() -> None:
    """One join in a burst shows exactly as a plain `joined` would."""
    plain_state, burst_state = welcomed([]), welcomed([])
    old = plain_state.apply({"type": "joined", "nick": "bob", "room": "lobby", "ts": 1000.0})
    new = burst_state.apply(burst({"joined": "bob"}))
    assert [render.plain(line) for line in new] == [render.plain(line) for line in old]
    assert burst_state.users == plain_state.users


def test_runs_of_joins_and_leaves_keep_their_order_and_reasons() -> None:
    """Joins, then leaves for two reasons, then joins again: four lines in order; the list follows."""
    state = welcomed(["x1", "x2", "x3"])
    lines = state.apply(burst(
        {"joined": "a"}, {"joined": "b"},
        {"left": "x1", "reason": "quit"}, {"left": "x2", "reason": "quit"},
        {"left": "x3", "reason": "lost"},
        {"joined": "x1"},
    ))
    assert [line.text for line in lines] == [
        "2 joined lobby: a, b", "2 left (quit): x1, x2", "x3 left (lost)", "x1 joined lobby"]
    assert sorted(state.users) == ["a", "ann", "b", "x1"]


def test_an_operator_who_joins_in_a_burst_is_marked() -> None:
    """`operator` in a change marks the nick, as in a `joined`."""
    state = welcomed([])
    state.apply(burst({"joined": "teacher", "operator": True}, {"joined": "bob"}))
    assert state.is_operator("teacher") and not state.is_operator("bob")


def test_hostile_nicks_in_a_burst_are_made_safe() -> None:
    """A burst's line is rendered like any presence line: control characters are not passed to the terminal."""
    state = welcomed([])
    lines = state.apply(burst({"joined": "evil\x1b[2J"}, {"joined": "b"}))
    assert "\x1b" not in render.plain(lines[0])


def test_malformed_changes_are_skipped() -> None:
    """A change that is not an object, or names nobody, is ignored; the rest is shown."""
    state = welcomed([])
    lines = state.apply({"type": "members", "room": "lobby", "changes": [3, {"joined": 5}, {"joined": "bob"}]})
    assert [line.text for line in lines] == ["bob joined lobby"] and state.users == ["ann", "bob"]
    assert state.apply({"type": "members", "room": "lobby", "changes": "nope"}) == []


def test_a_burst_of_moves_says_where_they_went() -> None:
    """Leaves for `moved` in a burst name the room they moved to, one line per destination, as a single `left` does."""
    state = ClientState(nick="alice")
    state.apply({"type": "welcome", "nick": "alice", "room": "lobby", "users": ["alice", "bob", "cid"]}, 0.0)
    changes = [
        {"left": "bob", "reason": "moved", "to": "maths"},
        {"left": "cid", "reason": "moved", "to": "art"},
    ]
    lines = state.apply({"type": "members", "room": "lobby", "changes": changes}, 0.0)
    assert [line.text for line in lines] == ["bob left (moved to maths)", "cid left (moved to art)"]
