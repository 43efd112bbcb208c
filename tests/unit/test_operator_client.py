"""Client side of teacher controls: the operator commands and what the state makes of moderation events."""

from __future__ import annotations

from typing import Any

import pytest

from chatclient import commands
from chatclient.commands import Local, Problem, Send
from chatclient.state import ClientState

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("line", "payload"),
    [
        ("/op s3cret", {"type": "op", "secret": "s3cret"}),
        ("/kick bob", {"type": "kick", "nick": "bob"}),
        ("/kick bob phone out again", {"type": "kick", "nick": "bob", "reason": "phone out again"}),
        ("/ban bob spam", {"type": "kick", "nick": "bob", "reason": "spam", "ban": True}),
        ("/unban 10.0.0.7", {"type": "unban", "address": "10.0.0.7"}),
        ("/mute bob", {"type": "mute", "nick": "bob"}),
        ("/mute bob 5", {"type": "mute", "nick": "bob", "minutes": 5}),
        ("/mute bob 0.5", {"type": "mute", "nick": "bob", "minutes": 0.5}),
        ("/unmute bob", {"type": "unmute", "nick": "bob"}),
        ("/lock", {"type": "lock"}),
        ("/unlock", {"type": "unlock"}),
        ("/slow 10", {"type": "slow", "seconds": 10}),
        ("/slow off", {"type": "slow", "seconds": 0}),
        ("/announce Break in 5", {"type": "announce", "text": "Break in 5"}),
        ("/topic Sockets, part 2", {"type": "topic", "text": "Sockets, part 2"}),
        ("/topic -", {"type": "topic"}),
        ("/close art", {"type": "close_room", "room": "art"}),
    ],
)
def test_operator_commands_build_their_payloads(line: str, payload: dict[str, Any]) -> None:
    """Each operator command line becomes the payload docs/protocol.md describes."""
    assert commands.parse(line) == Send(payload)


@pytest.mark.parametrize(
    "line",
    [
        "/op",
        "/kick",
        "/ban",
        "/unban",
        "/mute",
        "/mute bob soon",
        "/mute bob -1",
        "/unmute",
        "/slow",
        "/slow fast",
        "/slow -3",
        "/slow inf",
        "/announce",
        "/close",
    ],
)
def test_operator_commands_explain_their_usage(line: str) -> None:
    """A command with missing or bad arguments shows its usage instead of sending."""
    action = commands.parse(line)
    assert isinstance(action, Problem) and "usage: /" in action.message


def test_topic_alone_shows_the_topic_locally() -> None:
    """/topic without text is answered by the client (no operator needed)."""
    assert commands.parse("/topic") == Local("topic")


def test_help_and_completion_include_operator_commands() -> None:
    """/help lists the operator commands in their own section; nick arguments complete to nicks."""
    lines = commands.help_lines()
    section = lines.index("operator commands (after /op SECRET):")
    below = "\n".join(lines[section:])
    above = "\n".join(lines[:section])
    for name in ("kick", "ban", "unban", "mute", "unmute", "lock", "unlock", "slow", "announce"):
        assert f"  /{name} " in below and f"  /{name} " not in above
    assert "/op SECRET" in above
    for name in ("kick", "ban", "mute", "unmute"):
        command = commands.find(name)
        assert command is not None and command.completes == "nick" and command.operator
    assert {"/op", "/kick", "/mute", "/lock", "/announce", "/topic"} <= set(commands.command_names())


# --- state ----------------------------------------------------------------------------


def state_in_lobby(nick: str = "bob", **welcome: Any) -> ClientState:
    state = ClientState(nick=nick)
    state.apply(
        {"type": "welcome", "nick": nick, "room": "lobby", "users": ["bob", "carol", "teacher"], "ts": NOW, **welcome},
        NOW,
    )
    return state


def notice(event: str, **fields: Any) -> dict[str, Any]:
    return {"type": "notice", "text": f"server text for {event}", "event": event, "ts": NOW, **fields}


def test_welcome_marks_operators_and_explains_room_rules() -> None:
    """welcome's operators, locked, slow and muted become state and plain-words lines."""
    state = ClientState(nick="bob")
    lines = state.apply(
        {
            "type": "welcome",
            "nick": "bob",
            "room": "lobby",
            "users": ["bob", "teacher"],
            "operators": ["teacher"],
            "locked": True,
            "slow": 5,
            "muted": {"by": "teacher", "minutes": 3},
            "ts": NOW,
        },
        NOW,
    )
    texts = [line.text for line in lines]
    assert "(2 here: bob, @teacher)" in texts[0]
    assert any(t.startswith("you are muted") and "whisper to an operator" in t for t in texts)
    assert "lobby is locked: only operators may speak here until it is unlocked" in texts
    assert "slow mode: one message every 5 s per person here" in texts
    assert state.is_operator("Teacher") and not state.operator
    assert state.status_marks(NOW) == ["muted 3 min", "room locked", "slow 5 s"]
    assert state.status_marks(NOW + 181) == ["room locked", "slow 5 s"]  # the mute ran out


