"""lanchat.i18n: choosing the language, the .po loader (checked against Babel's reader), display width."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator

import pytest

from lanchat import i18n

babel_pofile = pytest.importorskip("babel.messages.pofile")


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    yield
    i18n.use(i18n.ENGLISH)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("zh_CN.UTF-8", "zh_CN"),
        ("zh_CN", "zh_CN"),
        ("zh", "zh_CN"),
        ("zh_SG.GB2312", "zh_CN"),
        ("zh-Hans", "zh_CN"),
        ("zh_TW.UTF-8", None),  # Traditional characters: not this catalogue
        ("en_GB.UTF-8", "en"),
        ("C", "en"),
        ("C.UTF-8", "en"),
        ("POSIX", "en"),
        ("fr_FR.UTF-8", None),
        ("", None),
    ],
)
def test_locale_names(name: str, expected: str | None) -> None:
    assert i18n.normalise(name) == expected


def test_lang_flag_beats_the_environment() -> None:
    environ = {"LANG": "zh_CN.UTF-8"}
    assert i18n.choose(["--lang", "en"], environ) == "en"
    assert i18n.choose(["--port", "0", "--lang=zh_CN"], {"LANG": "C"}) == "zh_CN"
    assert i18n.choose(["--", "--lang", "zh_CN"], {"LANG": "C"}) == "en"  # after --: an argument, not the flag


def test_environment_order_is_gettexts() -> None:
    assert i18n.choose([], {"LANGUAGE": "zh_CN:en", "LANG": "C"}) == "zh_CN"
    assert i18n.choose([], {"LANGUAGE": "", "LC_ALL": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}) == "zh_CN"
    assert i18n.choose([], {"LC_ALL": "C.UTF-8", "LANG": "zh_CN.UTF-8"}) == "en"  # LC_ALL decides first
    assert i18n.choose([], {"LC_MESSAGES": "zh_CN.UTF-8", "LANG": "C"}) == "zh_CN"
    assert i18n.choose([], {"LANGUAGE": "fr:zh_CN"}) == "zh_CN"  # the first of the list we have
    assert i18n.choose([], {"LANG": "fr_FR.UTF-8"}) == "en"


PO = r'''# a comment
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

#: somewhere.py:1
msgid "hello"
msgstr "bonjour"

msgid "two "
"lines\n"
msgstr "deux "
"lignes\n"

#, fuzzy
msgid "guessed"
msgstr "devine"

msgid "untranslated"
msgstr ""

msgid "a \"quote\" and a \\ backslash\ttab"
msgstr "une \"citation\" et un \\ \ttab"

msgid "{count} user"
msgid_plural "{count} users"
msgstr[0] "{count} utilisateur"
msgstr[1] "{count} utilisateurs"

#~ msgid "old"
#~ msgstr "vieux"
'''


def test_reader_agrees_with_babel() -> None:
    ours = {(e["msgid"], e.get("msgid_plural")): (e["msgstr"], e["fuzzy"]) for e in i18n.read_po(PO)}
    theirs = {}
    for message in babel_pofile.read_po(io.StringIO(PO)):
        if isinstance(message.id, tuple):
            key, strings = (message.id[0], message.id[1]), list(message.string)
        else:
            key, strings = (message.id, None), [message.string]
        theirs[key] = (strings, message.fuzzy)
    theirs[("", None)] = (theirs[("", None)][0], False)  # Babel keeps the header apart
    ours[("", None)] = (theirs[("", None)][0], False)
    assert ours == theirs


def test_translations_leave_fuzzy_and_empty_entries_out() -> None:
    translations = i18n.PoTranslations(PO)
    assert translations.gettext("hello") == "bonjour"
    assert translations.gettext("two lines\n") == "deux lignes\n"
    assert translations.gettext("guessed") == "guessed"
    assert translations.gettext("untranslated") == "untranslated"
    assert translations.gettext('a "quote" and a \\ backslash\ttab') == 'une "citation" et un \\ \ttab'
    assert translations.ngettext("{count} user", "{count} users", 1) == "{count} utilisateur"
    assert translations.ngettext("{count} user", "{count} users", 3) == "{count} utilisateurs"
    assert translations.gettext("old") == "old"


def test_a_line_that_is_not_po_is_an_error() -> None:
    with pytest.raises(ValueError, match="line 2"):
        i18n.read_po('msgid "a"\nmsgstring "b"\n')


def test_use_switches_the_language() -> None:
    assert i18n.use("zh_CN.UTF-8") == "zh_CN"
    assert i18n._("Ctrl-C stops the server.") != "Ctrl-C stops the server."
    assert i18n.use("en") == "en"
    assert i18n._("Ctrl-C stops the server.") == "Ctrl-C stops the server."
    assert i18n.use("fr") == "en"


def test_argparse_speaks_the_chosen_language() -> None:
    i18n.use("zh_CN")
    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--x")
    text = parser.format_help()
    assert "usage:" not in text and "show this help message and exit" not in text
    i18n.use("en")
    assert "usage:" in parser.format_help()


@pytest.mark.parametrize(
    ("text", "cells"), [("abc", 3), ("丢包", 4), ("丢包 loss", 9), ("e\u0301", 1), ("", 0), ("ＴＣＰ", 6)]
)
def test_display_width(text: str, cells: int) -> None:
    assert i18n.display_width(text) == cells


def test_padding_aligns_by_cells() -> None:
    rows = [i18n.pad_right(name, 10) + "|" for name in ("loss", "丢包", "往返时延")]
    assert {i18n.display_width(row.split("|")[0]) for row in rows} == {10}
    assert i18n.pad_left("乱序", 6) == "  乱序"
    assert i18n.pad_left("too long here", 4) == "too long here"


def test_wrap_by_display_width() -> None:
    """Lines of at most N cells; breaks at spaces and between Chinese characters, never inside a word
    (lesson.html stays whole) nor before closing punctuation (no line starts with "，" or "）")."""
    text = "把保存的聊天记录写到标准输出，例如 'chatsrv export --format html > lesson.html'。"
    text += "只有服务器运行时，私聊才出现。"
    for cells in (16, 20, 33, 60):
        lines = i18n.wrap(text, cells)
        assert all(i18n.display_width(line) <= cells for line in lines), (cells, lines)
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")
        assert not [line for line in lines if line[0] in "，。）"], lines
        assert any("lesson.html'。" in line for line in lines)
    assert i18n.wrap("hello world foo bar baz", 11) == ["hello world", "foo bar baz"]  # like textwrap


def test_os_errors_in_the_chosen_language() -> None:
    """strerror is English whatever the locale: the errors a class meets are said in Chinese, others as the OS says."""
    import errno
    import socket

    from lanchat import i18n

    missing = FileNotFoundError(errno.ENOENT, "No such file or directory")
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    odd = OSError(errno.EROFS, "Read-only file system")
    with i18n.temporarily("zh_CN"):
        assert [i18n.os_reason(e) for e in (missing, refused, unknown, odd)] == [
            "没有这个文件或目录", "连接被拒绝", "找不到这个主机名", "Read-only file system"]
    with i18n.temporarily(i18n.ENGLISH):
        assert i18n.os_reason(missing) == "No such file or directory"  # English: the system's words, as before
        assert i18n.os_reason(unknown) == "Name or service not known"
