"""The language of every line a person reads: chosen once per program, catalogues as `.po` files.

Owns the choice of language (`--lang zh_CN|en`, else LANGUAGE, LC_ALL,
LC_MESSAGES, LANG, else Windows' UI language from lanchat.platforms), the
loaded catalogue, and the functions the three programs translate with:
`_` (gettext), `ngettext` and `N_` (marks a string for extraction where it
is defined, translated where it is shown). English is the msgid itself; a
language is one file, `lanchat/locale/<lang>/LC_MESSAGES/lanchat.po`.

Why the `.po` is read directly rather than compiled to `.mo`: the programs
run from a source checkout (PYTHONPATH, `python -m chatsrv`) and from
`pip install -e .`, where no build step runs, and a generated `.mo` beside
its `.po` is one more file to forget to regenerate. The loader reads the
subset of the PO format that Babel and xgettext write (msgid, msgid_plural,
msgstr, msgstr[n], continued strings, the fuzzy flag); the tests check it
against Babel's own reader and that Babel compiles every catalogue.
Extraction and checking are Babel's (`pybabel extract`, see README).

Protocol payloads, error codes and logs meant for machines are never
translated. argparse's own words ("usage:", "options") come from the same
catalogue: argparse calls its module-level `_`/`ngettext`, which
`install_for_argparse` points here.

Width: `display_width`, `pad_right` and `pad_left` align columns by
terminal cells (a Chinese character takes two), not by `len()`.

Must not import: anything but the standard library and lanchat.platforms
(server, client and lab share it; tests/test_layering.py ranks it).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gettext
import os
import re
import socket
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lanchat import platforms

DOMAIN = "lanchat"
LOCALE_DIR = Path(__file__).resolve().with_name("locale")
ENGLISH = "en"
# The languages a user may ask for with --lang; English needs no catalogue.
LANGUAGES = (ENGLISH, "zh_CN")
# Environment variables in the order gettext reads them.
ENVIRONMENT = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")

_current: gettext.NullTranslations = gettext.NullTranslations()
_language = ENGLISH


# ---------------------------------------------------------------- choosing


def normalise(name: str) -> str | None:
    """The catalogue a locale name means (`zh_CN.UTF-8` -> zh_CN, `en_GB` -> en), or None if none fits.

    Simplified Chinese is zh_CN, zh_SG and plain zh (also zh_Hans); zh_TW and
    zh_HK write Traditional characters, which this catalogue is not.
    """
    base = name.split(".")[0].split("@")[0].replace("-", "_").strip()
    if not base:
        return None
    if base in ("C", "POSIX"):
        return ENGLISH
    language, _sep, region = base.partition("_")
    language = language.lower()
    if language == "en":
        return ENGLISH
    if language == "zh" and region.upper() in ("", "CN", "SG", "HANS"):
        return "zh_CN"
    if base in LANGUAGES:
        return base
    return None


def from_arguments(argv: Sequence[str]) -> str | None:
    """The value of `--lang X` or `--lang=X` in `argv` (before argparse runs), or None."""
    for position, word in enumerate(argv):
        if word == "--":
            break
        if word == "--lang" and position + 1 < len(argv):
            return argv[position + 1]
        if word.startswith("--lang="):
            return word.partition("=")[2]
    return None


def from_environment(environ: Mapping[str, str]) -> str | None:
    """The language the locale variables ask for, as gettext reads them: the first one set decides."""
    for variable in ENVIRONMENT:
        value = environ.get(variable, "")
        if not value:
            continue
        # LANGUAGE is a list of preferences ("zh_CN:en"); the others name one locale.
        for name in value.split(":") if variable == "LANGUAGE" else [value]:
            chosen = normalise(name)
            if chosen is not None:
                return chosen
        if variable != "LANGUAGE":
            return ENGLISH  # a locale we have no catalogue for: English, not the next variable
    return None


def choose(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> str:
    """--lang, else the environment, else the system's UI language (Windows), else English."""
    asked = from_arguments(argv)
    if asked is not None:
        return normalise(asked) or ENGLISH
    chosen = from_environment(os.environ if environ is None else environ)
    if chosen is not None:
        return chosen
    system = platforms.ui_language()
    return (normalise(system) if system else None) or ENGLISH


# ---------------------------------------------------------------- the .po loader

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPE = re.compile(r"\\(.)")
_KEYWORD = re.compile(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*\")\s*$")


def _unquote(quoted: str) -> str:
    return _ESCAPE.sub(lambda match: _ESCAPES.get(match.group(1), match.group(0)), quoted[1:-1])


