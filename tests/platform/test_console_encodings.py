"""The chat on consoles that cannot show every script (ASCII, GBK): escapes, never a UnicodeEncodeError."""

from __future__ import annotations

import signal

import pytest

from tests.platform.conftest import Launcher, shown

# One message per script, and one that mixes them all.
CHINESE = "你好，同学们"
HINDI = "नमस्ते दोस्तो"
THAI = "สวัสดีครับ"
EMOJI = "👍🎉😀"
MIXED = f"{CHINESE} {HINDI} {THAI} {EMOJI}"
TEACHER = "王老师的电脑"  # the server name, in its start-up lines and every welcome


@pytest.mark.timeout(90)
@pytest.mark.parametrize("encoding", ["ascii", "gbk"])
def test_every_client_on_a_narrow_console_chats_without_a_traceback(hidden: Launcher, encoding: str) -> None:
    """Chinese, Hindi, Thai and emoji nicks and messages reach ASCII/GBK consoles as text or visible escapes."""
    server, port, start_lines = hidden.server("--name", TEACHER, encoding=encoding)
    assert any(f'answers as "{shown(TEACHER, encoding)}"' in line for line in start_lines)
    # Nicks come from the command line (never the console's encoding), like a Windows shortcut's arguments.
    li = hidden.client(port, "李雷", encoding=encoding)
    ram = hidden.client(port, "राम", encoding=encoding)
    somchai = hidden.client(port, "สมชาย", "--udp", encoding=encoding)
    members = {"李雷": li, "राम": ram, "สมชาย": somchai}
    assert shown(TEACHER, encoding) in li.stdout.seen[0]  # "you are 李雷 in lobby on 王老师的电脑"
    # What each console can type: GBK has Chinese (not Hindi, Thai or emoji); ASCII has only ASCII.
    typed = CHINESE if encoding == "gbk" else "hello class"
    li.say(typed)
    somchai.say(f"{typed} (udp)")
    for member in members.values():
        for sender, text in (("李雷", typed), ("สมชาย", f"{typed} (udp)")):
            member.stdout.line_ending(f"<{shown(sender, encoding)}> {shown(text, encoding)}")
    # A classmate on a UTF-8 console writes in every script at once (through the same hidden-Linux client).
    ana = hidden.client(port, "Ana", encoding="utf-8")
    ana.say(MIXED)
    for member in members.values():
        line = member.stdout.line_ending(f"<Ana> {shown(MIXED, encoding)}")
        if encoding == "ascii":
            assert "\\u4f60\\u597d" in line and "\\U0001f44d" in line  # 你好 and 👍 as escapes
        else:
            assert CHINESE in line and "\\u0928" in line and "\\U0001f600" in line  # Chinese shown, the rest escaped
    ana.stdout.line_ending(f"<Ana> {MIXED}")  # a UTF-8 console shows it all
    for member in (*members.values(), ana):
        member.say("/quit")
        assert member.exit_code(10) == 0
        assert "Traceback" not in member.error_text()
    server.popen.send_signal(signal.SIGINT)
    assert server.exit_code(5) == 0
    log = server.error_text()
    assert "Traceback" not in log and "Logging error" not in log
    assert f"join: {shown('李雷', encoding)} " in log  # the server's log escapes what its console cannot show
