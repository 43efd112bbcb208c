"""The terminal client in zh_CN: joins, chats, and shows a Chinese bar, /help and a translated error.

Real chatsrv and chatclient processes, the client in a pseudo-terminal seen
through pyte (like tests/integration/test_ui_terminal.py), so the checks are
about what a Chinese-speaking student sees. The server stays English: only
the client is asked for Chinese (--lang), and LANG=C.UTF-8 says nothing.
"""

from __future__ import annotations

import pytest

from lanchat.i18n import display_width
from tests.integration.test_ui_terminal import COLUMNS, free_port, join_args, servers, terminals  # noqa: F401

pytestmark = pytest.mark.timeout(60)


def test_chinese_client_joins_chats_and_explains(servers, terminals) -> None:  # noqa: F811
    port = free_port()
    servers(port)
    alice = terminals(*join_args(port, "alice", "--lang", "zh_CN"))
    alice.wait_for(lambda: "alice@lobby" in alice.toolbar and "已连接" in alice.toolbar and "1 人" in alice.toolbar)
    alice.wait_for("你是 alice，在")  # the welcome line
    bob = terminals(*join_args(port, "bob"))  # an English classmate in the same room
    bob.wait_for(lambda: "2 users" in bob.toolbar)
    alice.wait_for(lambda: "2 人" in alice.toolbar)

    alice.type("大家好\r")
    bob.wait_for("alice │ 大家好")
    bob.type("hello alice\r")
    alice.wait_for("bob │ hello alice")

    alice.type("/help\r")
    alice.wait_for("管理员命令（先 /op 口令）：")  # the list is longer than the screen: its end shows
    alice.wait_for("离开聊天（也可以用 /exit）")
    assert "leave the chat" not in alice.text() and "operator commands" not in alice.text()

    alice.type("/msg nobody hi\r")  # the server's error no_such_user, in plain Chinese words
    alice.wait_for("没有这个人")
    alice.wait_for("/rooms 列出其他房间。")

    alice.type("/ping\r")
    alice.wait_for(lambda: "往返时延" in alice.toolbar)
    assert display_width(alice.toolbar) <= COLUMNS  # the bar is laid out by cells, not characters

    alice.type("/quit\r")
    assert alice.wait_exit() == 0
    bob.wait_for("alice left (quit)")  # the server and bob stay English


def test_a_refused_operator_command_reads_chinese_in_the_ui_and_in_line_mode(servers, terminals) -> None:  # noqa: F811
    """The server's own sentence (lanchat.reasons, docs/protocol.md §14), not only the client's frame around it."""
    port = free_port()
    servers(port)
    alice = terminals(*join_args(port, "alice", "--lang", "zh_CN"))
    alice.wait_for(lambda: "已连接" in alice.toolbar)
    bob = terminals(*join_args(port, "bob", "--lang", "zh_CN", "--plain"))  # line mode, as scripts use it
    bob.wait_for("bob")
    alice.wait_for(lambda: "2 人" in alice.toolbar)

    alice.type("/kick bob\r")
    alice.wait_for("只有管理员才能踢人")
    alice.wait_for("老师用 /op 口令 成为管理员")
    bob.type("/kick alice\r")
    bob.wait_for("not_allowed: 只有管理员才能踢人；老师用 /op 口令 成为管理员")  # the code stays for scripts
    for screen in (alice.text(), bob.text()):
        assert "only operators" not in screen and "teacher" not in screen and "SECRET" not in screen, screen
