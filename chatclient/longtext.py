"""Cutting a text that is too long for one message into several, the way irssi does.

Pure: `split_text(text)` returns the parts to send, in order, each one the
server accepts (1 to `lanchat.protocol.MAX_TEXT` characters after stripping,
docs/protocol.md §6). Parts end at white space; a word longer than the limit
is cut hard, but never inside a character sequence that shows as one
(a letter and its combining marks, an emoji joined with ZWJ or followed by a
skin tone or a variation selector, a flag's two regional indicators). Python
strings hold code points, so a surrogate pair cannot be cut here; the server
counts code points too. Imports only `lanchat.protocol`.
"""

from __future__ import annotations

import unicodedata

from lanchat.protocol import MAX_TEXT

ZWJ = "\u200d"


def _joins_previous(char: str) -> bool:
    """Whether `char` belongs to the character before it on screen (a cut must not fall before it)."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")  # combining marks
        or char == ZWJ
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences (subdivision flags)
    )


def _is_regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _safe_cut(text: str, cut: int) -> int:
    """The nearest position at or before `cut` that does not split one visible character; `cut` if none."""
    position = cut
    while position > 0:
        char, before = text[position], text[position - 1]
        if not (_joins_previous(char) or before == ZWJ):
            if not (_is_regional(char) and _is_regional(before)):
                return position
            # Flags are pairs of regional indicators: count the run to see whether this is inside a pair.
            start = position
            while start > 0 and _is_regional(text[start - 1]):
                start -= 1
            if (position - start) % 2 == 0:
                return position
        position -= 1
    return cut


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """`text` as the messages to send: one when it fits, else parts cut at white space; [] for a blank text."""
    rest = text.strip()
    parts: list[str] = []
    while len(rest) > limit:
        # The last white space within the limit (one just after it is a clean cut too);
        # white space as str.strip sees it, which is what the server strips.
        cut = next((i for i in range(limit, 0, -1) if rest[i].isspace()), 0)
        if cut == 0:
            cut = _safe_cut(rest, limit)
        part, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        parts.append(part)
    if rest:
        parts.append(rest)
    return parts
