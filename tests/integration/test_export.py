"""`chatsrv export` in its three formats, from a real database file."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chatsrv.export import main as export_main
from chatsrv.sqlitestore import SQLiteStore
from chatsrv.store import Event

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2024, 5, 6, 9, 0).timestamp()  # a Monday morning, local time

EVENTS = [
    Event("joined", START, "alice", "Physics", transport="tcp"),
    Event("message", START + 1, "alice", "Physics", "<script>alert('hi')</script>", 1, transport="tcp"),
    Event("message", START + 2, "alice", "Physics", "waves & smiles", 2, True, "tcp"),
    Event("joined", START + 3, "李雷", "Physics", transport="udp"),
    Event("message", START + 4, "李雷", "Physics", "first line\nsecond line", 3, transport="udp"),
    Event("renamed", START + 5, "alice", "Physics", transport="tcp", new="alicia"),
    Event("message", START + 6, "bob", "lobby", 'a "quoted" <b>word</b>', 4, transport="tcp"),
    Event("whisper", START + 7, "bob", None, "psst", transport="tcp", to="alicia"),
    Event("left", START + 8, "李雷", "Physics", transport="udp", reason="quit"),
    Event("message", START + 86400, "alicia", "Physics", "next day", 5, transport="tcp"),
]
MESSAGES = [e for e in EVENTS if e.kind == "message"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "lesson.sqlite3"
    store = SQLiteStore(str(path))
    for event in EVENTS:
        store.add(event)
    store.close()
    return path


def export(*argv: str) -> str:
    out = io.StringIO()
    assert export_main(list(argv), out=out) == 0
    return out.getvalue()


class Page(HTMLParser):
    """Collects start tags, `<time>` attributes and the text of each `.text` span."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.times: list[str] = []
        self.texts: list[str] = []
        self.nick_styles: dict[str, str] = {}
        self._depth = 0  # > 0 while inside a .text span
        self._nick_style: str | None = None
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "time":
            self.times.append(attributes.get("datetime") or "")
        if tag == "span":
            self._stack.append("text" if "text" in classes else "other")
            if "text" in classes:
                self._depth += 1
                self.texts.append("")
            if "nick" in classes:
                self._nick_style = attributes.get("style") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._stack and self._stack.pop() == "text":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._nick_style is not None:
            self.nick_styles[data] = self._nick_style
            self._nick_style = None
        if self._depth:
            self.texts[-1] += data


def test_html_is_one_escaped_readable_page(db: Path) -> None:
    """The HTML page holds every message as text (never as markup), a <time> per event and nick colours."""
    page = Page()
    page.feed(export("--db", str(db), "--format", "html"))
    page.close()
    assert page.tags.count("html") == 1 and page.tags.count("body") == 1
    assert "script" not in page.tags and "b" not in page.tags
    assert page.texts[:3] == ["<script>alert('hi')</script>", "* alice waves & smiles", "first line\nsecond line"]
    for message in MESSAGES:
        assert any(message.text in text for text in page.texts)
    assert "psst" in page.texts  # whispers in the file are exported, in their own section
    assert len(page.times) == len(EVENTS)
    assert page.times[1].startswith("2024-05-06T09:00:01")
    colours = {page.nick_styles[nick] for nick in ("alice", "李雷", "bob")}
    assert len(colours) == 3 and all(style.startswith("color:#") for style in colours)
    assert page.tags.count("h3") == 4  # day headings: two days of Physics, one of lobby, one of whispers


def test_text_lines_with_time_room_and_nick(db: Path) -> None:
    """Text export: one line per event with date, time, room and nick; multi-line text indented."""
    lines = export("--db", str(db)).splitlines()
    assert lines[1] == "2024-05-06 09:00:01 #Physics <alice> <script>alert('hi')</script>"
    assert lines[2] == "2024-05-06 09:00:02 #Physics * alice waves & smiles"
    assert lines[4].endswith("<李雷> first line") and lines[5].strip() == "second line"
    assert lines[8] == "2024-05-06 09:00:07 (whisper) bob -> alicia: psst"
    assert lines[-1].startswith("2024-05-07 09:00:00 #Physics <alicia> next day")


def test_jsonl_is_shaped_like_the_protocol(db: Path) -> None:
    """JSON lines export: one protocol-shaped object per event, plus transport and a readable time."""
    records = [json.loads(line) for line in export("--db", str(db), "--format", "jsonl").splitlines()]
    assert len(records) == len(EVENTS)
    messages = [r for r in records if r["type"] == "message"]
    assert [(m["id"], m["from"], m["text"]) for m in messages] == [(e.id, e.nick, e.text) for e in MESSAGES]
    assert messages[1]["action"] is True and messages[2]["transport"] == "udp"
    assert records[5] == {**EVENTS[5].payload(), "transport": "tcp", "time": records[5]["time"]}


