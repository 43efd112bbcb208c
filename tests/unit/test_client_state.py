"""What the client state makes of payloads for people: mentions, alternative nicks, completion names, reconnects."""

from __future__ import annotations

from chatclient.state import ClientState, alternative_nick


def test_mention_needs_the_whole_nick_as_a_word() -> None:
    """The nick "al" is mentioned by "hi al" and "al: x" but not by "also"; case does not matter."""
    state = ClientState(nick="al")
    assert state.mentions_me("hi al") and state.mentions_me("AL: look") and state.mentions_me("(al)")
    assert not state.mentions_me("also") and not state.mentions_me("pal") and not state.mentions_me("al_2 hi")


def test_mention_of_a_cjk_nick_inside_cjk_text() -> None:
    """CJK text has no spaces: a CJK nick counts as mentioned next to other CJK characters."""
    assert ClientState(nick="小明").mentions_me("你好小明吗")


def test_alternative_nick_fits_24_characters() -> None:
    """nick_2, cut so that the result is still a valid 24-character nick."""
    assert alternative_nick("alice", 2) == "alice_2"
    assert alternative_nick("x" * 24, 3) == "x" * 22 + "_3"


def test_rooms_and_partners_are_learnt_for_completion() -> None:
    """Room names from welcome and `rooms`, whisper partners and room users feed Tab completion."""
    state = ClientState(nick="me")
    state.apply({"type": "welcome", "nick": "me", "room": "lobby", "users": ["me", "bob"], "history": []}, 1.0)
    state.apply({"type": "rooms", "rooms": [{"name": "lobby", "users": 2}, {"name": "Physics", "users": 1}]}, 1.0)
    state.apply({"type": "whisper", "from": "zed", "to": "me", "text": "psst", "ts": 1.0}, 1.0)
    assert state.rooms == ["lobby", "Physics"]
    assert state.completion_nicks() == ["bob", "zed"]


def test_new_connection_resets_seq_and_history_is_not_repeated() -> None:
    """After a reconnect seq counts from 1 again, and history already shown is skipped."""
    state = ClientState(nick="me")
    message = {"type": "message", "id": 7, "room": "lobby", "from": "bob", "text": "old", "ts": 5.0}
    state.apply({"type": "welcome", "nick": "me", "room": "lobby", "users": ["me"], "history": [], "seq": 1}, 1.0)
    state.apply({**message, "seq": 2}, 1.0)
    state.new_connection()
    lines = state.apply(
        {"type": "welcome", "nick": "me", "room": "lobby", "users": ["me"], "history": [message], "seq": 1}, 2.0
    )
    assert [line.text for line in lines if line.kind == "message"] == []
    assert state.seq.duplicates == 0 and state.seq.received == 1


def test_the_session_ending_keeps_the_user_count_and_clears_the_roles() -> None:
    """Shutdown or kick: `left` about me keeps the last user list (not "0 users") and ends operator marks."""
    for reason in ("shutdown", "kicked"):
        state = ClientState(nick="bob")
        state.apply(
            {
                "type": "welcome",
                "nick": "bob",
                "room": "lobby",
                "users": ["teacher", "bob", "amy"],
                "operators": ["teacher"],
                "locked": True,
                "slow": 5,
                "history": [],
            },
            1.0,
        )
        assert state.operators == ["teacher"] and state.status_marks(1.0) == ["room locked", "slow 5 s"]
        state.apply({"type": "left", "nick": "bob", "room": "lobby", "reason": reason, "by": "teacher"}, 2.0)
        assert len(state.users) == 3, reason
        assert state.operators == [] and state.status_marks(2.0) == [], reason


def test_a_new_connection_ends_operator_status() -> None:
    """Operator status belongs to the session (docs/protocol.md, operators): a dropped connection ends it."""
    state = ClientState(nick="teacher")
    state.apply({"type": "welcome", "nick": "teacher", "room": "lobby", "users": ["teacher"], "history": []}, 1.0)
    state.apply({"type": "notice", "event": "op", "nick": "teacher", "room": "lobby", "text": "op"}, 1.0)
    assert state.status_marks(1.0) == ["operator"] and state.operators == ["teacher"]
    state.new_connection()
    assert state.status_marks(1.0) == [] and state.operators == [] and state.users == ["teacher"]


def test_history_is_shown_under_a_divider_with_its_date() -> None:
    """Saved messages in welcome.history do not look like live chat: dated divider above, closing one below."""
    import time

    sent = time.mktime((2026, 12, 4, 9, 5, 0, 0, 0, -1))
    state = ClientState(nick="amy")
    history = [
        {"type": "message", "id": 1, "room": "maths", "from": "bob", "text": "first", "ts": sent},
        {"type": "message", "id": 2, "room": "maths", "from": "cat", "text": "second", "ts": sent + 60},
    ]
    lines = state.apply(
        {"type": "welcome", "nick": "amy", "room": "maths", "users": ["amy"], "history": history, "ts": sent + 99},
        sent + 99,
    )
    texts = [line.text for line in lines]
    assert texts[:4] == [
        "── earlier messages in maths since Fri 4 Dec 2026, 09:05 ──",
        "first",
        "second",
        "── end of earlier messages ──",
    ]
    again = state.apply({"type": "welcome", "nick": "amy", "room": "maths", "users": ["amy"], "history": history}, 1.0)
    assert not any("earlier messages" in line.text for line in again)  # all shown before: no empty divider


def test_the_message_of_the_day_is_shown_once_not_on_every_join() -> None:
    state = ClientState(nick="amy")
    welcome = {"type": "welcome", "nick": "amy", "room": "lobby", "users": ["amy"], "history": [], "motd": "hi class"}
    assert "motd: hi class" in [line.text for line in state.apply(welcome, 1.0)]
    assert "motd: hi class" not in [line.text for line in state.apply({**welcome, "room": "maths"}, 2.0)]
    assert "motd: new" in [line.text for line in state.apply({**welcome, "motd": "new"}, 3.0)]


def test_a_hostile_servers_odd_fields_do_not_crash_the_client() -> None:
    """Lists that are numbers, a `ts` past what the system's clock can show: shown as best it can, no exception."""
    from chatclient import render

    state = ClientState(nick="me", room="lobby")
    odd = [
        {"type": "welcome", "nick": "me", "room": "lobby", "users": 1e308, "history": 3},
        {"type": "users", "room": "lobby", "users": 7},
        {"type": "welcome", "nick": "me", "room": "lobby", "users": [], "history": [{"type": "message", "ts": 1e300,
                                                                                     "from": "x", "text": "hi"}]},
        {"type": "left", "nick": "bob", "room": "lobby", "ts": 1e308},
    ]
    for payload in odd:
        for line in state.apply(payload, 100.0):
            assert render.plain(line)
