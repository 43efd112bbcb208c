"""Client-to-server messages: payload dict -> typed, validated message.

Owns the naming and text rules of docs/protocol.md section 6 and the table of
client message types (section 4, plus the documented extensions in
docs/protocol.md). Every message is a frozen dataclass; `parse_message`
raises a recoverable `ProtocolError` for anything malformed.

Imports only `lanchat.wire` and `chatsrv.lookalike` (the look-alike rules);
no sockets, threads or clocks.
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatsrv.lookalike import hidden_character, mixed_script
from lanchat.reasons import Said, say
from lanchat.wire import ProtocolError

MAX_NICK = 24
MAX_ROOM = 32
MAX_TEXT = 2000
DEFAULT_ROOM = "lobby"

_NAME_PUNCTUATION = frozenset("_-")


def _name_problem(name: str, limit: int, what: str) -> Said | None:
    """Why `name` breaks the nick/room rule of docs/protocol.md §6 (`what`: nick or room), or None."""
    if not 1 <= len(name) <= limit:
        return say(f"{what}_length", limit=limit)
    if unicodedata.category(name[0]).startswith("M"):
        return say(f"{what}_mark")
    hidden = hidden_character(name)
    if hidden is not None:
        # Invisible characters make a name look like another one or like nothing at all.
        return say(f"{what}_hidden", code=f"{ord(hidden):04X}")
    for char in name:
        if char in _NAME_PUNCTUATION:
            continue
        category = unicodedata.category(char)
        if category[0] in "LM" or category == "Nd":
            continue
        return say(f"{what}_character", char=repr(char))
    return None


def check_nick(nick: str) -> str:
    """Return `nick` if valid, else raise `nick_invalid`.

    Beyond the name rule, a nick may not mix Latin letters with Cyrillic or
    Greek ones (`tеacher` with a Cyrillic `е`); a nick in any one script is fine.
    """
    problem = _name_problem(nick, MAX_NICK, "nick")
    if problem is None and mixed_script(nick):
        problem = say("nick_scripts")
    if problem:
        raise ProtocolError("nick_invalid", problem)
    return nick


def check_room(room: str) -> str:
    """Return `room` if valid, else raise `room_invalid`."""
    problem = _name_problem(room, MAX_ROOM, "room")
    if problem:
        raise ProtocolError("room_invalid", problem)
    return room


# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; newline and tab are allowed.
_FORBIDDEN_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def check_text(text: str) -> str:
    """Return the stripped text if valid, else raise `text_invalid`.

    Control characters (category Cc) other than newline and tab are refused
    anywhere in the text: they could drive other users' terminals.
    """
    control = _FORBIDDEN_CONTROL.search(text)
    if control is not None:
        raise ProtocolError("text_invalid", say("text_control", code=f"{ord(control.group()):04X}"))
    stripped = text.strip()
    if not 1 <= len(stripped) <= MAX_TEXT:
        raise ProtocolError("text_invalid", say("text_length", limit=MAX_TEXT))
    return stripped


# --- messages -------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    nick: str
    room: str = DEFAULT_ROOM
    password: str | None = None
    cookie: str | None = None
    features: frozenset[str] = frozenset()  # the optional features asked for (docs/protocol.md §13)


@dataclass(frozen=True)
class Say:
    text: str
    action: bool = False


@dataclass(frozen=True)
class Whisper:
    to: str
    text: str


@dataclass(frozen=True)
class Nick:
    nick: str


@dataclass(frozen=True)
class Join:
    room: str


@dataclass(frozen=True)
class Who:
    room: str | None = None


@dataclass(frozen=True)
class Rooms:
    pass


@dataclass(frozen=True)
class Ping:
    id: Any = None
    t: Any = None


@dataclass(frozen=True)
class Stats:
    pass


@dataclass(frozen=True)
class Bye:
    pass


# --- operator messages (docs/protocol.md, "Extension: operators and access") --


@dataclass(frozen=True)
class Op:
    secret: str


@dataclass(frozen=True)
class Kick:
    nick: str
    reason: str | None = None
    ban: bool = False


@dataclass(frozen=True)
class Unban:
    address: str


@dataclass(frozen=True)
class Mute:
    nick: str
    minutes: float | None = None  # None: until unmuted


@dataclass(frozen=True)
class Unmute:
    nick: str


@dataclass(frozen=True)
class Lock:
    all: bool = False  # every room, and room changes stop for non-operators


@dataclass(frozen=True)
class Unlock:
    all: bool = False  # end `lock` with `all`, and every room's own lock


@dataclass(frozen=True)
class Slow:
    seconds: float  # 0 turns slow mode off


@dataclass(frozen=True)
class Announce:
    text: str


@dataclass(frozen=True)
class CloseRoom:
    room: str


@dataclass(frozen=True)
class Topic:
    text: str | None = None  # None clears the topic


Message = (
    Hello | Say | Whisper | Nick | Join | Who | Rooms | Ping | Stats | Bye
    | Op | Kick | Unban | Mute | Unmute | Lock | Unlock | Slow | Announce | Topic | CloseRoom
)


class _Fields:
    """Typed access to a payload's fields, raising `bad_request` on mistakes."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.type = payload["type"]

    def _get(self, name: str, accepts: Callable[[Any], bool], required: bool) -> Any:
        value = self.payload.get(name)
        if value is None:
            if required:
                raise ProtocolError("bad_request", say("field_missing", type=self.type, field=name))
            return None
        if not accepts(value):
            raise ProtocolError("bad_request", say("field_type", type=self.type, field=name))
        return value

    def text(self, name: str) -> str:
        value = self.payload.get(name)
        if type(value) is str:  # the common case, without the generic checks
            return value
        return str(self._get(name, _is_str, True))

    def optional_text(self, name: str) -> str | None:
        value = self._get(name, _is_str, False)
        return None if value is None else str(value)

    def flag(self, name: str) -> bool:
        value = self.payload.get(name, False)
        if value is False or value is True:
            return value
        return self._get(name, _is_bool, False) is True

    def number(self, name: str, required: bool = False) -> float | None:
        value = self._get(name, _is_number, required)
        return None if value is None else float(value)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _hello(f: _Fields) -> Hello:
    room = f.optional_text("room")
    return Hello(
        nick=check_nick(f.text("nick")),
        room=check_room(room) if room is not None else DEFAULT_ROOM,
        password=f.optional_text("password"),
        cookie=f.optional_text("cookie"),
        features=_features(f),
    )