def test_becoming_operator_is_explained_and_marked() -> None:
    """An op event about me makes me an operator; about someone else, marks them."""
    state = state_in_lobby()
    [line] = state.apply(notice("op", nick="teacher", room="lobby"), NOW)
    assert line.text == "server text for op" and state.label("teacher") == "@teacher" and not state.operator
    [line] = state.apply(notice("op", nick="bob", room="lobby"), NOW)
    assert state.operator and "you are now an operator" in line.text
    assert state.status_marks(NOW) == ["operator"]


def test_being_muted_and_unmuted_is_explained() -> None:
    """A mute about me says who, how long and what I can still do; unmute says I am heard again."""
    state = state_in_lobby()
    [line] = state.apply(notice("mute", nick="bob", by="teacher", minutes=5), NOW)
    assert line.text.startswith("teacher muted you for 5 minute(s). You can still read the chat and whisper")
    assert state.is_muted(NOW) and state.status_marks(NOW) == ["muted 5 min"]
    [line] = state.apply(notice("unmute", nick="bob", by="teacher"), NOW)
    assert line.text == "teacher unmuted you: the room sees what you write again."
    assert not state.is_muted(NOW)


def test_mute_confirmation_for_the_operator_is_the_server_text() -> None:
    """The operator's own confirmation (about someone else) does not mute the operator."""
    state = state_in_lobby("teacher")
    [line] = state.apply(notice("mute", nick="bob", by="teacher", minutes=5), NOW)
    assert line.text == "server text for mute" and not state.muted


def test_lock_unlock_slow_topic_update_the_room_state() -> None:
    """Room events for my room change locked, slow and topic; other rooms' events do not."""
    state = state_in_lobby()
    [line] = state.apply(notice("lock", room="lobby", by="teacher"), NOW)
    assert state.locked and "only operators may speak here" in line.text
    state.apply(notice("lock", room="other", by="teacher"), NOW)
    state.apply(notice("unlock", room="other", by="teacher"), NOW)
    assert state.locked
    [line] = state.apply(notice("unlock", room="lobby", by="teacher"), NOW)
    assert not state.locked and "everyone may speak again" in line.text
    state.apply(notice("slow", room="lobby", seconds=10), NOW)
    assert state.slow == 10
    state.apply(notice("slow", room="lobby", seconds=0), NOW)
    assert state.slow is None
    state.apply(notice("topic", room="lobby", topic="Sockets"), NOW)
    assert state.topic == "Sockets"
    state.apply(notice("topic", room="lobby"), NOW)
    assert state.topic is None


def test_announcement_names_its_sender() -> None:
    """An announcement shows who made it."""
    [line] = state_in_lobby().apply({**notice("announce"), "text": "Break", "from": "teacher"}, NOW)
    assert line.text == "announcement from teacher: Break"


def test_being_kicked_or_banned_is_explained_and_ends_the_session() -> None:
    """left/kicked about me says who, why and whether I may come back; the session is over."""
    state = state_in_lobby()
    [line] = state.apply(
        {
            "type": "left",
            "nick": "bob",
            "room": "lobby",
            "reason": "kicked",
            "by": "teacher",
            "message": "phone out",
            "ts": NOW,
        },
        NOW,
    )
    assert line.text == "teacher kicked you out of the chat: phone out. You may join again: start chatclient once more."
    assert state.ended == line.text and not state.connected
    banned = state_in_lobby()
    [line] = banned.apply(
        {"type": "left", "nick": "bob", "room": "lobby", "reason": "kicked", "by": "teacher", "ban": True, "ts": NOW},
        NOW,
    )
    assert line.text.startswith("teacher banned you from this server. You cannot join again")


def test_someone_else_kicked_is_a_presence_line() -> None:
    """Another member's kick shows who kicked and why."""
    [line] = state_in_lobby().apply(
        {"type": "left", "nick": "carol", "reason": "kicked", "by": "teacher", "message": "rude", "ts": NOW}, NOW
    )
    assert line.kind == "presence" and line.text == "carol was kicked by teacher: rude"


def test_operator_marks_follow_joins_renames_leaves_and_who() -> None:
    """Operators stay marked when they move in, rename, leave, and in /who answers."""
    state = state_in_lobby()
    state.apply({"type": "joined", "nick": "helper", "room": "lobby", "operator": True, "ts": NOW}, NOW)
    assert state.is_operator("helper")
    state.apply({"type": "renamed", "old": "helper", "new": "aide", "room": "lobby", "ts": NOW}, NOW)
    assert state.is_operator("aide") and not state.is_operator("helper")
    state.apply({"type": "left", "nick": "aide", "room": "lobby", "reason": "quit", "ts": NOW}, NOW)
    assert not state.is_operator("aide")
    [line] = state.apply({"type": "users", "room": "lobby", "users": ["bob", "teacher"], "operators": ["teacher"]}, NOW)
    assert line.text == "in lobby: bob, @teacher (2)" and state.operators == ["teacher"]


def test_auth_failed_is_remembered() -> None:
    """auth_failed sets needs_password, so a UI can ask for one."""
    state = ClientState(nick="bob")
    state.apply({"type": "error", "code": "auth_failed", "message": "wrong password"}, NOW)
    assert state.needs_password
