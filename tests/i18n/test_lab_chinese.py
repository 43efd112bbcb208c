"""chatlab in zh_CN: Chinese tables and summaries, English JSON keys, columns aligned by display width, plot fonts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lanchat import i18n
from lanchat.i18n import display_width
from lanchat_lab import report

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **{key: value for key, value in os.environ.items() if key not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")},
    "PYTHONPATH": str(ROOT),
    "PYTHONIOENCODING": "utf-8",
    "LANG": "C.UTF-8",
}
SMALL_RUN = ["--bots", "1", "--messages", "20", "--rate", "200"]


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    yield
    i18n.use(i18n.ENGLISH)


def chatlab(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "lanchat_lab", *args],
        cwd=ROOT, env=ENV, capture_output=True, text=True, encoding="utf-8", timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def keys(value: Any) -> set[str]:
    """Every dict key anywhere in a JSON value."""
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in keys(item)}
    if isinstance(value, list):
        return {key for item in value for key in keys(item)}
    return set()


@pytest.mark.timeout(120)
def test_compare_json_keeps_english_keys_while_the_table_is_chinese() -> None:
    result = json.loads(chatlab("compare", "--lang", "zh_CN", "--json", *SMALL_RUN))
    found = keys(result)
    assert {"setup", "transports", "delivered", "expected", "latency_ms"} <= found
    assert all(key.isascii() for key in found), [key for key in found if not key.isascii()]

    text = chatlab("compare", "--lang", "zh_CN", *SMALL_RUN)
    assert text.startswith("chatlab compare：每种协议 1 个机器人在同一个房间")
    for words in ("送达／应达", "乱序（seq）", "重复（seq）", "这次运行说明了什么：", "TCP 送达了 20 条中的 20 条"):
        assert words in text
    assert "delivered / expected" not in text
    rows = table_rows(text)
    assert len({display_width(row) for row in rows}) == 1, rows  # the right-aligned last column lines up


def table_rows(text: str) -> list[str]:
    """The compare table's rows (after the dashes, up to the blank line), each ending in its last column."""
    lines = text.splitlines()
    start = next(number for number, line in enumerate(lines) if line.startswith("---"))
    end = lines.index("", start)
    return lines[start - 1 : end]


def test_table_aligns_chinese_by_display_width() -> None:
    rows = [["丢包", "1", "20"], ["往返时延 p50", "0.41", "3"], ["reordered", "12,345", "-"]]
    lines = report.table(rows, ["", "TCP", "UDP"])
    assert len({display_width(line) for line in lines if not line.startswith("-")}) == 1
    # every column ends at the same cell in every row: "-" marks the ends, measured in cells
    first = lines[1].index(" ")  # the dashes under the (left-aligned) first column
    ends = {tuple(column_ends(cells(line), first)) for line in lines}
    assert len(ends) == 1, lines
    assert lines[2] == "丢包               1   20"


def column_ends(row: list[str], start: int) -> list[int]:
    """The cells (from `start` on) where a non-blank run ends."""
    return [i for i in range(start, len(row)) if row[i] != " " and (i + 1 == len(row) or row[i + 1] == " ")]


def cells(line: str) -> list[str]:
    """A line as terminal cells: a wide character fills two."""
    out: list[str] = []
    for char in line:
        out += [char] * display_width(char)
    return out


def test_plot_falls_back_to_english_with_one_warning_without_a_cjk_font(monkeypatch, capsys) -> None:
    pytest.importorskip("matplotlib")
    from lanchat_lab import plot

    seen: list[tuple[str, str | None]] = []
    monkeypatch.setattr(plot, "cjk_font", lambda: None)
    monkeypatch.setattr(plot, "_draw", lambda plt, result, path, font: seen.append((i18n._("message number"), font)))
    i18n.use("zh_CN")
    plot.plot({"scenario": "compare"}, "unused.png")
    assert seen == [("message number", None)]
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and "中文字体" in warning
    assert i18n._("message number") == "消息编号"  # the run's language is back afterwards


def test_plot_uses_chinese_labels_when_a_cjk_font_is_installed(monkeypatch, capsys) -> None:
    pytest.importorskip("matplotlib")
    from lanchat_lab import plot

    seen: list[tuple[str, str | None]] = []
    monkeypatch.setattr(plot, "cjk_font", lambda: "Noto Sans CJK SC")
    monkeypatch.setattr(plot, "_draw", lambda plt, result, path, font: seen.append((i18n._("message number"), font)))
    i18n.use("zh_CN")
    plot.plot({"scenario": "compare"}, "unused.png")
    assert seen == [("消息编号", "Noto Sans CJK SC")]
    assert capsys.readouterr().err == ""


def test_cjk_font_is_looked_up_in_matplotlibs_font_list(monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib import font_manager

    from lanchat_lab import plot

    class Entry:
        def __init__(self, name: str) -> None:
            self.name = name

    monkeypatch.setattr(font_manager.fontManager, "ttflist", [Entry("DejaVu Sans"), Entry("WenQuanYi Zen Hei")])
    assert plot.cjk_font() == "WenQuanYi Zen Hei"
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [Entry("DejaVu Sans")])
    assert plot.cjk_font() is None


def test_chatlab_help_in_chinese() -> None:
    text = chatlab("compare", "--lang", "zh_CN", "--help")
    assert text.startswith("用法：chatlab compare")
    assert "服务器对它发出的 UDP 数据报注入的故障" in text and "丢掉 PCT % 的数据报" in text


