"""What the server says in words, as a key and facts: one table for the server's English and the client's language.

The server composes sentences for people (why it refused, what an operator
did); version 1 puts them in `error.message` and `notice.text`, in English.
Each such sentence is an entry here: a stable key (`REASONS`) and its English
template with named fields. The server makes its English text from the table
(`say`) and sends the key and the facts beside it (`reason`, `args`:
docs/protocol.md §14); the client renders the same key in its user's language
(`render` with gettext's `_`) and falls back to the server's English when the
key is unknown or the facts do not fit (an older or newer server, or a
hostile one).

A field named in `VOCABULARY` carries a word's key (an operator command in
`only operators may {action}`), not text: it is translated too.

Pure: no I/O, no imports from the project; the templates are marked with
`N_` for Babel's extraction (tests/i18n/test_catalogue.py) and translated
by whoever shows them.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Scalar = str | int | float | bool

MAX_ARGS = 8  # fields a client accepts in one `args`
MAX_ARG_CHARS = 400  # characters a client accepts in one text field (a topic is at most 300)


def N_(message: str) -> str:
    """Mark `message` for extraction; it is translated where it is shown."""
    return message


def _identity(message: str) -> str:
    return message


# key -> English template. A key is never reused for another meaning; a changed sentence gets a new key.
REASONS: dict[str, str] = {
    # --- errors: operators (docs/protocol.md §9.5)
    "op_required": N_("only operators may {action}; the teacher becomes one with /op SECRET"),
    "op_secret_wrong": N_("wrong operator secret ({left} tries left on this connection)"),
    "op_secret_wrong_closing": N_("wrong operator secret; {tries} wrong tries, closing"),
    "op_secret_none": N_("this server has no operator secret ({left} tries left on this connection)"),
    "op_secret_none_closing": N_("this server has no operator secret; {tries} wrong tries, closing"),
    "op_secret_wait": N_(
        "too many wrong secrets from {host}: try again in {seconds} s ({left} tries left on this connection)"
    ),
    "op_secret_wait_closing": N_(
        "too many wrong secrets from {host}: try again in {seconds} s; {tries} wrong tries, closing"
    ),
    "op_not_kickable": N_("{nick} is an operator: operators cannot be kicked"),
    "op_not_mutable": N_("{nick} is an operator: operators cannot be muted"),
    "ban_no_address": N_("{nick} has no IP address to ban"),
    "ban_operator_address": N_("cannot ban {address}: an operator is connected from that address"),
    "lobby_not_closable": N_("{room} is where everyone starts: it cannot be closed"),
    "no_such_user": N_('nobody called "{nick}" is here'),
    "no_such_muted": N_('nobody called "{nick}" is here or muted'),
    # --- errors: moderation rules
    "muted_say": N_(
        "you are muted by {by} until an operator unmutes you: "
        "you can read and whisper to operators, but the room does not hear you"
    ),
    "muted_say_for": N_(
        "you are muted by {by} for {minutes} more minute(s): "
        "you can read and whisper to operators, but the room does not hear you"
    ),
    "muted_whisper": N_("you are muted by {by} until an operator unmutes you: you may whisper only to operators"),
    "muted_whisper_for": N_("you are muted by {by} for {minutes} more minute(s): you may whisper only to operators"),
    "muted_rename": N_("you are muted by {by} until an operator unmutes you: you cannot change your nick while muted"),
    "muted_rename_for": N_(
        "you are muted by {by} for {minutes} more minute(s): you cannot change your nick while muted"
    ),
    "locked_all_say": N_("{by} locked every room: only operators may speak until it is unlocked"),
    "locked_room_say": N_("the room is locked by {by}: only operators may speak until it is unlocked"),
    "locked_all_join": N_("{by} locked every room: stay where you are until it is unlocked"),
    "slow_mode": N_("slow mode: one message every {gap:g} s here; wait {wait} s"),
    # --- errors: nicks, room names, texts (docs/protocol.md §6)
    "nick_taken": N_('the nick "{nick}" is already in use'),
    "nick_lookalike": N_('"{nick}" looks too much like "{held}", who is here'),
    "nick_length": N_("nick must be 1 to {limit} characters long"),
    "nick_mark": N_("nick must not start with a combining mark"),
    "nick_hidden": N_("nick must not contain the invisible or format character U+{code}"),
    "nick_character": N_("nick may contain only letters, digits, marks, '_' and '-' (not {char})"),
    "nick_scripts": N_("nick must not mix scripts (one script, or Latin with Chinese, Japanese or Korean)"),
    "room_length": N_("room name must be 1 to {limit} characters long"),
    "room_mark": N_("room name must not start with a combining mark"),
    "room_hidden": N_("room name must not contain the invisible or format character U+{code}"),
    "room_character": N_("room name may contain only letters, digits, marks, '_' and '-' (not {char})"),
    "text_control": N_("text contains the control character U+{code}"),
    "text_length": N_("text must be 1 to {limit} characters after stripping spaces"),
    "topic_length": N_("a topic is at most {limit} characters"),
    # --- errors: payloads a program got wrong (bad_request)
    "field_missing": N_('"{type}" needs the field "{field}"'),
    "field_type": N_('field "{field}" of "{type}" has the wrong type'),
    "out_of_range": N_('field "{field}" of "{type}" must be {low:g} or more and at most {high:g}'),
    "out_of_range_above": N_('field "{field}" of "{type}" must be more than {low:g} and at most {high:g}'),
    "features_list": N_('"features" of "hello" must be a list of at most {limit} names'),
    "ping_id_length": N_('field "id" of "ping" is at most {limit} characters'),
    "ping_id_type": N_('field "id" of "ping" must be a string, a number, a boolean or null'),
    "ping_t_type": N_('field "t" of "ping" must be a number'),
    "secret_length": N_("an operator secret is 1 to {limit} characters"),
    "not_an_address": N_('"{address}" is not an IP address'),
    "unknown_type": N_('unknown message type "{type}"'),
    "already_joined": N_("already joined: hello is only for the start of a session"),
    # --- errors: speed, room and connection limits, passwords
    "too_fast": N_("you are sending too fast; slow down"),
    "pings_too_fast": N_("at most {rate:g} pings per second; slow down"),
    "rooms_too_fast": N_("you are opening new rooms too fast; join one that exists (/rooms)"),
    "rooms_full": N_("all {limit} rooms are in use; join one of them (/rooms)"),
    "server_full": N_("the server is full ({limit} users)"),
    "too_many_from": N_("too many connections from {host} (limit {limit})"),
    "too_many_waiting_from": N_("too many connections from {host} that have not said hello (limit {limit})"),
    "too_many_waiting": N_("too many connections that have not said hello (limit {limit})"),
    "password_needed": N_("this server needs a password"),
    "password_wrong": N_("wrong password"),
    "password_wait": N_("too many wrong passwords from {host}: try again in {seconds} s"),
    "banned": N_("{host} is banned from this server (an operator can lift it with /unban)"),
    "address_refused": N_("{host} is not allowed on this server"),
    "ip_only": N_("this server accepts only IP addresses"),
    "joins_too_fast": N_("too many new connections from {host}: at most {burst} at once, then {rate:g} per second"),
    "no_hello": N_("no hello within {seconds:g} seconds"),
    "no_nick": N_("no nick within {seconds:g} seconds"),
    "hello_first": N_('send "hello" first'),
    "hello_first_closing": N_("say hello first; closing"),
    "datagram_too_large": N_("datagram larger than {limit} bytes"),
    "internal_error": N_("the server failed to handle this payload; it was ignored"),
    # --- notices: answers to an operator (docs/protocol.md §9.4)
    "already_operator": N_("you are already an operator"),
    "now_operator": N_("{nick} is now an operator"),
    "you_banned": N_("you banned {nick} ({address}); /unban {address} lifts it"),
    "you_kicked": N_("you kicked {nick}"),
    "unbanned": N_("{address} may connect again"),
    "not_banned": N_("{address} was not banned"),
    "muted_you": N_(
        "{by} muted you until an operator unmutes you: "
        "you can read and whisper to operators, but the room does not hear you"
    ),
    "muted_you_for": N_(
        "{by} muted you for {minutes:g} minute(s): "
        "you can read and whisper to operators, but the room does not hear you"
    ),
    "you_muted": N_("you muted {nick} until an operator unmutes them"),
    "you_muted_for": N_("you muted {nick} for {minutes:g} minute(s)"),
    "not_muted": N_("{nick} was not muted"),
    "unmuted_you": N_("{by} unmuted you: the room hears you again"),
    "you_unmuted": N_("you unmuted {nick}"),
    "mute_ended": N_("your mute has ended: the room hears you again"),
    "mute_ended_of": N_("the mute of {nick} has ended: the room hears them again"),
    # --- notices: rooms
    "locked_all": N_("{by} locked every room: only operators may speak or change rooms until it is unlocked"),
    "unlocked_all": N_("{by} unlocked every room: everyone may speak and change rooms again"),
    "locked_room": N_("{by} locked {room}: only operators may speak here until it is unlocked"),
    "unlocked_room": N_("{by} unlocked {room}: everyone may speak again"),
    "slow_on": N_("{by} turned on slow mode in {room}: one message every {seconds:g} s per person"),
    "slow_off": N_("{by} turned off slow mode in {room}"),
    "topic_set": N_("{by} set the topic of {room}: {topic}"),
    "topic_cleared": N_("{by} cleared the topic of {room}"),
    "locked_out": N_("{by} locked every room: you are in {room} until it is unlocked"),
    "room_closed": N_("{by} closed {room}: everyone here moves to {lobby}"),
    "you_closed": N_("you closed {room} and deleted its history"),
    "shutting_down": N_("the server is shutting down"),
    "backplane_lost": N_(
        "the link to the other chat servers is lost: until it is back, only people on this server hear you"
    ),
    "backplane_back": N_("the link to the other chat servers is back: everyone hears you again"),
    "backplane_renamed": N_(
        "while the chat servers were apart, someone on another server took the nick {old}: you are {new} now"
    ),
    "backplane_behind": N_(
        "this server fell behind the other chat servers and caught up again: you may have missed some messages"
    ),
    "backplane_lapsed": N_(
        "this server stopped answering the other chat servers for a while: people there saw you leave, and now"
        " see you back"
    ),
}

# field -> the words its value may name (key -> English). Operator commands, as in `op_required`.
VOCABULARY: dict[str, dict[str, str]] = {
    "action": {
        "kick": N_("kick"),
        "ban": N_("ban"),
        "unban": N_("unban"),
        "mute": N_("mute"),
        "unmute": N_("unmute"),
        "lock_room": N_("lock a room"),
        "lock_rooms": N_("lock rooms"),
        "unlock_room": N_("unlock a room"),
        "unlock_rooms": N_("unlock rooms"),
        "slow": N_("set slow mode"),
        "topic": N_("set the topic"),
        "announce": N_("announce"),
        "close_room": N_("close a room"),
    },
}

# `left.reason` (docs/protocol.md §5) -> the words shown for it. English shows the key itself, as it always
# has (but "slow reader"); a reason not listed (a newer server's) is shown as sent. `moved` is said with its
# room by whoever shows it.
LEFT_REASONS: dict[str, str] = {
    "quit": N_("quit"),
    "lost": N_("lost"),
    "timeout": N_("timeout"),
    "kicked": N_("kicked"),
    "slow": N_("slow reader"),  # not "slow": that msgid is slow mode's
    "moved": N_("moved"),
    "error": N_("error"),
    "shutdown": N_("shutdown"),
}


def left_reason(reason: str, translate: Callable[[str], str] = _identity) -> str:
    """The words for a `left` reason in the language of `translate`; an unknown reason as it came."""
    return translate(LEFT_REASONS[reason]) if reason in LEFT_REASONS else reason


_formatter = string.Formatter()


def fields_of(template: str) -> set[str]:
    """The names of the `{fields}` in `template`."""
    return {name for _text, name, _spec, _conversion in _formatter.parse(template) if name}


def render(key: Any, args: Any, translate: Callable[[str], str] = _identity) -> str | None:
    """The sentence `key` says with `args`, in the language of `translate`; None when they do not make one.

    Anything may come in (the client passes what a server sent): an unknown
    key, args that are not a small mapping of JSON scalars, a field missing
    or of the wrong kind, a word not in the vocabulary: None, and the caller
    shows the server's own text instead. Never raises.
    """
    if not isinstance(key, str) or key not in REASONS:
        return None
    if args is None:
        args = {}
    if not isinstance(args, Mapping) or len(args) > MAX_ARGS:
        return None
    values: dict[str, Scalar] = {}
    for name in fields_of(REASONS[key]):
        value = args.get(name)
        if name in VOCABULARY:
            words = VOCABULARY[name]
            if not isinstance(value, str) or value not in words:
                return None
            value = translate(words[value])
        elif isinstance(value, str):
            if len(value) > MAX_ARG_CHARS:
                return None
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        values[name] = value
    try:
        return translate(REASONS[key]).format(**values)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError):  # text for a number, or an int too large
        return None


@dataclass(frozen=True)
class Said:
    """A sentence the server says: its key, its facts, and its English text (made from the table by `say`)."""

    key: str
    args: dict[str, Scalar]
    text: str

    def __str__(self) -> str:
        """The English, as in a log record's arguments (chatsrv's console renders the key in its language)."""
        return self.text

    def fields(self, text_field: str = "text") -> dict[str, Any]:
        """The payload fields: the English under `text_field` (`text` of a notice, `message` of an error),
        `reason` and, when there are facts, `args`."""
        payload: dict[str, Any] = {text_field: self.text, "reason": self.key}
        if self.args:
            payload["args"] = dict(self.args)
        return payload


def say(key: str, **args: Scalar) -> Said:
    """The sentence `key` with `args`; raises at once if they do not fit (a mistake in the server)."""
    text = render(key, args)
    if text is None:
        raise ValueError(f"reason {key!r} does not fit {args!r}")
    return Said(key, args, text)
