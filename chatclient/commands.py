"""Slash commands: one table drives parsing, completion and /help.

Pure: `parse("/msg bob hi")` returns what to do (a payload to send, a local
action, or a problem to show). Nothing here touches the network or the
terminal. Imports only lanchat.i18n (help texts are marked with N_ where the
table is built and translated where they are shown).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lanchat.i18n import N_, _, display_width, pad_right


@dataclass(frozen=True)
class Send:
    """Send this payload to the server."""

    payload: dict[str, Any]


@dataclass(frozen=True)
class Local:
    """Handled by the client itself: help, quit, stats, ..."""

    name: str
    argument: str = ""


@dataclass(frozen=True)
class Problem:
    """The line cannot be sent as typed; show `message` to the user."""

    message: str


Action = Send | Local | Problem


@dataclass(frozen=True)
class Command:
    name: str
    usage: str  # the arguments, as shown in /help (marked with N_, translated where shown)
    help: str
    build: Callable[[str], Action]
    completes: str = ""  # what the first argument completes to: "nick", "room" or ""
    aliases: tuple[str, ...] = ()
    operator: bool = False  # only operators may use it (listed apart in /help)


def _this_room_or_all(kind: str, argument: str) -> Send:
    """`/lock` or `/unlock`: this room, or every room with `all`."""
    return Send({"type": kind, "all": True} if argument.strip().lower() == "all" else {"type": kind})


def _needs(argument: str, usage: str, name: str, make: Callable[[str], Action]) -> Action:
    if not argument:
        return Problem(_("usage: /{name} {usage}").format(name=name, usage=_(usage)))
    return make(argument)


def _msg(argument: str) -> Action:
    nick, _sep, text = argument.partition(" ")
    if not nick or not text.strip():
        return Problem(_("usage: /msg NICK TEXT"))
    return Send({"type": "whisper", "to": nick, "text": text})


def _ping(argument: str) -> Action:
    return Local("ping")


COMMANDS: list[Command] = [
    Command(
        "nick",
        N_("NEWNICK"),
        N_("change your nick"),
        lambda a: _needs(a, N_("NEWNICK"), "nick", lambda x: Send({"type": "nick", "nick": x})),
    ),
    Command(
        "join",
        N_("ROOM"),
        N_("go to another room (created if new)"),
        lambda a: _needs(a, N_("ROOM"), "join", lambda x: Send({"type": "join", "room": x})),
        completes="room",
    ),
    Command(
        "msg",
        N_("NICK TEXT"),
        N_("whisper to one user, wherever they are"),
        _msg,
        completes="nick",
        aliases=("w", "whisper"),
    ),
    Command(
        "me",
        N_("ACTION"),
        N_("say what you do: /me waves"),
        lambda a: _needs(a, N_("ACTION"), "me", lambda x: Send({"type": "say", "text": x, "action": True})),
    ),
    Command(
        "who",
        N_("[ROOM]"),
        N_("list the users of a room (yours by default)"),
        lambda a: Send({"type": "who", "room": a} if a else {"type": "who"}),
        completes="room",
    ),
    Command("rooms", "", N_("list the rooms that have users"), lambda a: Send({"type": "rooms"})),
    Command("ping", "", N_("measure the round trip to the server"), _ping),
    Command("stats", "", N_("show what you sent and received, and any loss"), lambda a: Local("stats")),
    Command("help", "", N_("show this list"), lambda a: Local("help")),
    Command("quit", "", N_("leave the chat"), lambda a: Local("quit"), aliases=("exit",)),
]

# --- operator commands (docs/protocol.md, "Extension: operators and access") ---


def _target(argument: str, usage: str, name: str, make: Callable[[str, str], Action]) -> Action:
    """NICK and the rest of the line, for commands aimed at one member."""
    nick, _sep, rest = argument.partition(" ")
    if not nick:
        return Problem(_("usage: /{name} {usage}").format(name=name, usage=_(usage)))
    return make(nick, rest.strip())


def _kick(ban: bool) -> Callable[[str], Action]:
    def build(argument: str) -> Action:
        def make(nick: str, reason: str) -> Action:
            payload: dict[str, Any] = {"type": "kick", "nick": nick}
            if reason:
                payload["reason"] = reason
            if ban:
                payload["ban"] = True
            return Send(payload)

        return _target(argument, N_("NICK [REASON]"), "ban" if ban else "kick", make)

    return build


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() else value  # "5", not "5.0", on the wire


def _mute(argument: str) -> Action:
    def make(nick: str, rest: str) -> Action:
        if not rest:
            return Send({"type": "mute", "nick": nick})
        minutes = _number(rest)
        if minutes is None or minutes <= 0:
            return Problem(
                _("usage: /mute NICK [MINUTES]  (MINUTES is a number above 0; leave it out to mute until /unmute)")
            )
        return Send({"type": "mute", "nick": nick, "minutes": minutes})

    return _target(argument, N_("NICK [MINUTES]"), "mute", make)


def _slow(argument: str) -> Action:
    if argument.lower() == "off":
        return Send({"type": "slow", "seconds": 0})
    seconds = _number(argument)
    if seconds is None or seconds < 0:
        return Problem(_("usage: /slow SECONDS  (0 or off turns slow mode off)"))
    return Send({"type": "slow", "seconds": seconds})


def _topic(argument: str) -> Action:
    if not argument:
        return Local("topic")  # show the current topic
    if argument == "-":
        return Send({"type": "topic"})  # no text: clear it
    return Send({"type": "topic", "text": argument})


OPERATOR_COMMANDS: list[Command] = [
    Command(
        "op",
        N_("SECRET"),
        N_("become an operator with the secret chatsrv printed at start"),
        lambda a: _needs(a, N_("SECRET"), "op", lambda x: Send({"type": "op", "secret": x})),
    ),
    Command(
        "kick",
        N_("NICK [REASON]"),
        N_("remove someone from the chat (they may come back)"),
        _kick(False),
        completes="nick",
        operator=True,
    ),
    Command(
        "ban",
        N_("NICK [REASON]"),
        N_("kick someone and keep their address out until /unban ADDRESS"),
        _kick(True),
        completes="nick",
        operator=True,
    ),
    Command(
        "unban",
        N_("ADDRESS"),
        N_("let a banned address in again"),
        lambda a: _needs(a, N_("ADDRESS"), "unban", lambda x: Send({"type": "unban", "address": x})),
        operator=True,
    ),
    Command(
        "mute",
        N_("NICK [MINUTES]"),
        N_("stop someone speaking in rooms (for MINUTES, or until /unmute)"),
        _mute,
        completes="nick",
        operator=True,
    ),
    Command(
        "unmute",
        N_("NICK"),
        N_("let a muted person speak again"),
        lambda a: _needs(a, N_("NICK"), "unmute", lambda x: Send({"type": "unmute", "nick": x})),
        completes="nick",
        operator=True,
    ),
    Command(
        "lock",
        "[all]",
        N_("only operators may speak in this room (all: in every room, and nobody else changes rooms)"),
        lambda a: _this_room_or_all("lock", a),
        operator=True,
    ),
    Command(
        "unlock",
        "[all]",
        N_("everyone may speak in this room again (all: in every room)"),
        lambda a: _this_room_or_all("unlock", a),
        operator=True,
    ),
    Command(
        "slow",
        N_("SECONDS"),
        N_("one message per person every SECONDS in this room (0: off)"),
        lambda a: _needs(a, N_("SECONDS"), "slow", _slow),
        operator=True,
    ),
    Command(
        "announce",
        N_("TEXT"),
        N_("a notice to everyone in every room"),
        lambda a: _needs(a, N_("TEXT"), "announce", lambda x: Send({"type": "announce", "text": x})),
        operator=True,
    ),
    Command("topic", N_("[TEXT|-]"), N_("show the topic; operators set it (- clears it)"), _topic),
    Command(
        "close",
        N_("ROOM"),
        N_("move everyone in ROOM to lobby and delete its history"),
        lambda a: _needs(a, N_("ROOM"), "close", lambda x: Send({"type": "close_room", "room": x})),
        completes="room",
        operator=True,
    ),
]
COMMANDS.extend(OPERATOR_COMMANDS)

_BY_NAME: dict[str, Command] = {}
for _command in COMMANDS:
    _BY_NAME[_command.name] = _command
    for _alias in _command.aliases:
        _BY_NAME[_alias] = _command


def find(name: str) -> Command | None:
    return _BY_NAME.get(name.lower())


def parse(line: str) -> Action | None:
    """What a typed line means; None for an empty line.

    A line starting with "//" says a text that starts with "/".
    """
    if not line.strip():
        return None
    if line.startswith("//"):
        return Send({"type": "say", "text": line[1:]})
    if not line.startswith("/"):
        return Send({"type": "say", "text": line})
    name, _sep, argument = line[1:].partition(" ")
    command = find(name)
    if command is None:
        return Problem(_("unknown command /{name}; /help lists them").format(name=name))
    return command.build(argument.strip())


def help_lines() -> list[str]:
    """/help, generated from the same table that parses commands."""
    heads = {c.name: f"/{c.name} {_(c.usage)}".rstrip() for c in COMMANDS}
    width = max(display_width(head) for head in heads.values())
    lines = [_("commands (anything else is said to your room; // starts a line with /):")]
    for operator in (False, True):
        if operator:
            lines.append(_("operator commands (after /op SECRET):"))
        for command in COMMANDS:
            if command.operator != operator:
                continue
            alias = _(" (also {aliases})").format(aliases="/" + ", /".join(command.aliases)) if command.aliases else ""
            lines.append(f"  {pad_right(heads[command.name], width)}  {_(command.help)}{alias}")
    return lines


def command_names() -> list[str]:
    return sorted("/" + command.name for command in COMMANDS)


@dataclass(frozen=True)
class Suggestion:
    """One Tab completion: `text` replaces the last `replaces` characters before the cursor."""

    text: str
    replaces: int
    display: str
    meta: str = ""


def complete(before_cursor: str, nicks: Sequence[str], rooms: Sequence[str]) -> list[Suggestion]:
    """What Tab offers for the text left of the cursor.

    `/jo` -> the commands starting so; the first argument of a command
    completes to what its table entry says (`completes`: nick or room); in
    plain chat the last word completes to a nick, with `: ` added when it is
    the first word (addressing someone: "bob: hi").
    """
    if before_cursor.startswith("/") and " " not in before_cursor:
        typed = before_cursor[1:].lower()
        return [
            Suggestion(f"/{command.name} ", len(before_cursor), f"/{command.name}", _(command.help))
            for command in COMMANDS
            if command.name.startswith(typed)
        ]
    word = before_cursor.rsplit(" ", 1)[-1]
    if before_cursor.startswith("/"):
        name, _sep, argument = before_cursor[1:].partition(" ")
        command = find(name)
        if command is None or " " in argument:
            return []
        if command.completes == "room":
            return _starting_with(rooms, word, "")
        if command.completes == "nick":
            return _starting_with(nicks, word, " ")
        return []
    return _starting_with(nicks, word, ": " if " " not in before_cursor else "")


def _starting_with(names: Sequence[str], word: str, suffix: str) -> list[Suggestion]:
    folded = word.casefold()
    return [Suggestion(name + suffix, len(word), name) for name in names if name.casefold().startswith(folded)]
