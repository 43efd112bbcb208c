"""When two names look alike: the identity key and the look-alike rules for nicks and rooms.

Owns `likeness_key` (NFKC case-fold plus the confusable skeleton of Unicode
Technical Standard #39), `hidden_character` (default-ignorable code points,
fillers, format characters and variation selectors, which make a name look
like another or like nothing) and `mixed_script` (scripts mixed beyond UTS
#39's "highly restrictive" level, read from character names). Combining
marks on Latin, Greek and Cyrillic letters do not count in the key. The rules are in docs/protocol.md §6.

Imports only the generated `chatsrv.confusables_data` and the standard
library; no sockets, threads or clocks.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from chatsrv.confusables_data import MAPPING

# Default_Ignorable_Code_Point of Unicode's DerivedCoreProperties.txt (Unicode 15.1), as inclusive
# ranges; unassigned ones are listed too so a newer Python cannot let them in. They include the
# Hangul fillers (U+115F, U+1160, U+3164, U+FFA0), the combining grapheme joiner (U+034F) and every
# variation selector (U+180B-U+180F, U+FE00-U+FE0F, U+E0100-U+E01EF). Python's unicodedata has no
# such property. Blank symbols such as U+2800 are not letters, so the name rule refuses them anyway.
_DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)

# The scripts whose letters carry easily missed marks (`ẹ`, `b̲`): marks on them do not count in the key.
_WATCHED_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def hidden_character(name: str) -> str | None:
    """The first character of `name` that hides or shows as nothing, or None.

    Refused in nicks and room names (docs/protocol.md §6): default-ignorable
    code points (zero-width characters, the combining grapheme joiner, Hangul
    fillers, tags), format characters (category Cf, e.g. bidi controls) and
    variation selectors.
    """
    for char in name:
        code = ord(char)
        if unicodedata.category(char) == "Cf" or any(low <= code <= high for low, high in _DEFAULT_IGNORABLE):
            return char
        if "FILLER" in unicodedata.name(char, ""):
            return char  # fillers show as nothing (KHITAN SMALL SCRIPT FILLER is a mark, not default-ignorable)
    return None


def script_of(char: str) -> str | None:
    """The script of a letter, read from its Unicode name (`LATIN`, `CYRILLIC`, `HAN`, `DEVANAGARI` ...).

    None for what belongs to no one script: digits, marks, modifier letters
    (`ー`, `ʼ`) and anything unnamed. Python's unicodedata has no Script
    property; the first word of a letter's name is its script for every
    script a class uses (CJK ideographs are `HAN`).
    """
    category = unicodedata.category(char)
    if not category.startswith("L") or category == "Lm":
        return None
    word = unicodedata.name(char, "").split(" ", 1)[0]
    if word in ("CJK", "IDEOGRAPHIC"):
        return "HAN"
    return word or None


def scripts_of(name: str) -> set[str]:
    """The scripts of the letters of `name` (after NFKC, so fullwidth letters count as theirs)."""
    found: set[str] = set()
    for char in unicodedata.normalize("NFKC", name):
        script = script_of(char)
        if script is not None:
            found.add(script)
    return found


# UTS #39 "highly restrictive": one script, or Latin with the scripts written beside it in East Asia.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


def mixed_script(name: str) -> bool:
    """True when `name` mixes scripts beyond UTS #39's "highly restrictive" level.

    One script is fine (李雷, अनिल, สมชาย, Алёна), and so are Latin, Han and
    kana (小明abc), Latin, Han and Bopomofo, or Latin, Han and Hangul; any
    other mix (Latin with Cyrillic `е`, Greek `α` or a Tai Le letter that
    looks like `e`) is a classic look-alike.
    """
    scripts = scripts_of(name)
    return len(scripts) > 1 and not any(scripts <= allowed for allowed in _ALLOWED_MIXES)


def _drop_marks(text: str) -> str:
    """`text` without the combining marks on Latin, Greek and Cyrillic letters (`alicẹ` is `alice`).

    On those letters a dot or a line below is easy to miss, so for the key
    it does not count. Other scripts' marks are parts of their letters
    (अनिल and अनल differ by one), so they stay.
    """
    decomposed = unicodedata.normalize("NFD", text)
    kept: list[str] = []
    on_watched_letter = False
    for char in decomposed:
        if unicodedata.category(char) in ("Mn", "Me"):
            if on_watched_letter:
                continue
        else:
            on_watched_letter = script_of(char) in _WATCHED_SCRIPTS
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))


@lru_cache(maxsize=1)
def _confusables() -> dict[str, str]:
    """Source character -> its skeleton, parsed once from the generated data module."""
    table: dict[str, str] = {}
    for line in MAPPING.splitlines():
        if line:
            source, *targets = line.split()
            table[chr(int(source, 16))] = "".join(chr(int(target, 16)) for target in targets)
    # The key case-folds before the skeleton, so a capital's entry must serve its small letter too
    # when the file has none for it (`Ƅ` is listed as `b`, its small `ƅ` is not).
    for source, target in list(table.items()):
        folded = source.casefold()
        if len(folded) == 1 and folded != source and folded not in table:
            table[folded] = target
    return table


def skeleton(text: str) -> str:
    """UTS #39 skeleton: NFD, every character replaced by its prototype, NFD again."""
    table = _confusables()
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", "".join(table.get(char, char) for char in decomposed))


def _nfkc_casefold(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


@lru_cache(maxsize=4096)
def likeness_key(name: str) -> str:
    """The key under which names that look alike are the same name.

    NFKC case-fold (so fullwidth and mathematical letters and case do not
    count), then the confusable skeleton (so Cyrillic `е` is Latin `e`), then
    case-folded again because some prototypes are capitals (`0` becomes `O`).
    Names that look alike get equal keys; a few names that do not (`rn` and
    `m`) do too, which only means the second one is refused.
    """
    key = _drop_marks(_nfkc_casefold(name))
    for _ in range(3):  # reaches a fixed point in one or two rounds; bounded anyway
        again = _drop_marks(_nfkc_casefold(skeleton(key)))
        if again == key:
            break
        key = again
    return key
