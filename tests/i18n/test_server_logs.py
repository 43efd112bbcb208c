"""The server's teacher-facing log lines speak the console's language; the records stay English."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chatsrv.consolelog import ConsoleFormatter, SafeLogFilter
from lanchat import i18n
from tests.i18n.test_server_lines import ENV, ROOT

KICK = "audit: kick by %s -> %s%s%s"


def record(template: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("chatsrv.audit", level, __file__, 1, template, args, None)


def console(line: logging.LogRecord, language: str) -> str:
    with i18n.temporarily(language):
        return ConsoleFormatter("%(levelname)s %(message)s").format(line)


def test_a_kick_is_chinese_on_a_chinese_console_and_english_on_an_english_one() -> None:
    kick = record(KICK, "teacher [tcp 127.0.0.1:5]", "bob [udp 127.0.0.1:6]", " reason='spam'", "")
    assert console(kick, "zh_CN") == "INFO 审计：teacher [tcp 127.0.0.1:5] 踢出了 bob [udp 127.0.0.1:6] reason='spam'"
    assert console(kick, "en") == "INFO audit: kick by teacher [tcp 127.0.0.1:5] -> bob [udp 127.0.0.1:6] reason='spam'"
    assert kick.msg == KICK  # the record itself (what a log file or another handler gets) stays English


def test_debug_lines_stay_english() -> None:
    line = record("stopping", level=logging.DEBUG)
    assert console(line, "zh_CN") == "DEBUG stopping"
    assert console(record("stopping"), "zh_CN") == "INFO 正在停止"


def test_an_escaped_argument_keeps_the_line_translatable() -> None:
    """SafeLogFilter escapes a nick's ESC in the arguments, so the template still translates."""
    kick = record(KICK, "teacher", "bo\x1b[2Jb", "", "")
    assert SafeLogFilter().filter(kick)
    assert console(kick, "zh_CN") == "INFO 审计：teacher 踢出了 bo\\x1b[2Jb"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("language", "expected"),
    [("zh_CN", "；聊天记录只保存在内存里"), ("en", "; chat history is kept in memory only")],
)
def test_a_store_error_in_the_consoles_language(tmp_path: Path, language: str, expected: str) -> None:
    """The real command: a database in a folder that does not exist is logged as an error, translated."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chatsrv", "--lang", language, "--host", "127.0.0.1", "--port", "0",
         "--no-udp", "--db", str(tmp_path / "missing" / "lesson.db")],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
    )
    assert process.stdout is not None
    try:
        for _line in range(30):  # the start-up lines end with the Ctrl-C line (bounded: at most 30 lines)
            if "Ctrl-C" in process.stdout.readline():
                break
    finally:
        process.terminate()
        _out, stderr = process.communicate(timeout=20)
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert errors and errors[0].endswith(expected), stderr


def test_a_refused_connection_keeps_its_template_for_the_console() -> None:
    """The adapters log a refusal as a template (the console translates it), not as a finished English line."""
    from chatsrv.tcp import ChatRequestHandler
    from chatsrv.textdoor import TextDoorHandler

    assert ChatRequestHandler.refused_line == "refused %s: %s%s"
    line = record(TextDoorHandler.refused_line, "127.0.0.1:5", "this server needs a password", "")
    assert console(line, "zh_CN") == "INFO 文本入口拒绝了 127.0.0.1:5：this server needs a password"


def test_refusals_and_rule_summaries_are_chinese_on_the_console_and_english_in_the_record() -> None:
    """The server's own sentences in a log line's arguments (`Said`, `LogText`) follow the console's language."""
    from chatsrv.errorreplies import REFUSAL_LINE
    from chatsrv.moderation import Moderation, Refusal
    from lanchat.i18n import LogText
    from lanchat.reasons import say

    refused = record("refused %s: %s%s", "#1 [tcp 127.0.0.1:5]", say("no_such_user", nick="小红"), "")
    assert console(refused, "zh_CN") == "INFO 拒绝了 #1 [tcp 127.0.0.1:5]：这里没有叫“小红”的人"
    assert console(refused, "en") == 'INFO refused #1 [tcp 127.0.0.1:5]: nobody called "小红" is here'
    assert refused.getMessage() == 'refused #1 [tcp 127.0.0.1:5]: nobody called "小红" is here'  # other handlers

    class Student:  # what check_say reads of a session: its nick (and that it is hashable)
        nick = "小明"

    moderation = Moderation()
    moderation.mute("小明", "王老师", None)
    with pytest.raises(Refusal) as caught:
        moderation.check_say(Student(), "lobby", 1.0)  # type: ignore[arg-type]
    summary = record(REFUSAL_LINE, caught.value.summary, "小明 [tcp 127.0.0.1:5]")
    assert console(summary, "zh_CN") == "INFO 被禁言的 小明 想发言（小明 [tcp 127.0.0.1:5]）"
    assert summary.getMessage() == "muted 小明 tried to speak (小明 [tcp 127.0.0.1:5])"

    op = record("audit: op refused for %s: %s (%d tries left)", "小明", LogText("wrong operator secret"), 4)
    assert "管理员口令不对" in console(op, "zh_CN") and "wrong" not in console(op, "zh_CN")
    left = record("leave: %s from %s (%s)", "小明", "lobby", LogText("kicked"))
    assert console(left, "zh_CN") == "INFO 离开：小明 离开了 lobby（被请出）"


def test_slow_mode_turned_off_is_said_so_on_the_console(caplog) -> None:
    """`/slow 0` was logged as "slow mode: 0 seconds"; it turns slow mode off, and the console says that."""
    from chatsrv.service import ChatService
    from tests.unit.test_operators import SECRET, join

    service = ChatService(rate=0, op_secret=SECRET)
    teacher = join(service, "王老师")
    teacher.send(type="op", secret=SECRET)
    with caplog.at_level(logging.INFO, logger="chatsrv.audit"):
        teacher.send(type="slow", seconds=10)
        teacher.send(type="slow", seconds=0)
    lines = [console(line, "zh_CN") for line in caplog.records if "slow" in str(line.msg)]
    assert lines[0].endswith("设了慢速模式：10 秒") and lines[1].endswith("关闭了房间 lobby 的慢速模式"), lines


@pytest.mark.parametrize(("language", "tag"), [("en", "[node 2]"), ("zh_CN", "[节点 2]")])
def test_a_node_of_workers_tags_its_console_lines(language: str, tag: str) -> None:
    """--workers' nodes share one console: each line says which node wrote it (two nodes print the same
    "lost the link" line; untagged, the teacher read it twice and could not tell them apart)."""
    script = (
        "import logging; from lanchat import i18n; from chatsrv.consolelog import configure_logging\n"
        f"i18n.setup(['--lang', {language!r}]); configure_logging('info', node='2')\n"
        "logging.getLogger('chatsrv.backplane').warning('stopping')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=ENV, capture_output=True, text=True, encoding="utf-8",
        timeout=30, check=True,
    )
    assert re.fullmatch(rf"\d\d:\d\d:\d\d {re.escape(tag)} WARNING \S+\n", done.stderr), done.stderr
