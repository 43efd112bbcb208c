"""Every message the code marks for translation is in each catalogue, translated, not fuzzy.

The msgids are extracted from the source with Babel (what a translator runs,
see README.md), not with a pattern of our own; the catalogue is read with
Babel too, and must compile.
"""

from __future__ import annotations

import configparser
import functools
import io
from pathlib import Path
from typing import Any

import pytest

from lanchat import i18n

pytest.importorskip("babel")
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_from_file
from babel.messages.frontend import parse_keywords
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chatclient", "chatsrv", "lanchat", "lanchat_lab")
CATALOGUES = sorted(i18n.LOCALE_DIR.glob("*/LC_MESSAGES/lanchat.po"))


# argparse's own words that only newer Pythons pass through gettext (3.13 wraps this one in _()).
ARGPARSE_NEWER = {" (default: %(default)s)"}


def keywords() -> dict[str, Any]:
    """Babel's default keywords plus those setup.cfg's [extract_messages] adds (log templates)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    extra = config.get("extract_messages", "keywords", fallback="").split()
    return {**DEFAULT_KEYWORDS, **parse_keywords(extra)}


@functools.cache
def extracted() -> dict[str, str]:
    """msgid (the singular for a plural) -> where it is used, from every package's source."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for filename, lineno, message, _comments, _context in extract_from_dir(
            str(ROOT / package), keywords=keywords()
        ):
            msgid = message[0] if isinstance(message, tuple) else message
            found.setdefault(msgid, f"{package}/{filename}:{lineno}")
    return found


def argparse_words() -> set[str]:
    """The msgids of argparse's own strings ("usage: "), which the catalogue translates too (README)."""
    import argparse

    return {
        message[0] if isinstance(message, tuple) else message
        for _lineno, message, _comments, _context in extract_from_file("python", argparse.__file__)
    } | ARGPARSE_NEWER


def test_there_is_a_chinese_catalogue() -> None:
    assert [path.parent.parent.name for path in CATALOGUES] == ["zh_CN"]


def test_the_code_marks_messages() -> None:
    assert len(extracted()) > 100


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.parent.parent.name)
def test_every_message_is_translated(path: Path) -> None:
    with path.open("rb") as stream:
        catalogue = read_po(stream)
    entries = {message.id[0] if isinstance(message.id, tuple) else message.id: message for message in catalogue}
    missing = {msgid: where for msgid, where in extracted().items() if msgid not in entries}
    assert not missing, f"not in {path.name}: {missing}"
    fuzzy = [message.id for message in catalogue if message.id and message.fuzzy]
    assert not fuzzy, f"fuzzy entries (a guess, not a translation): {fuzzy}"
    empty = [
        message.id
        for message in catalogue
        if message.id and (not all(message.string) if isinstance(message.string, tuple) else not message.string)
    ]
    assert not empty, f"untranslated entries: {empty}"
    write_mo(io.BytesIO(), catalogue)  # compiles


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.parent.parent.name)
def test_no_stale_entries(path: Path) -> None:
    """Every catalogue entry is a msgid the code (or argparse) still uses: a stale one is dead weight."""
    with path.open("rb") as stream:
        catalogue = read_po(stream)
    ids = {message.id[0] if isinstance(message.id, tuple) else message.id for message in catalogue if message.id}
    stale = ids - set(extracted()) - argparse_words()
    assert not stale, f"in {path.name} but used nowhere: {sorted(stale)}"


def test_log_templates_are_extracted() -> None:
    """The first argument of a log call at info and above is extracted; debug lines are not."""
    found = extracted()
    assert "database %s: %s; chat history is kept in memory only" in found  # log.error in chatsrv/sqlitestore.py
    assert "audit: kick by %s -> %s%s%s" in found
    assert "start-up failed" not in found  # log.debug


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.parent.parent.name)
def test_placeholders_survive_translation(path: Path) -> None:
    """A translation keeps every {name} and %-placeholder of its msgid, or .format() fails at run time."""
    import re

    braces = re.compile(r"\{[a-z_]*(?:![rs])?(?::[^}]*)?\}")
    percents = re.compile(r"%(?:\([a-z_]+\))?[sdrf]")
    with path.open("rb") as stream:
        catalogue = read_po(stream)
    wrong = []
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for string in strings:
            for pattern in (braces, percents):
                if sorted(set(pattern.findall(ids[-1]))) != sorted(set(pattern.findall(string))):
                    wrong.append((ids[0], string))
    assert not wrong


def test_our_loader_reads_the_catalogue_like_babel() -> None:
    for path in CATALOGUES:
        translations = i18n.PoTranslations(path.read_text(encoding="utf-8"))
        with path.open("rb") as stream:
            for message in read_po(stream):
                if message.id and not isinstance(message.id, tuple):
                    assert translations.gettext(message.id) == message.string


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.parent.parent.name)
def test_gnu_msgfmt_accepts_the_catalogue(path: Path) -> None:
    """The catalogue is standard gettext: GNU msgfmt --check (formats, header, plurals) finds nothing."""
    import os
    import shutil
    import subprocess

    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.skip("GNU gettext's msgfmt is not installed")
    done = subprocess.run(
        [msgfmt, "--check", "-o", os.devnull, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
