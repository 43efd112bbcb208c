"""Text from the network made safe to show: the one rule for the client, exports and the text door.

A classmate's message, nick or room name is shown on terminals, in
transcripts and in the text door. Raw, a control character drives the
terminal (ESC clears it, CR overwrites a line), a bidi control reverses the
rest of a line, and invisible characters hide text: zero-width spaces and
joiners, tag characters (U+E0000–U+E007F spell hidden ASCII) and variation
selectors (`ok!` followed by 24 selectors U+E0100+byte carries 24 bytes
nobody sees). So every one of them is shown as a visible escape (`\\x1b`,
`\\u202e`, `\\U000e0141`), except where it does a visible job:

- a zero-width joiner between two emoji-like symbols (👨‍👩‍👧, 🏳️‍🌈);
- VS15/VS16 (U+FE0E, U+FE0F: text or emoji style) right after an emoji-like
  symbol or a keycap base (❤️, 1️⃣);
- an ideographic variation selector (U+E0100–U+E01EF) right after a Han
  ideograph (a glyph variant of a name's character).

A long run of zero-width characters can be shown as one marker
(`⟨200 × U+200B⟩`, `compact=True`, the chat client's choice). A mixed run
is counted in words (`⟨50 zero-width characters⟩`); those words are the
caller's to translate: it passes `mixed_run` (the client passes its gettext
wording), so this module stays below lanchat.i18n. One pass, linear in the
text's length whatever its characters.

Pure and stdlib only: imports nothing from lanchat, chatsrv or chatclient.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

# Controls, format characters (zero-width, bidi, BOM, tags) and line/paragraph separators.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
# Tag characters spell hidden ASCII; part of the block is unassigned (Cn), so the whole block is named.
_TAGS = range(0xE0000, 0xE0080)
_SELECTORS = range(0xFE00, 0xFE10)  # VS1–VS16
_IDEOGRAPHIC_SELECTORS = range(0xE0100, 0xE01F0)  # VS17–VS256
_EMOJI_STYLE = "\ufe0e\ufe0f"  # VS15 (text style), VS16 (emoji style)
_KEYCAP_BASES = frozenset("0123456789#*")
_ZWJ = "\u200d"
_ZERO_WIDTH_CATEGORIES = frozenset({"Mn", "Me", "Cf"})  # combining marks and format characters
# More zero-width characters in a row than any script puts on one letter
# (Vietnamese and Indic scripts use two or three): shown as one marker.
COMPACT_RUN = 8


def visible_escape(char: str) -> str:
    """`\\x1b`, `\\u202e` or `\\U000e0041`: the escape a reader sees instead of `char`."""
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def emoji_like(char: str) -> bool:
    """An emoji-like symbol (So above the Latin range): what an emoji ZWJ sequence joins."""
    return char > "\u2000" and unicodedata.category(char) == "So"


def _han(char: str) -> bool:
    return unicodedata.name(char, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


def _selector_shown(text: str, position: int) -> bool:
    """The variation selector at `position` selects a visible glyph variant of the character before it."""
    if position == 0:
        return False
    char, before = text[position], text[position - 1]
    if char in _EMOJI_STYLE:
        return unicodedata.category(before) == "So" or before in _KEYCAP_BASES
    if ord(char) in _IDEOGRAPHIC_SELECTORS:
        return _han(before)
    return False


def _joins_emoji(text: str, position: int) -> bool:
    """The U+200D at `position` glues two emoji (👨‍👩‍👧, 🏳️‍🌈): shown as it is, hides nothing."""
    before = position - 1
    if before >= 0 and text[before] == "\ufe0f":  # an emoji presentation selector may sit before it
        before -= 1
    after = position + 1
    return before >= 0 and after < len(text) and emoji_like(text[before]) and emoji_like(text[after])


def escaped_at(text: str, position: int) -> bool:
    """True when the character at `position` of `text` is shown as an escape (the module's rule)."""
    char = text[position]
    code = ord(char)
    if code in _SELECTORS or code in _IDEOGRAPHIC_SELECTORS:
        return not _selector_shown(text, position)
    if code in _TAGS:
        return True
    if unicodedata.category(char) not in _ESCAPED_CATEGORIES:
        return False
    return not (char == _ZWJ and _joins_emoji(text, position))


def _zero_width(char: str) -> bool:
    return unicodedata.category(char) in _ZERO_WIDTH_CATEGORIES or ord(char) in _TAGS


def english_mixed_run(count: int) -> str:
    """The marker of a run of `count` different zero-width characters, in English."""
    return f"⟨{count} zero-width characters⟩"


def _compact(run: str, mixed_run: Callable[[int], str]) -> str:
    """One marker for a long run of zero-width characters: `⟨200 × U+200B⟩`."""
    if len(set(run)) == 1:
        return f"⟨{len(run)} × U+{ord(run[0]):04X}⟩"
    return mixed_run(len(run))


def safe_text(
    text: str,
    *,
    keep: str = "",
    tab: str | None = None,
    compact: bool = False,
    mixed_run: Callable[[int], str] = english_mixed_run,
) -> str:
    """`text` with every character of the module's rule shown as a visible escape.

    `keep`: characters left as they are (a transcript keeps "\\n\\t"; the
    caller then owns what a newline means). `tab`: what a tab becomes when it
    is not kept (the client's four spaces; None: an escape). `compact`: more
    than COMPACT_RUN zero-width characters in a row become one marker;
    `mixed_run` words it when they are not all one character (a translation).
    """
    if text.isascii() and text.isprintable():
        return text  # the common case: two C-speed tests
    out: list[str] = []
    append = out.append
    position = 0
    end = len(text)
    while position < end:
        char = text[position]
        if " " <= char < "\x7f":
            append(char)  # printable ASCII
            position += 1
            continue
        if compact and _zero_width(char):
            run_end = position + 1
            while run_end < end and _zero_width(text[run_end]):
                run_end += 1
            if run_end - position > COMPACT_RUN:
                append(_compact(text[position:run_end], mixed_run))
                position = run_end
                continue
        if char in keep:
            append(char)
        elif char == "\t" and tab is not None:
            append(tab)
        elif escaped_at(text, position):
            append(visible_escape(char))
        else:
            append(char)
        position += 1
    return "".join(out)
