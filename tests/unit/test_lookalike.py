"""Look-alike nicks and rooms (docs/protocol.md §6): the key, the refused characters, mixed scripts."""

from __future__ import annotations

import unicodedata

import pytest

from chatsrv.lookalike import hidden_character, likeness_key, mixed_script, skeleton
from chatsrv.messages import check_nick, check_room
from chatsrv.rooms import Registry
from chatsrv.service import ChatService
from lanchat.wire import ProtocolError
from tests.unit.test_service import connect, member, send

# Every look-alike of `teacher` from issue 15's audit, with the code a hello gets while `teacher` is online.
LOOKALIKES = [
    ("teacher\u034f", "nick_invalid"),  # combining grapheme joiner: invisible
    ("teacher\ufe0f", "nick_invalid"),  # variation selector 16
    ("teacher\U000e0100", "nick_invalid"),  # variation selector 17
    ("\uff54\uff45\uff41\uff43\uff48\uff45\uff52", "nick_taken"),  # fullwidth
    ("\U0001d42d\U0001d41e\U0001d41a\U0001d41c\U0001d421\U0001d41e\U0001d42b", "nick_taken"),  # mathematical bold
    ("t\u0435acher", "nick_invalid"),  # Cyrillic е among Latin letters
    ("\u3164", "nick_invalid"),  # Hangul filler: a blank-looking nick
    ("\u115f\u115f", "nick_invalid"),  # Hangul choseong filler
    ("\u1160", "nick_invalid"),  # Hangul jungseong filler
    ("a\uffa0b", "nick_invalid"),  # halfwidth Hangul filler
    ("TEACHER", "nick_taken"),
]
SINGLE_SCRIPT = ["李雷", "अनिल", "สมชาย", "Алёна", "bob_2", "Ωμέγα", "Ünïcödé"]


@pytest.mark.parametrize(("nick", "code"), LOOKALIKES, ids=[ascii(n) for n, _ in LOOKALIKES])
def test_every_lookalike_of_teacher_is_refused(nick: str, code: str) -> None:
    """Each look-alike of `teacher` is refused with nick_invalid, or maps to teacher's key (nick_taken)."""
    if code == "nick_invalid":
        with pytest.raises(ProtocolError) as caught:
            check_nick(nick)
        assert caught.value.code == "nick_invalid"
    else:
        assert check_nick(nick) == nick
        assert likeness_key(nick) == likeness_key("teacher")


@pytest.mark.parametrize("nick", SINGLE_SCRIPT)
def test_single_script_nicks_keep_working(nick: str) -> None:
    """Nicks in any one script, with their combining marks, are still valid."""
    assert check_nick(nick) == nick


@pytest.mark.parametrize(
    "char", ["\u200b", "\u200d", "\u2060", "\ufeff", "\u202e", "\u2066", "\U000e0041", "\u00ad", "\u180b", "\u3164"]
)
def test_hidden_characters_are_refused_in_nicks_and_rooms(char: str) -> None:
    """Zero-width, tag, bidi, soft hyphen, variation selectors and fillers: refused in nicks and rooms."""
    assert hidden_character(f"ab{char}c") == char
    with pytest.raises(ProtocolError) as nick_error:
        check_nick(f"ab{char}c")
    with pytest.raises(ProtocolError) as room_error:
        check_room(f"ab{char}c")
    assert (nick_error.value.code, room_error.value.code) == ("nick_invalid", "room_invalid")


def test_every_format_character_is_hidden() -> None:
    """Every assigned character of category Cf counts as hidden."""
    format_characters = [chr(code) for code in range(0x110000) if unicodedata.category(chr(code)) == "Cf"]
    assert len(format_characters) > 100
    assert all(hidden_character(char) == char for char in format_characters)


@pytest.mark.parametrize(("nick", "mixed"), [("tеacher", True), ("αlice", True), ("Алёна", False), ("bob", False)])
def test_mixed_script(nick: str, mixed: bool) -> None:
    """Latin mixed with Cyrillic or Greek is mixed; one script alone is not."""
    assert mixed_script(nick) is mixed


def test_skeleton_uses_unicode_confusables() -> None:
    """The skeleton maps Cyrillic е to e, the digit 0 to O and m to rn (UTS #39 confusables.txt)."""
    assert skeleton("\u0435") == "e"
    assert skeleton("0") == "O"
    assert skeleton("m") == "rn"
    assert likeness_key("b0b") == likeness_key("BOB")
    assert likeness_key("\u0421\u043e\u0441\u043e") == likeness_key("coco")  # all-Cyrillic Сосо


def test_registry_finds_lookalikes_of_nicks_and_rooms() -> None:
    """The registry finds a member and a room by any look-alike of their names."""
    registry = Registry()
    session, _ = connect(ChatService(rate=0, server_name="test"))  # a session that has not joined
    room = registry.ensure_room("lobby")
    registry.add(session, "teacher", room)
    assert registry.find("\uff54\uff45\uff41\uff43\uff48\uff45\uff52") is session
    assert registry.find("t\u0435acher") is session
    assert registry.ensure_room("\uff4c\uff4f\uff42\uff42\uff59") is room  # fullwidth lobby
    assert registry.room("LOBBY") is room
    registry.rename(session, "teach")
    assert registry.find("teacher") is None and registry.find("TEACH") is session
    registry.remove(session)
    assert registry.find("teach") is None


def test_service_refuses_fullwidth_teacher_while_teacher_is_online() -> None:
    """A hello or a rename to a look-alike of an online nick is nick_taken."""
    service = ChatService(rate=0, server_name="test")
    member(service, "teacher")
    student, outbox = connect(service)
    send(service, student, type="hello", nick="\uff54\uff45\uff41\uff43\uff48\uff45\uff52")
    assert outbox.last()["code"] == "nick_taken"
    send(service, student, type="hello", nick="student")
    assert outbox.last()["type"] == "welcome"
    send(service, student, type="nick", nick="\U0001d42d\U0001d41e\U0001d41a\U0001d41c\U0001d421\U0001d41e\U0001d42b")
    assert outbox.last()["code"] == "nick_taken"