MAX_FEATURES = 16  # names in `hello.features`; more is a bad_request


def _features(f: _Fields) -> frozenset[str]:
    """`hello.features`: a list of at most MAX_FEATURES short strings; names the server does not know are kept
    here and ignored by the service (a newer client may ask for more than this server offers)."""
    value = f.payload.get("features")
    if value is None:
        return frozenset()
    if (
        not isinstance(value, list)
        or len(value) > MAX_FEATURES
        or not all(isinstance(name, str) and 0 < len(name) <= 32 for name in value)
    ):
        raise ProtocolError("bad_request", say("features_list", limit=MAX_FEATURES))
    return frozenset(value)


def _who(f: _Fields) -> Who:
    room = f.optional_text("room")
    return Who(room=check_room(room) if room is not None else None)


MAX_PING_ID = 64  # characters of a string ping `id`: a pong never reflects more


def _small_number(value: Any) -> bool:
    """A finite float, or an integer of at most 64 bits: what a ping may carry as a number."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**64


def _ping(f: _Fields) -> Ping:
    # id and t are echoed (docs/protocol.md §4, §7.2), so both are bounded: `id` is
    # null, a boolean, a number or a string of at most MAX_PING_ID characters, `t`
    # null or a number; a pong can never reflect a large value.
    ping_id = f.payload.get("id")
    if isinstance(ping_id, str):
        if len(ping_id) > MAX_PING_ID:
            raise ProtocolError("bad_request", say("ping_id_length", limit=MAX_PING_ID))
    elif not (ping_id is None or isinstance(ping_id, bool) or _small_number(ping_id)):
        raise ProtocolError("bad_request", say("ping_id_type"))
    t = f.payload.get("t")
    if t is not None and not _small_number(t):
        raise ProtocolError("bad_request", say("ping_t_type"))
    return Ping(id=ping_id, t=t)


MAX_SECRET = 200
MAX_TOPIC = 300
MAX_MUTE_MINUTES = 7 * 24 * 60
MAX_SLOW_SECONDS = 3600


def _in_range(
    f: _Fields, name: str, low: float, high: float, low_included: bool = True, required: bool = False
) -> float | None:
    """A number field that must lie in [low, high] (or (low, high])."""
    value = f.number(name, required)
    if value is None:
        return None
    if not (low <= value <= high) or (not low_included and value == low):
        key = "out_of_range" if low_included else "out_of_range_above"
        raise ProtocolError("bad_request", say(key, type=f.type, field=name, low=low, high=high))
    return value


def _op(f: _Fields) -> Op:
    secret = f.text("secret")
    if not 1 <= len(secret) <= MAX_SECRET:
        raise ProtocolError("bad_request", say("secret_length", limit=MAX_SECRET))
    return Op(secret=secret)


def _kick(f: _Fields) -> Kick:
    reason = f.optional_text("reason")
    return Kick(
        nick=check_nick(f.text("nick")), reason=check_text(reason) if reason is not None else None, ban=f.flag("ban")
    )


def _unban(f: _Fields) -> Unban:
    address = f.text("address").strip()
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ProtocolError("bad_request", say("not_an_address", address=address[:60])) from None
    return Unban(address=address)


def _slow(f: _Fields) -> Slow:
    seconds = _in_range(f, "seconds", 0, MAX_SLOW_SECONDS, required=True)
    assert seconds is not None
    return Slow(seconds=seconds)


def _topic(f: _Fields) -> Topic:
    text = f.optional_text("text")
    if text is None:
        return Topic(None)
    text = check_text(text)
    if len(text) > MAX_TOPIC:
        raise ProtocolError("text_invalid", say("topic_length", limit=MAX_TOPIC))
    return Topic(text)


PARSERS: dict[str, Callable[[_Fields], Any]] = {
    "hello": _hello,
    "say": lambda f: Say(text=check_text(f.text("text")), action=f.flag("action")),
    "whisper": lambda f: Whisper(to=check_nick(f.text("to")), text=check_text(f.text("text"))),
    "nick": lambda f: Nick(nick=check_nick(f.text("nick"))),
    "join": lambda f: Join(room=check_room(f.text("room"))),
    "who": _who,
    "rooms": lambda f: Rooms(),
    "ping": _ping,
    "stats": lambda f: Stats(),
    "bye": lambda f: Bye(),
    # operator messages
    "op": _op,
    "kick": _kick,
    "unban": _unban,
    "mute": lambda f: Mute(
        nick=check_nick(f.text("nick")), minutes=_in_range(f, "minutes", 0, MAX_MUTE_MINUTES, low_included=False)
    ),
    "unmute": lambda f: Unmute(nick=check_nick(f.text("nick"))),
    "lock": lambda f: Lock(all=f.flag("all")),
    "unlock": lambda f: Unlock(all=f.flag("all")),
    "slow": _slow,
    "announce": lambda f: Announce(text=check_text(f.text("text"))),
    "topic": _topic,
    "close_room": lambda f: CloseRoom(room=check_room(f.text("room"))),
}


def parse_message(payload: dict[str, Any]) -> Any:
    """Turn a decoded payload into its typed message, or raise ProtocolError."""
    parser = PARSERS.get(payload["type"])
    if parser is None:
        raise ProtocolError("bad_request", say("unknown_type", type=payload["type"][:40]))
    return parser(_Fields(payload))
