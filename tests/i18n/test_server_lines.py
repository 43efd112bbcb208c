"""chatsrv --lang zh_CN: start-up lines and --help in Chinese; the default and --lang en stay English."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **{key: value for key, value in os.environ.items() if key not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")},
    "PYTHONPATH": str(ROOT),
    "PYTHONUNBUFFERED": "1",
    "PYTHONIOENCODING": "utf-8",
    "LANG": "C.UTF-8",
}


def start_lines(*flags: str, env: dict[str, str] = ENV) -> list[str]:
    """The server's lines up to "Ctrl-C" (in either language), then SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chatsrv", "--host", "127.0.0.1", "--port", "0", "--db", ":memory:", *flags],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "Ctrl-C" in line:
                break
    finally:
        process.terminate()
        process.communicate(timeout=10)
    return lines


def test_start_up_lines_in_chinese() -> None:
    lines = start_lines("--lang", "zh_CN", "--udp-loss", "10", "--seed", "3")
    text = "\n".join(lines)
    assert re.search(r"chatsrv \S+ 正在监听 127\.0\.0\.1 的端口 (\d+)（TCP 和 UDP）", lines[0]), text
    assert "UDP 故障注入" in text
    assert "在本机上：chatclient --host 127.0.0.1 --port" in text
    assert "管理员口令：" in text and "在 chatclient 里输入：/op" in text
    assert "聊天记录只保存在内存里（--db :memory:）" in text
    assert lines[-1] == "按 Ctrl-C 停止服务器。"
    assert "listening on" not in text and "operator secret" not in text


def test_the_locale_chooses_chinese_and_lang_en_overrides_it() -> None:
    chinese = {**ENV, "LANG": "zh_CN.UTF-8"}
    assert lines_say("正在监听", start_lines(env=chinese))
    assert lines_say("listening on", start_lines("--lang", "en", env=chinese))
    assert lines_say("listening on", start_lines())  # C.UTF-8: English


def lines_say(words: str, lines: list[str]) -> bool:
    return bool(lines) and words in lines[0]


def test_help_in_chinese_argparse_words_too() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chatsrv", "--lang", "zh_CN", "--help"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, encoding="utf-8", timeout=30, check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("用法：chatsrv")
    for words in ("显示这份帮助并退出", "UDP 故障注入", "丢掉百分之几的数据报", "教师控制", "程序输出所用的语言"):
        assert words in done.stdout
    assert "show this help message" not in done.stdout


def test_argparse_errors_in_chinese() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chatsrv", "--lang", "zh_CN", "--bogus"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, encoding="utf-8", timeout=30, check=False,
    )
    assert done.returncode == 2
    assert "chatsrv：无法识别的参数：--bogus（见 chatsrv --help）" in done.stderr


def test_help_shows_each_default_once_in_chinese() -> None:
    """The help that names its default itself (默认：…) gets no second "(default: X)" from argparse."""
    done = subprocess.run(
        [sys.executable, "-m", "chatclient", "--lang", "zh_CN", "--help"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, encoding="utf-8", timeout=30, check=False,
    )
    port_help = next(line for line in done.stdout.splitlines() if line.startswith("  --port PORT"))
    assert port_help.count("默认") == 1, port_help
    assert "显示版本号并退出" in done.stdout


def test_a_default_goes_inside_the_closing_bracket_in_chinese() -> None:
    """As in English ("(...; default: 9009)"): "（…；默认：9009）", not "（…）（默认：9009）"."""
    from lanchat import i18n
    from lanchat.cliargs import Parser

    with i18n.temporarily("zh_CN"):
        parser = Parser(prog="x")
        port_help = i18n._("TCP port (0 picks a free one and prints it)")
        parser.add_argument("--port", type=int, default=9009, help=port_help)
        shown = " ".join(parser.format_help().split())
    assert "打印出来；默认：9009）" in shown and "）（" not in shown, shown


def test_option_value_errors_and_the_cluster_help_in_chinese(capsys) -> None:
    """A bad value is explained in Chinese, the type's name too (无效的 端口 值), and so is the scale-out group."""
    import pytest

    from chatsrv import options
    from lanchat import i18n

    i18n.use("zh_CN")
    try:
        parser = options.build_parser()
        expected = {
            ("--max-frame", "10"): "要在 256 到 16777216 字节之间，不能是 10",
            ("--port", "abc"): "无效的 端口 值：'abc'",
            ("--workers", "0"): "参数 --workers：至少是 1",
            ("--workers", "x"): "无效的 整数 值：'x'",
            ("--allow", "foo"): "'foo' 不是地址，也不是 192.168.1.0/24 这样的网段",
            ("--udp-delay", "x"): "应当是毫秒数 MS 或 MS:JITTER",
            ("--password-file", "/nonexistent/lanchat"): "读不了 '/nonexistent/lanchat'：",
        }
        for argv, words in expected.items():
            with pytest.raises(SystemExit):
                parser.parse_args(list(argv))
            error = capsys.readouterr().err
            assert words in error, (argv, error)
            assert not any(english in error for english in ("must be", "invalid", "give 1", "not an address")), error
        text = parser.format_help()
        assert "多台服务器（docs/scale-out.md）" in text and "share rooms" not in text and "run N nodes" not in text
        args = parser.parse_args([])
        with pytest.raises(SystemExit):
            options.take_secrets(args, {"LANCHAT_OP_SECRET": " spaced "}, parser)
        assert "LANCHAT_OP_SECRET：要有 1 到 200 个字符，前后不能有空格" in capsys.readouterr().err
    finally:
        i18n.use(i18n.ENGLISH)