def read_po(text: str) -> list[dict[str, Any]]:
    """The entries of a PO file: dicts with msgid, msgid_plural, msgstr (list), fuzzy, msgctxt.

    Obsolete entries (`#~`) and comments are skipped; a line that fits no rule raises ValueError.
    """
    entries: list[dict[str, Any]] = []
    entry: dict[str, Any] = {}
    field: tuple[str, int] | None = None

    def finish() -> None:
        nonlocal entry, field
        if "msgid" in entry:
            entries.append(entry)
        entry, field = {}, None

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#"):
            if "msgid" in entry and "msgstr" in entry:
                finish()
            if line.startswith("#,") and "fuzzy" in line[2:].replace(",", " ").split():
                entry["fuzzy"] = True
            continue
        if line.startswith('"') and field is not None:
            value = _unquote(line)
            name, index = field
            if name == "msgstr":
                entry["msgstr"][index] += value
            else:
                entry[name] += value
            continue
        match = _KEYWORD.match(line)
        if match is None:
            raise ValueError(f"line {number} is not PO: {raw!r}")
        keyword, index_text, quoted = match.groups()
        if keyword in ("msgctxt", "msgid") and "msgstr" in entry:
            finish()  # the next entry begins without a blank line
        value = _unquote(quoted)
        if keyword.startswith("msgstr"):
            index = int(index_text) if index_text is not None else 0
            strings: list[str] = entry.setdefault("msgstr", [])
            while len(strings) <= index:
                strings.append("")
            strings[index] = value
            field = ("msgstr", index)
        else:
            entry[keyword] = value
            field = (keyword, 0)
    finish()
    for item in entries:
        item.setdefault("msgstr", [""])
        item.setdefault("fuzzy", False)
    return entries