def test_lang_before_the_scenario_works_too() -> None:
    """`chatlab --lang zh_CN --help` and `chatlab --lang zh_CN SCENARIO ...`, not only after the scenario."""
    text = chatlab("--lang", "zh_CN", "--help")
    assert text.startswith("用法：chatlab")
    assert "选项" in text and "显示这份帮助并退出" in text and "粘包与拆包" in text
    assert "show this help" not in text
    assert chatlab("--lang", "zh_CN", "sticky", "--help").startswith("用法：chatlab sticky")
    assert chatlab("--lang", "zh_CN", "sticky", "--messages", "3", "--big", "0").startswith("chatlab sticky：3 条")


def test_help_is_wrapped_by_display_width() -> None:
    """argparse's textwrap counts characters: a Chinese help line came out twice the terminal's width."""
    done = subprocess.run(
        [sys.executable, "-m", "lanchat_lab", "--lang", "zh_CN", "sticky", "--help"],
        cwd=ROOT, env={**ENV, "COLUMNS": "60"}, capture_output=True, text=True, encoding="utf-8", timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) > 10
    too_wide = [line for line in lines if i18n.display_width(line) > 60]
    assert not too_wide, too_wide
    assert "一个裸 TCP 发送方" in done.stdout  # the description is there, only wrapped


def test_restart_timeline_server_lines_in_chinese_json_stays_english() -> None:
    """The server's two events: English in the result (--json), translated in the report."""
    from lanchat_lab.connreport import restart_report

    setup = {"bots_per_transport": 1, "transports": ["tcp"], "before": 1.0, "down": 2.0, "interval": 0.25,
             "udp_timeout": 1.5, "graceful": False, "port": 4711}
    result = {
        "scenario": "restart", "setup": setup, "down_at": 1.0, "up_at": 3.0,
        "server_events": [[1.0, "server stopped with SIGKILL (a crash: not a word to anyone)"],
                          [3.0, "server launched again on port 4711"]],
        "bots": [],
    }
    with i18n.temporarily("zh_CN"):
        text = restart_report(result)
    assert "服务器被 SIGKILL 杀掉（相当于崩溃：一句话都没说）" in text and "服务器在端口 4711 上重新启动" in text
    assert "server stopped" not in text and "launched again" not in text
    assert "  服务器  服务器被 SIGKILL" in text and "  server  " not in text  # who: the server, in Chinese too
    assert "server launched again on port 4711" in restart_report(result)  # English


@pytest.mark.timeout(120)
def test_compare_with_injected_loss_names_the_servers_counters_and_ends_sentences_in_chinese() -> None:
    """The server's counter rows (injected lost, send errors ...) and the findings' punctuation are Chinese too."""
    text = chatlab("compare", "--lang", "zh_CN", "--udp-loss", "30", "--seed", "7", *SMALL_RUN)
    assert "服务器：注入的丢包" in text and "服务器：发送出错" in text
    assert "injected" not in text and "send errors" not in text and "bad token" not in text
    findings = text.split("这次运行说明了什么：", 1)[1].strip().splitlines()
    assert all(line.rstrip().endswith("。") for line in findings), findings
    assert any("（" in line and "）：丢包" in line for line in findings), findings


@pytest.mark.timeout(120)
def test_timewait_and_threads_tables_name_sides_steps_and_servers_in_chinese() -> None:
    """The JSON's words (client, server closes, (gone), iterative) are read in the table: Chinese there, JSON as is."""
    text = chatlab("timewait", "--lang", "zh_CN")
    for words in ("客户端先关闭", "服务器先关闭", "已连接", "客户端关闭", "服务器关闭", "（已消失）"):
        assert words in text, words
    assert not any(english in text for english in ("client closes", "server closes", "(gone)", "connected")), text
    header = next(line for line in text.splitlines() if "客户端套接字" in line)
    column = display_width(header[: header.index("客户端套接字")])  # where the client column starts, in cells
    for line in [line for line in text.splitlines() if "ESTABLISHED" in line or "CLOSE_WAIT" in line]:
        state = "ESTABLISHED" if "ESTABLISHED" in line else line.split()[1]
        assert display_width(line[: line.index(state)]) == column, line
    result = json.loads(chatlab("timewait", "--lang", "zh_CN", "--json"))
    assert result["cases"][0]["steps"][0]["step"] == "connected" and result["cases"][0]["first"] == "client"
    threads = chatlab("threads", "--lang", "zh_CN", "--clients", "2", "--hold", "0.2")
    assert "循环服务器（" in threads and "多线程服务器（" in threads and "客户端 2" in threads
    assert "client 1" not in threads and "iterative" not in threads


def test_trace_wire_report_shows_chatclients_recv_lines_in_chinese() -> None:
    """chatlab reads chatclient --trace-wire in English (--lang en) but the student reads its lines in the report."""
    from chatclient.transport import trace_chunk
    from lanchat_lab.connreport import trace_line

    cases = [(100, [b"x" * 40, b"y" * 30], 0), (500, [], 1000), (300, [b"z" * 1800], 1504), (11951, [b"w" * 11947], 0)]
    for size, frames, before in cases:
        with i18n.temporarily(i18n.ENGLISH):
            english = trace_chunk(size, frames, before)
        with i18n.temporarily("zh_CN"):
            assert trace_line(english) == trace_chunk(size, frames, before), english  # the client's own Chinese
            assert "bytes" not in trace_line(english) and "frame" not in trace_line(english)
    assert trace_line("something else") == "something else"
