"""Parsing of the operator messages (docs/protocol.md, "Extension: operators and access")."""

from __future__ import annotations

from typing import Any

import pytest

from chatsrv.messages import Announce, Kick, Lock, Mute, Op, Slow, Topic, Unban, Unlock, Unmute, parse_message
from lanchat.wire import ProtocolError


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"type": "op", "secret": "abc"}, Op("abc")),
        ({"type": "kick", "nick": "bob"}, Kick("bob")),
        ({"type": "kick", "nick": "bob", "reason": "  spam ", "ban": True}, Kick("bob", "spam", True)),
        ({"type": "kick", "nick": "bob", "reason": None, "ban": None}, Kick("bob")),
        ({"type": "unban", "address": " 10.0.0.7 "}, Unban("10.0.0.7")),
        ({"type": "unban", "address": "::1"}, Unban("::1")),
        ({"type": "mute", "nick": "bob"}, Mute("bob")),
        ({"type": "mute", "nick": "bob", "minutes": 2.5}, Mute("bob", 2.5)),
        ({"type": "unmute", "nick": "bob"}, Unmute("bob")),
        ({"type": "lock"}, Lock()),
        ({"type": "unlock"}, Unlock()),
        ({"type": "slow", "seconds": 0}, Slow(0.0)),
        ({"type": "slow", "seconds": 30}, Slow(30.0)),
        ({"type": "announce", "text": " break "}, Announce("break")),
        ({"type": "topic", "text": "Sockets"}, Topic("Sockets")),
        ({"type": "topic"}, Topic(None)),
    ],
)
def test_operator_messages_parse(payload: dict[str, Any], message: object) -> None:
    """Each operator message type becomes its typed message; optional fields default."""
    assert parse_message(payload) == message


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"type": "op"}, "bad_request"),
        ({"type": "op", "secret": ""}, "bad_request"),
        ({"type": "op", "secret": "x" * 201}, "bad_request"),
        ({"type": "op", "secret": 123}, "bad_request"),
        ({"type": "kick"}, "bad_request"),
        ({"type": "kick", "nick": "b b"}, "nick_invalid"),
        ({"type": "kick", "nick": "bob", "reason": "\x1b[2J"}, "text_invalid"),
        ({"type": "kick", "nick": "bob", "ban": "yes"}, "bad_request"),
        ({"type": "unban", "address": "10.0.0.0/8"}, "bad_request"),
        ({"type": "unban", "address": "bob"}, "bad_request"),
        ({"type": "mute", "nick": "bob", "minutes": 0}, "bad_request"),
        ({"type": "mute", "nick": "bob", "minutes": -1}, "bad_request"),
        ({"type": "mute", "nick": "bob", "minutes": 10081}, "bad_request"),
        ({"type": "mute", "nick": "bob", "minutes": True}, "bad_request"),
        ({"type": "mute", "nick": "bob", "minutes": "5"}, "bad_request"),
        ({"type": "slow"}, "bad_request"),
        ({"type": "slow", "seconds": -1}, "bad_request"),
        ({"type": "slow", "seconds": 3601}, "bad_request"),
        ({"type": "announce"}, "bad_request"),
        ({"type": "announce", "text": "   "}, "text_invalid"),
        ({"type": "topic", "text": "t" * 301}, "text_invalid"),
        ({"type": "topic", "text": "bell\x07"}, "text_invalid"),
    ],
)
def test_bad_operator_messages_are_refused(payload: dict[str, Any], code: str) -> None:
    """Missing, mistyped or out-of-range fields are recoverable errors with the right code."""
    with pytest.raises(ProtocolError) as caught:
        parse_message(payload)
    assert caught.value.code == code and not caught.value.fatal
