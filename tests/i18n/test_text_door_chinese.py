"""The text door (nc, telnet) in the server's language: its own lines, the server's sentences, and leave reasons."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatsrv.textdoor import GREETING, Answer, interpret, render_payload
from lanchat import i18n
from lanchat.reasons import say


@pytest.fixture(autouse=True)
def chinese() -> Iterator[None]:
    i18n.use("zh_CN")
    yield
    i18n.use(i18n.ENGLISH)


def test_help_usage_and_unknown_commands_in_chinese() -> None:
    help_lines = interpret("/help", False)
    assert isinstance(help_lines, Answer) and help_lines.lines[0] == "命令："
    assert "  /password 密码    服务器要密码时，在输入昵称之前输入" in help_lines.lines
    assert interpret("/msg", True) == Answer(["! 用法：/msg 昵称 内容"])
    assert interpret("/frob", True) == Answer(["! 没有 /frob 这个命令；/help 列出全部命令"])
    assert i18n._(GREETING[0]) == "lanchat 文本入口：输入一行，发出一条消息。"  # what the door says first


def test_server_payloads_read_in_chinese() -> None:
    welcome = {"type": "welcome", "nick": "小明", "room": "lobby", "users": ["小明", "王老师"], "topic": "三次握手"}
    assert render_payload(welcome) == [
        "* 你是 小明，在 lobby 房间；这里有：小明、王老师",
        "* 话题：三次握手",
        "* 输入一行就是说一句话；/help 列出命令",
    ]
    left = {"type": "left", "nick": "小红", "room": "lobby", "reason": "kicked", "by": "王老师"}
    assert render_payload(left) == ["* 小红 离开了 lobby（被请出，由 王老师）"]
    error = {"type": "error", "code": "not_allowed", **say("op_required", action="kick").fields("message")}
    assert render_payload(error) == ["! not_allowed: 只有管理员才能踢人；老师用 /op 口令 成为管理员"]
    notice = {"type": "notice", **say("shutting_down").fields()}
    assert render_payload(notice) == ["* 服务器正在关闭"]
    unknown = {"type": "notice", "reason": "from_a_newer_server", "text": "something new"}
    assert render_payload(unknown) == ["* something new"]  # an unknown key: the server's English


def test_english_stays_as_it_was() -> None:
    with i18n.temporarily(i18n.ENGLISH):
        left = {"type": "left", "nick": "bob", "room": "lobby", "reason": "kicked", "by": "teacher"}
        assert render_payload(left) == ["* bob left lobby (kicked by teacher)"]
        assert interpret("/frob", True) == Answer(["! unknown command /frob; /help lists them"])
