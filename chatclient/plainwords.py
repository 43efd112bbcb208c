"""Error codes in plain words: what went wrong and what to do, for people.

Pure: one table maps each error code a student can cause (docs/protocol.md §6
and the operators extension) to what happened and what to do;
`explain(code, message)` makes the sentence the terminal UI shows, with the
server's own message, which carries the facts (a length, a wait, who muted
you). Programs keep the codes: line mode prints `for_scripts`, the server's
`code: message` unchanged and then what to do in brackets
(`chatclient.lineui`), the advice in the chosen language. Imports only
lanchat.i18n and lanchat.reasons: the sentences are marked with N_ here and
translated when shown.

`server_words` is the server's own sentence (an error's `message`, a
notice's `text`) in the chosen language, from the key and facts the server
sends beside it (docs/protocol.md §14); the server's English when they do
not make a sentence.
"""

from __future__ import annotations

from typing import Any

from lanchat import i18n, reasons
from lanchat.i18n import N_, _

# code -> (what happened, what to do). {message} is the server's text for this error
# (untrusted, sanitized when rendered); "" when there is nothing to do but read it.
SENTENCES: dict[str, tuple[str, str]] = {
    "auth_failed": (N_("The server did not let you in ({message})"), N_("check the password with the teacher")),
    "not_allowed": (N_("Not allowed: {message}"), ""),
    "rate_limited": (N_("Too fast ({message})"), N_("wait a moment, then send it again (Up brings the line back)")),
    "text_invalid": (
        N_("That text was not sent ({message})"),
        N_("change it and send it again (Up brings the line back)"),
    ),
    "nick_invalid": (
        N_("That nick cannot be used ({message})"),
        N_("a nick is 1 to 24 letters, digits, _ or -: try another with /nick NEWNICK"),
    ),
    "nick_taken": (N_("Someone here already has that nick"), N_("choose another with /nick NEWNICK")),
    "room_invalid": (
        N_("That room name cannot be used ({message})"),
        N_("a room name is 1 to 32 letters, digits, _ or -"),
    ),
    "no_such_user": (N_("No such person ({message})"), N_("/who lists who is in your room, /rooms the other rooms")),
    "bad_request": (N_("The server did not understand that ({message})"), N_("/help shows how each command is typed")),
    "frame_too_large": (N_("That was too big for the server to take at once ({message})"), N_("send less at a time")),
    "not_joined": (N_("The server no longer knows this session ({message})"), N_("the client joins again by itself")),
    "server_full": (N_("The server is full ({message})"), N_("try again in a while, or ask the teacher")),
    "timeout": (N_("The server stopped waiting for this client ({message})"), ""),
    "internal_error": (
        N_("The server could not handle that one line ({message})"),
        N_("it was lost, the chat goes on; tell the teacher if it happens again"),
    ),
}
# Messages that already say everything the sentence would (a missing password is asked for next).
SELF_EXPLAINING: dict[tuple[str, str], str] = {
    ("auth_failed", "this server needs a password"): N_("This server needs a password."),
}
UNKNOWN = (N_("The server refused that ({code}): {message}"), "")


def server_words(payload: dict[str, Any], text_field: str) -> str:
    """The server's sentence under `text_field`, in the chosen language when its `reason` and `args` make one.

    English shows the server's own text: it is the same sentence, from the server's copy of the table.
    Whatever the server sent, this falls back to its text rather than fail (lanchat.reasons.render).
    """
    text = str(payload.get(text_field, ""))
    if i18n.language() == i18n.ENGLISH or "reason" not in payload:
        return text
    told = reasons.render(payload.get("reason"), payload.get("args"), _)
    return text if told is None else told


def explain(code: str, message: str, todo: str | None = None, shown: str | None = None) -> str:
    """The sentence for people: what happened, with the server's message where it adds facts, and what to do
    (`todo` replaces the table's advice where the client knows better, "" for none; `shown`, the message
    in the chosen language (server_words), replaces the server's English in the sentence)."""
    message = _tidy(message)
    known = SELF_EXPLAINING.get((code, message))
    if known is not None:
        return _(known)
    what, advice = SENTENCES.get(code, UNKNOWN)
    todo = _(advice) if todo is None else todo  # the caller's own advice comes translated
    what = _(what).format(code=code, message=message if shown is None else _tidy(shown))
    return _("{what}: {todo}.").format(what=what, todo=todo) if todo else _("{what}.").format(what=what)


def for_scripts(code: str, message: str, todo: str | None = None, shown: str | None = None) -> str:
    """Line mode: `code: message` (scripts match the code; the message is `shown` when given, the server's
    sentence in the chosen language), then what to do, in brackets."""
    todo = _(SENTENCES.get(code, UNKNOWN)[1]) if todo is None else todo
    message = message if shown is None else shown
    return f"{code}: {message} [{todo}]" if todo else f"{code}: {message}"


def _tidy(message: str) -> str:
    return message.strip().rstrip(".") or _("no reason given")