def test_room_and_since_filters(db: Path) -> None:
    """--room picks one room in any letter case; --since drops what came before the date."""
    records = [
        json.loads(line) for line in export("--db", str(db), "--format", "jsonl", "--room", "LOBBY").splitlines()
    ]
    assert [r.get("text") for r in records] == ['a "quoted" <b>word</b>']
    later = export("--db", str(db), "--since", "2024-05-07")
    assert later.splitlines() == ["2024-05-07 09:00:00 #Physics <alicia> next day"]
    assert export("--db", str(db), "--since", "2024-05-06 09:00:05").count("\n") == 5


def test_export_command_as_a_process(db: Path) -> None:
    """`python -m chatsrv export` works as a command, and reports a missing file in one line (exit 1)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chatsrv", "export", *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
            encoding="utf-8",
        )

    good = run("--db", str(db), "--format", "html")
    assert good.returncode == 0 and "&lt;script&gt;" in good.stdout and "李雷" in good.stdout
    missing = run("--db", str(db.with_name("nothing.sqlite3")))
    assert missing.returncode == 1 and len(missing.stderr.splitlines()) == 1 and "no database" in missing.stderr


def test_bad_choices_are_one_line_errors(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad --since date (exit 2) and --db :memory: (exit 2) are reported in one line each."""
    with pytest.raises(SystemExit) as exit_info:
        export_main(["--db", str(db), "--since", "last tuesday"], out=io.StringIO())
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "--since" in error and "2024-05-01" in error
    assert export_main(["--db", ":memory:"], out=io.StringIO()) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "keeps nothing" in error


# --- hidden characters: zero-width, tags, bidi --------------------------------------------

HIDDEN = {
    "\u200b": "\\u200b",  # zero-width space
    "\u200d": "\\u200d",  # zero-width joiner
    "\u2060": "\\u2060",  # word joiner
    "\ufeff": "\\ufeff",  # zero-width no-break space
    "\U000e0041": "\\U000e0041",  # tag latin capital letter A
    "\u202e": "\\u202e",  # right-to-left override: would reverse the rest of the line
    "\u2066": "\\u2066",  # left-to-right isolate
    "\u2028": "\\u2028",  # line separator
}
SNEAKY = "".join(f"x{char}" for char in HIDDEN) + "end"
SNEAKY_SHOWN = "".join(f"x{shown}" for shown in HIDDEN.values()) + "end"


@pytest.fixture(scope="module")
def sneaky_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sneaky") / "lesson.sqlite3"
    store = SQLiteStore(str(path))
    store.add(Event("message", START, "mallory", "lobby", "secret \u202eevil", 1, transport="tcp"))
    store.add(Event("message", START + 1, "mallory", "lobby", SNEAKY, 2, transport="tcp"))
    store.add(Event("message", START + 2, "\u202emallory", "lobby", "hi", 3, transport="tcp"))
    store.close()
    return path


def test_text_export_shows_format_characters_as_escapes(sneaky_db: Path) -> None:
    """Text export: zero-width, tag, bidi and separator characters are visible escapes, in texts and nicks."""
    lines = export("--db", str(sneaky_db)).splitlines()
    assert lines[0].endswith("<mallory> secret \\u202eevil")
    assert lines[1].endswith(f"<mallory> {SNEAKY_SHOWN}")
    assert lines[2].endswith("<\\u202emallory> hi")
    assert not any(char in "\n".join(lines) for char in HIDDEN)


def test_html_export_escapes_format_characters_and_isolates_nicks_and_texts(sneaky_db: Path) -> None:
    """HTML export: format characters are visible escapes; every nick and every text sits in its own <bdi>."""
    source = export("--db", str(sneaky_db), "--format", "html")
    assert not any(char in source for char in HIDDEN)
    page = Page()
    page.feed(source)
    page.close()
    assert page.texts == ["secret \\u202eevil", SNEAKY_SHOWN, "hi"]
    assert page.tags.count("bdi") == 6  # three nicks, three texts
    assert "><bdi>\\u202emallory</bdi></span>" in source


def test_jsonl_export_keeps_format_characters_as_json_escapes(sneaky_db: Path) -> None:
    """JSON lines: format characters appear only as JSON \\u escapes, which decode to the very same text."""
    output = export("--db", str(sneaky_db), "--format", "jsonl")
    assert not any(char in output for char in HIDDEN)
    assert "\\u202e" in output and "\\udb40\\udc41" in output  # the tag character as a surrogate pair
    records = [json.loads(line) for line in output.splitlines()]
    assert [record["text"] for record in records] == ["secret \u202eevil", SNEAKY, "hi"]
    assert records[2]["from"] == "\u202emallory"