class PoTranslations(gettext.GNUTranslations):
    """gettext's own translation class, filled from a `.po` text instead of a `.mo`.

    Like msgfmt, fuzzy and untranslated entries are left out, so their English shows.
    """

    def __init__(self, text: str) -> None:
        super().__init__()  # no file: gettext's .mo parser is not run
        catalog: dict[Any, str] = {}
        self._info: dict[str, str] = {}
        self._charset = "utf-8"
        self.plural = lambda n: int(n != 1)  # English rule until the header says otherwise
        for entry in read_po(text):
            if entry["msgid"] == "":
                self._read_header(entry["msgstr"][0])
                continue
            if entry["fuzzy"] or not all(entry["msgstr"]) or entry.get("msgctxt"):
                continue
            if "msgid_plural" in entry:
                for index, string in enumerate(entry["msgstr"]):
                    catalog[(entry["msgid"], index)] = string
            else:
                catalog[entry["msgid"]] = entry["msgstr"][0]
        self._catalog = catalog

    def _read_header(self, header: str) -> None:
        for line in header.splitlines():
            key, _sep, value = line.partition(":")
            if _sep:
                self._info[key.strip().lower()] = value.strip()
        forms = self._info.get("plural-forms", "")
        rule = forms.partition("plural=")[2].rstrip(";").strip()
        if rule:
            self.plural = gettext.c2py(rule)  # gettext's own parser of the C expression


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def load(language: str) -> gettext.NullTranslations:
    """The translations for `language`; English (or a language with no catalogue) translates nothing."""
    path = catalogue_path(language)
    if language == ENGLISH or not path.is_file():
        return gettext.NullTranslations()
    return PoTranslations(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- using it


def use(language: str) -> str:
    """Translate from now on into `language` (normalised; unknown: English); returns the language used."""
    global _current, _language
    chosen = normalise(language) or ENGLISH
    _current = load(chosen)
    _language = chosen
    install_for_argparse()
    return chosen


def setup(argv: Sequence[str]) -> str:
    """A program's first step: choose the language from `argv` and the locale, and use it."""
    return use(choose(argv))


def language() -> str:
    return _language


def _(message: str) -> str:
    """`message` in the chosen language (itself when the catalogue lacks it)."""
    return _current.gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The form of a message for `count`, in the chosen language."""
    return _current.ngettext(singular, plural, count)


def N_(message: str) -> str:
    """Mark `message` for extraction only: it is translated with `_()` where it is shown."""
    return message


# The operating system's words for the errors a class meets (its strerror is English whatever the locale).
_OS_ERRORS = {
    errno.ENOENT: N_("no such file or directory"),
    errno.EACCES: N_("permission denied"),
    errno.EISDIR: N_("is a directory"),
    errno.ECONNREFUSED: N_("connection refused"),
    errno.ECONNRESET: N_("connection reset by the other side"),
    errno.ETIMEDOUT: N_("timed out"),
    errno.EHOSTUNREACH: N_("no route to host"),
    errno.ENETUNREACH: N_("network is unreachable"),
    errno.EADDRINUSE: N_("address already in use"),
    errno.EADDRNOTAVAIL: N_("this machine has no such address"),
}
_NAME_ERRORS = {
    code: N_("no such host name")
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
}


def os_reason(error: BaseException) -> str:
    """Why an OSError happened, in the chosen language: the system's own (English) words when no entry fits."""
    number = getattr(error, "errno", None)
    table = _NAME_ERRORS if isinstance(error, socket.gaierror) else _OS_ERRORS
    english = getattr(error, "strerror", None) or str(error)
    if _language == ENGLISH or not isinstance(number, int) or number not in table:
        return english
    return _current.gettext(table[number])


class Lazy(str):
    """A message id that is translated each time it is printed (`str()`, `%s`), not when it is made.

    For words fixed when a module is imported, before the language is chosen:
    argparse prints a type's `__name__` in "invalid X value", so each checker's
    name is `Lazy(N_("port"))`.
    """

    __slots__ = ()

    def __str__(self) -> str:
        return _current.gettext(str.__str__(self))


class LogText:
    """Words in a log record's arguments: English wherever the record is printed, translated on the console.

    `str()` is the English (`template % args`), so a log file or syslog gets
    the record as it always did; chatsrv's console (chatsrv.consolelog.ConsoleFormatter)
    shows `translated()`. The template is marked with `N_` where it is written.
    """

    __slots__ = ("args", "template")

    def __init__(self, template: str, *args: object) -> None:
        self.template = template
        self.args = args

    def __str__(self) -> str:
        return self.template % self.args if self.args else self.template

    def translated(self) -> str:
        args = tuple(arg.translated() if isinstance(arg, LogText) else arg for arg in self.args)
        return _(self.template) % args if args else _(self.template)


@contextlib.contextmanager
def temporarily(language: str) -> Iterator[None]:
    """Translate into `language` inside the block, then go back to the language before it."""
    before = _language
    use(language)
    try:
        yield
    finally:
        use(before)


def install_for_argparse() -> None:
    """argparse's own strings ("usage:", "show this help message and exit") in the chosen language.

    argparse looks up its module-level `_` and `ngettext` each time it
    formats; pointing them here is the only hook it offers.
    """
    argparse._ = _  # type: ignore[attr-defined]  # not in argparse's stub, but what it calls
    argparse.ngettext = ngettext  # type: ignore[attr-defined]


def add_language_option(parser: argparse.ArgumentParser) -> None:
    """The `--lang` option every program has (setup() has already acted on it)."""
    parser.add_argument(
        "--lang",
        choices=LANGUAGES,
        default=None,
        help=_("language of what this program prints (default: the locale: LANGUAGE, LC_ALL, LANG)"),
    )


# ---------------------------------------------------------------- width


def char_width(char: str) -> int:
    """Terminal cells one character takes: 2 for wide CJK, 0 for combining marks and format characters."""
    if unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Terminal cells `text` takes (not `len`: 丢包 is two characters, four cells)."""
    return sum(char_width(char) for char in text)


def pad_right(text: str, cells: int) -> str:
    """`text` then spaces up to `cells` terminal cells (like str.ljust, by display width)."""
    return text + " " * max(0, cells - display_width(text))


def pad_left(text: str, cells: int) -> str:
    """Spaces then `text`, `cells` terminal cells in all (like str.rjust, by display width)."""
    return " " * max(0, cells - display_width(text)) + text


# Punctuation that must not begin a line (it closes what is before it) or end one (it opens what follows).
_CLOSING = "，。、；：？！）」』》】…,.;:?!)]}%"
_OPENING = "（「『《【“‘([{"
CLOSING_PUNCTUATION = _CLOSING  # a line never starts with one (the client's wrap uses it too)


def _wrap_tokens(text: str) -> list[str]:
    """`text` as pieces a line may break between: spaces (one " "), words (narrow characters between
    spaces or wide ones), and each wide character with the closing punctuation after it (Chinese has
    no spaces, so a line may break between any two wide characters)."""
    tokens: list[str] = []
    glue = False  # the previous character opens something: the next one stays with it
    for char in text:
        if char.isspace():
            if tokens and tokens[-1] != " ":
                tokens.append(" ")
            glue = False
            continue
        last = tokens[-1] if tokens and tokens[-1] != " " else None
        wide = char_width(char) == 2
        if last is not None and (
            glue or char in _CLOSING or (not wide and char_width(last[-1]) < 2)
        ):
            tokens[-1] = last + char
        else:
            tokens.append(char)
        glue = char in _OPENING
    return tokens


def wrap(text: str, cells: int) -> list[str]:
    """`text` in lines of at most `cells` terminal cells: textwrap.wrap by display width.

    Breaks at spaces and between wide characters (never before closing or
    after opening punctuation); a word longer than a line stays whole.
    """
    lines: list[str] = []
    line, used, space = "", 0, False
    for token in _wrap_tokens(text):
        if token == " ":
            space = bool(line)
            continue
        width = display_width(token)
        gap = 1 if space else 0
        if line and used + gap + width > cells:
            lines.append(line)
            line, used = token, width
        else:
            line, used = line + " " * gap + token, used + gap + width
        space = False
    if line:
        lines.append(line)
    return lines

