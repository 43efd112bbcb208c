"""Display lines -> text: timestamps, nick colours, and terminal safety.

Pure. Every string that came from the network goes through `sanitize`
before it reaches a terminal: control characters (Unicode Cc), bidi
controls and line/paragraph separators are shown as visible escapes, so a
classmate cannot drive your terminal, ring bells, move the cursor or fake
another user's line (TESTING.md #7). Imports only `chatclient.state`.
"""

from __future__ import annotations

import time
import unicodedata
import zlib

from chatclient.state import Line

_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_SEPARATORS = frozenset("\u2028\u2029\x85")
CONTINUATION = "  | "  # prefix of a message's second and later lines


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def sanitize(text: str, keep_newlines: bool = False) -> str:
    """Make untrusted text safe to print: every control shown as an escape.

    With `keep_newlines`, a newline stays a newline (callers indent what
    follows it so it cannot pass for a new line of the chat).
    """
    out: list[str] = []
    for char in text:
        if char == "\n" and keep_newlines:
            out.append(char)
        elif char == "\t":
            out.append("    ")
        elif char in _BIDI or char in _SEPARATORS or unicodedata.category(char) == "Cc":
            out.append(_visible(char))
        else:
            out.append(char)
    return "".join(out)


def clock(ts: float | None) -> str:
    """`HH:MM` local time of a timestamp (now when absent)."""
    return time.strftime("%H:%M", time.localtime(ts if isinstance(ts, (int, float)) else None))


NICK_COLOURS = ("ansired", "ansigreen", "ansiyellow", "ansiblue", "ansimagenta", "ansicyan", "ansibrightred", "ansibrightgreen", "ansibrightyellow", "ansibrightblue", "ansibrightmagenta", "ansibrightcyan")


def nick_colour(nick: str) -> str:
    """A stable colour per nick (same on every machine, every run)."""
    return NICK_COLOURS[zlib.crc32(nick.casefold().encode("utf-8")) % len(NICK_COLOURS)]


def body(line: Line) -> str:
    """The text after the timestamp, sanitized, continuation lines indented."""
    nick = sanitize(line.nick)
    text = sanitize(line.text, keep_newlines=True).replace("\n", "\n" + CONTINUATION)
    kind = line.kind
    if kind in ("message", "own"):
        return f"<{nick}> {text}"
    if kind == "action":
        return f"* {nick} {text}"
    if kind == "whisper_in":
        return f"*{nick}* {text}"
    if kind == "whisper_out":
        return f"-> *{sanitize(line.target)}* {text}"
    if kind == "presence":
        return f"-> {text}"
    if kind == "notice":
        return f"-!- {text}"
    if kind == "error":
        return f"! {text}"
    return f"-- {text}"


def plain(line: Line) -> str:
    """One printable line: `[12:01] <alice> hi`."""
    return f"[{clock(line.ts)}] {body(line)}"
