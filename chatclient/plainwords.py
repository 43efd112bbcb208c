"""Error codes in plain words: what went wrong and what to do, for people.

Pure: one table maps each error code a student can cause (docs/protocol.md §6
and the operators extension) to what happened and what to do;
`explain(code, message)` makes the sentence the terminal UI shows, with the
server's own message, which carries the facts (a length, a wait, who muted
you). Programs keep the codes: line mode prints `for_scripts`, the server's
`code: message` unchanged and then what to do in brackets
(`chatclient.lineui`). Imports nothing.
"""

from __future__ import annotations

# code -> (what happened, what to do). {message} is the server's text for this error
# (untrusted, sanitized when rendered); "" when there is nothing to do but read it.
SENTENCES: dict[str, tuple[str, str]] = {
    "auth_failed": ("The server did not let you in ({message})", "check the password with the teacher"),
    "not_allowed": ("Not allowed: {message}", ""),
    "rate_limited": ("Too fast ({message})", "wait a moment, then send it again (Up brings the line back)"),
    "text_invalid": ("That text was not sent ({message})", "change it and send it again (Up brings the line back)"),
    "nick_invalid": (
        "That nick cannot be used ({message})",
        "a nick is 1 to 24 letters, digits, _ or -: try another with /nick NEWNICK",
    ),
    "nick_taken": ("Someone here already has that nick", "choose another with /nick NEWNICK"),
    "room_invalid": ("That room name cannot be used ({message})", "a room name is 1 to 32 letters, digits, _ or -"),
    "no_such_user": ("No such person ({message})", "/who lists who is in your room, /rooms the other rooms"),
    "bad_request": ("The server did not understand that ({message})", "/help shows how each command is typed"),
    "frame_too_large": ("That was too big for the server to take at once ({message})", "send less at a time"),
    "not_joined": ("The server no longer knows this session ({message})", "the client joins again by itself"),
    "server_full": ("The server is full ({message})", "try again in a while, or ask the teacher"),
    "timeout": ("The server stopped waiting for this client ({message})", ""),
    "internal_error": (
        "The server could not handle that one line ({message})",
        "it was lost, the chat goes on; tell the teacher if it happens again",
    ),
}
# Messages that already say everything the sentence would (a missing password is asked for next).
SELF_EXPLAINING: dict[tuple[str, str], str] = {
    ("auth_failed", "this server needs a password"): "This server needs a password.",
}
UNKNOWN = ("The server refused that ({code}): {message}", "")


def explain(code: str, message: str, todo: str | None = None) -> str:
    """The sentence for people: what happened, with the server's message where it adds facts, and what to do
    (`todo` replaces the table's advice where the client knows better, "" for none)."""
    message = _tidy(message)
    known = SELF_EXPLAINING.get((code, message))
    if known is not None:
        return known
    what, advice = SENTENCES.get(code, UNKNOWN)
    todo = advice if todo is None else todo
    what = what.format(code=code, message=message)
    return f"{what}: {todo}." if todo else f"{what}."


def for_scripts(code: str, message: str, todo: str | None = None) -> str:
    """Line mode: `code: message` as the server sent it (scripts match it), then what to do, in brackets."""
    todo = SENTENCES.get(code, UNKNOWN)[1] if todo is None else todo
    return f"{code}: {message} [{todo}]" if todo else f"{code}: {message}"


def _tidy(message: str) -> str:
    return message.strip().rstrip(".") or "no reason given"
