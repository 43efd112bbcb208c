"""chatsrv export --lang zh_CN: text and HTML in Chinese; JSON lines (for programs) stay English."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from chatsrv.export import main as export_main
from chatsrv.sqlitestore import SQLiteStore
from chatsrv.store import Event
from lanchat import i18n
from tests.integration.test_export import EVENTS, START

MODERATION = [
    Event("kick", START + 10, "teacher", "Physics", "spam", to="bob"),
    Event("mute", START + 11, "teacher", "Physics", to="alicia", reason="for 5 minute(s)"),
    Event("lock", START + 12, "teacher", "Physics", reason="every room"),
    Event("slow", START + 13, "teacher", "Physics", reason="10 s"),
    Event("restarted", START + 20, "", "Physics", "server restarted after 4 s", reason="2 member(s) were here"),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export-zh") / "lesson.sqlite3"
    store = SQLiteStore(str(path))
    for event in EVENTS + MODERATION:
        store.add(event)
    store.close()
    return path


def export(*argv: str) -> str:
    out = io.StringIO()
    with i18n.temporarily(i18n.language()):  # export chooses the process's language: put it back
        assert export_main(list(argv), out=out) == 0
    return out.getvalue()


def test_text_lines_in_chinese(db: Path) -> None:
    text = export("--db", str(db), "--lang", "zh_CN")
    assert "2024-05-06 09:00:00 #Physics --> alice 加入了" in text
    assert "alice 改名为 alicia" in text and "李雷 离开了（退出）" in text
    assert "（私聊）bob -> alicia: psst" in text or "（私聊） bob -> alicia: psst" in text
    assert "!! [踢人] teacher 踢出了 bob：spam" in text
    assert "!! [禁言] teacher 禁言了 alicia，5 分钟" in text
    assert "!! [锁定] teacher 锁定了所有房间" in text
    assert "!! [慢速] teacher 开启了慢速模式：每 10 秒一条消息" in text
    assert "!! [重启] 服务器在 4 秒后重启；60 秒内没有人回来" in text
    assert "joined" not in text and "kicked" not in text
    english = export("--db", str(db), "--lang", "en")
    assert "!! [kick] teacher kicked bob: spam" in english and "--> alice joined" in english


def test_html_headings_in_chinese(db: Path) -> None:
    page = export("--db", str(db), "--format", "html", "--lang", "zh_CN")
    assert '<html lang="zh-CN">' in page
    assert "<title>lanchat 聊天记录</title>" in page and "<h2>私聊</h2>" in page
    assert "<h3>2024年5月06日 星期一</h3>" in page
    assert "5 条消息，从 2024-05-06 09:00 到 " in page and "从 " + str(db) + " 导出。" in page
    assert '<span class="kind">踢人</span>' in page and 'class="notice kick"' in page  # the class stays English
    english = export("--db", str(db), "--format", "html", "--lang", "en")
    assert "<h3>Monday 06 May 2024</h3>" in english and "5 messages from" in english


def test_json_lines_stay_english(db: Path) -> None:
    """Machine format: the same records, keys and values, whatever the language."""
    chinese = export("--db", str(db), "--format", "jsonl", "--lang", "zh_CN")
    english = export("--db", str(db), "--format", "jsonl", "--lang", "en")
    assert chinese == english
    records = [json.loads(line) for line in chinese.splitlines()]
    assert {"type", "room", "time"} <= set(records[0])
    restart = next(record for record in records if record.get("event") == "restarted")
    assert restart["text"] == "server restarted after 4 s; nobody back within 60 s"


def test_the_locale_chooses_the_language(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in i18n.ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert "加入了" in export("--db", str(db))
