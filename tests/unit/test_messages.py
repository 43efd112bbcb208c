"""Nick, room and text rules of docs/protocol.md §6, and message parsing."""

from __future__ import annotations

import pytest

from chatsrv.messages import Hello, Ping, Say, check_nick, check_room, check_text, parse_message
from lanchat.wire import ProtocolError


@pytest.mark.parametrize("nick", ["alice", "Bob_2", "x-y", "李雷", "अनिल", "สมชาย", "a" * 24, "Ünïcödé"])
def test_valid_nicks(nick: str) -> None:
    """Letters, marks and digits of any script, _ and - are accepted up to 24 characters."""
    assert check_nick(nick) == nick


@pytest.mark.parametrize("nick", ["", "a b", "esc\x1b", "a" * 25, "\u0301abc", "dot.name", "semi;", "tab\t"])
def test_invalid_nicks(nick: str) -> None:
    """Spaces, escapes, 25 characters, a leading mark, punctuation: nick_invalid."""
    with pytest.raises(ProtocolError) as caught:
        check_nick(nick)
    assert caught.value.code == "nick_invalid"


def test_room_rule_allows_32_characters() -> None:
    """Rooms follow the nick rule with 32 characters."""
    assert check_room("r" * 32) == "r" * 32
    with pytest.raises(ProtocolError) as caught:
        check_room("r" * 33)
    assert caught.value.code == "room_invalid"


@pytest.mark.parametrize("text", ["\x1b[2J", "ring\x07", "back\x08", "cr\r", "\x9b31m", "   ", "x" * 2001])
def test_invalid_texts(text: str) -> None:
    """Escape sequences, bell, backspace, CR, C1 CSI, blank and too long texts: text_invalid."""
    with pytest.raises(ProtocolError) as caught:
        check_text(text)
    assert caught.value.code == "text_invalid"


def test_text_is_stripped_and_keeps_newline_and_tab() -> None:
    """Newline and tab are allowed; surrounding spaces are stripped."""
    assert check_text("  two\nlines\tand tab  ") == "two\nlines\tand tab"


def test_parse_hello_defaults_room_to_lobby() -> None:
    """hello without room goes to lobby."""
    assert parse_message({"type": "hello", "nick": "al"}) == Hello(nick="al", room="lobby")


def test_parse_say_action() -> None:
    """say carries the optional action flag."""
    assert parse_message({"type": "say", "text": "waves", "action": True}) == Say("waves", True)


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "say"},
        {"type": "say", "text": 5},
        {"type": "say", "text": "x", "action": "yes"},
        {"type": "say", "text": "x", "action": 1},
        {"type": "whisper", "to": "bob"},
        {"type": "hello", "nick": ["a"]},
        {"type": "ping", "id": {"nested": 1}},
        {"type": "teleport"},
    ],
)
def test_mistyped_or_missing_fields_are_bad_requests(payload: dict) -> None:
    """Missing or mistyped fields and unknown types are bad_request."""
    with pytest.raises(ProtocolError) as caught:
        parse_message(payload)
    assert caught.value.code == "bad_request"


def test_ping_echoes_scalars() -> None:
    """ping keeps id and t as sent."""
    assert parse_message({"type": "ping", "id": "a", "t": 1.5}) == Ping("a", 1.5)


def test_every_cc_character_but_newline_and_tab_is_refused() -> None:
    """The control-character check matches Unicode category Cc exactly."""
    import unicodedata

    for code in range(0x3000):  # Cc lies entirely below U+00A0
        char = chr(code)
        refused = False
        try:
            check_text("a" + char + "b")
        except ProtocolError:
            refused = True
        assert refused == (unicodedata.category(char) == "Cc" and char not in "\n\t"), hex(code)
