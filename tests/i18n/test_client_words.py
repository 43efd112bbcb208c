"""The client's words in zh_CN, unit by unit: the bar (laid out by cells), errors, --trace-wire, /help."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatclient import commands, plainwords
from chatclient.render import cell_width, fragments_text, status_bar
from chatclient.state import ClientState
from chatclient.transport import trace_chunk
from lanchat import i18n


@pytest.fixture(autouse=True)
def chinese() -> Iterator[None]:
    i18n.use("zh_CN")
    yield
    i18n.use(i18n.ENGLISH)


def test_status_bar_in_chinese() -> None:
    state = ClientState(nick="alice", room="lobby", users=["alice", "bob", "carol"], rtt=0.0123)
    bar = fragments_text(status_bar(state, "127.0.0.1:9009", i18n._("connected")))
    assert bar.strip() == "alice@lobby │ TCP 127.0.0.1:9009 │ 3 人 │ 往返时延 12.3 ms │ 已连接"


def test_narrow_chinese_bar_fits_by_cells_not_characters() -> None:
    """丢包 is 2 characters but 4 cells: a bar measured with len() would overflow the terminal."""
    state = ClientState(nick="listener", room="lobby", users=["listener", "talker"], transport="udp", rtt=0.0005)
    state.seq.add(3)
    wide = fragments_text(status_bar(state, "127.0.0.1:42543", i18n._("connected"), width=200))
    assert "丢包 2 乱序 0 重复 0" in wide and "往返时延 0.5 ms" in wide
    for width in (cell_width(wide) - 5, 62):  # 61 cells is all that always stays
        narrow = fragments_text(status_bar(state, "127.0.0.1:42543", i18n._("connected"), width=width))
        assert cell_width(narrow) <= width, (width, narrow)
    assert narrow.strip() == "listener@lobby │ UDP │ 2 人 │ 已连接 │ 丢包 2 乱序 0 重复 0"


def test_errors_in_plain_chinese_and_the_script_line_keeps_its_code() -> None:
    assert plainwords.explain("nick_taken", "") == "这里已经有人用这个昵称了：用 /nick 新昵称 换一个。"
    assert plainwords.explain("auth_failed", "this server needs a password") == "这台服务器需要密码。"
    line = plainwords.for_scripts("rate_limited", "slow down: 2.0 s")
    assert line.startswith("rate_limited: slow down: 2.0 s [")  # what scripts match stays as the server sent it
    assert "等一会儿再发" in line


def test_trace_wire_in_chinese() -> None:
    line = trace_chunk(100, [b"x" * 40, b"y" * 30], 0)
    assert line == "recv 收到 100 字节，2 个完整的帧：[4+40] | [4+30] | 下一帧的开头（22 字节）"


def test_help_lines_in_chinese() -> None:
    lines = commands.help_lines()
    assert lines[0] == "命令（其他内容都会发到你的房间；要以 / 开头说话，就打 //）："
    assert any(line.startswith("  /nick 新昵称") and line.endswith("改昵称") for line in lines)
    assert "管理员命令（先 /op 口令）：" in lines
    assert isinstance(commands.parse("/frobnicate"), commands.Problem)
    assert commands.parse("/frobnicate") == commands.Problem("没有 /frobnicate 这个命令；/help 列出全部命令")


def test_the_zero_width_marker_in_chinese() -> None:
    """A long mixed run of zero-width characters is one marker, worded in the client's language."""
    from chatclient.render import sanitize

    pile = "\u0301\u0302\u0303\u200b\u0304" * 10
    assert sanitize(f"z{pile}!") == "z⟨50 个零宽字符⟩!"
    assert sanitize("a" + "\u200b" * 20 + "b") == "a⟨20 × U+200B⟩b"  # one character: its code point, no words
    with i18n.temporarily(i18n.ENGLISH):
        assert sanitize(f"z{pile}!") == "z⟨50 zero-width characters⟩!"


def test_help_arguments_in_chinese_and_aligned_by_cells() -> None:
    """The argument placeholders a student reads (NICK, ROOM, SECRET ...) are Chinese, and the column stays straight."""
    lines = [line for line in commands.help_lines() if line.startswith("  /")]
    assert "  /kick 昵称 [理由]  把某人请出聊天（他还可以再回来）" in lines
    assert any(line.startswith("  /op 口令 ") for line in lines)
    assert not any(word in line for line in lines for word in ("NICK", "ROOM", "SECRET", "ADDRESS", "SECONDS"))
    columns = set()
    for command in commands.COMMANDS:
        description = i18n._(command.help)
        line = next(line for line in lines if line.startswith(f"  /{command.name} ") and description in line)
        columns.add(i18n.display_width(line[: line.index(description)]))  # where the description starts, in cells
    assert len(columns) == 1, columns
    assert commands.parse("/kick") == commands.Problem("用法：/kick 昵称 [理由]")
    assert commands.parse("/join") == commands.Problem("用法：/join 房间")


def test_whisper_sent_in_line_mode_in_chinese() -> None:
    from chatclient.lines import Line
    from chatclient.render import plain

    line = Line("whisper_out", "悄悄话", 0.0, "alice", "小明")
    assert plain(line).endswith("] *悄悄对 小明 说* 悄悄话")
    with i18n.temporarily(i18n.ENGLISH):
        assert plain(line).endswith("] *to 小明* 悄悄话")


def test_server_stats_named_in_chinese() -> None:
    """/stats: the server's counters are named in the user's words, not its JSON keys; an unknown key stays as sent."""
    state = ClientState(nick="小明", transport="udp")
    payload = {"type": "stats", "sent": 6, "received": 3, "gaps": 0, "reordered": 0, "duplicates": 0}
    lines = state.apply({**payload, "injected_lost": 1, "send_errors": 0, "future_key": 2}, 0.0)
    assert lines[0].text == "服务器的统计：发出 6、收到 3、缺口 0、乱序 0、重复 0、故意丢包 1、发送出错 0、future_key 2"


def test_leave_reasons_and_kick_reason_in_chinese() -> None:
    """A `left` reason is a protocol key (shutdown, kicked, quit...): the student reads it in words."""
    state = ClientState(nick="小明", room="lobby", users=["小明", "小红"])
    lines = state.apply({"type": "left", "nick": "小红", "room": "lobby", "reason": "quit"}, 0.0)
    assert "（退出）" in lines[0].text and "quit" not in lines[0].text
    state.users = ["小明", "a", "b"]
    changes = [{"left": "a", "reason": "lost"}, {"left": "b", "reason": "lost"}]
    burst = state.apply({"type": "members", "room": "lobby", "changes": changes, "ts": 1.0}, 0.0)
    assert burst and all("连接断了" in line.text for line in burst), burst
    own = state.apply({"type": "left", "nick": "小明", "room": "lobby", "reason": "shutdown"}, 0.0)
    assert "（服务器关闭）" in own[0].text and "shutdown" not in own[0].text
    state = ClientState(nick="小明", room="lobby", users=["小明"])
    kicked = state.apply({"type": "left", "nick": "小明", "room": "lobby", "reason": "kicked", "by": "王老师",
                          "message": "上课玩手机"}, 0.0)
    assert "请出了聊天：上课玩手机。" in kicked[0].text
    with i18n.temporarily(i18n.ENGLISH):
        line = ClientState(nick="x").apply({"type": "left", "nick": "y", "room": "lobby", "reason": "quit"}, 0.0)
        assert line[0].text == "y left (quit)"


def test_a_wrapped_chinese_row_never_starts_with_closing_punctuation() -> None:
    """Seen in the chat UI: a lone 。 on the next row. The character before it goes down with it."""
    from chatclient.render import wrap

    assert wrap("禁止某人在房间里发言。", 20, 8) == ["禁止某人在房间里发", "言。"]
    assert wrap("一二三四五，六", 10) == ["一二三四", "五，六"]
    assert wrap("一二三四五", 10) == ["一二三四五"]  # fits: nothing moves
    rows = wrap("你仍然可以看聊天，也可以私聊管理员，但房间里的人看不到你说的话。", 12)
    assert all(cell_width(row) <= 12 for row in rows) and not any(row[0] in "。，" for row in rows), rows


def test_the_clients_own_prefix_is_followed_by_a_chinese_colon() -> None:
    """`chatclient: 无法连接 ...: Connection refused` mixed English into a Chinese line (prefix, colon, OS words)."""
    import os
    import socket
    import subprocess
    import sys

    from tests.i18n.test_server_lines import ENV, ROOT

    with socket.socket() as closed:  # a port nothing listens on: bound, never listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "chatclient", "--lang", "zh_CN", "--plain", "--host", "127.0.0.1",
             "--port", str(port), "--nick", "小明"],
            cwd=ROOT, env={**ENV, "PATH": os.environ.get("PATH", "")}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, encoding="utf-8", timeout=30, check=False,
        )
    assert done.stderr.startswith(f"chatclient：无法连接 127.0.0.1:{port}：连接被拒绝"), done.stderr


def test_a_prompt_with_a_default_keeps_its_chinese_colon() -> None:
    from chatclient.ui import offering

    assert offering(i18n._("your nick: "), "root") == "你的昵称 [root]："
    with i18n.temporarily(i18n.ENGLISH):
        assert offering(i18n._("your nick: "), "root") == "your nick [root]: "


def test_lists_of_names_use_the_chinese_enumeration_comma() -> None:
    """小明, 王老师 read as English punctuation in a Chinese line: names are listed with 、 (English keeps ", ")."""
    state = ClientState(nick="小明")
    users = ["小明", "小红", "王老师"]
    welcome = state.apply({"type": "welcome", "nick": "小明", "room": "lobby", "users": users}, 0.0)
    assert "小明、小红、王老师" in welcome[0].text, welcome[0].text
    who = state.apply({"type": "users", "room": "lobby", "users": ["小明", "王老师"], "operators": ["王老师"]}, 0.0)
    assert who[0].text.startswith("lobby 里有：小明、@王老师"), who[0].text
    with i18n.temporarily(i18n.ENGLISH):
        assert "小明, 小红" in ClientState(nick="x").apply(
            {"type": "welcome", "nick": "x", "room": "lobby", "users": ["小明", "小红"]}, 0.0)[0].text


def test_the_history_divider_dates_in_chinese() -> None:
    """The divider above saved messages said "since Fri 4 Dec 2026, 09:05" in a Chinese client."""
    import time

    sent = time.mktime((2026, 12, 4, 9, 5, 0, 0, 0, -1))
    history = [{"type": "message", "id": 1, "room": "maths", "from": "小红", "text": "第一条", "ts": sent}]
    welcome = {"type": "welcome", "nick": "小明", "room": "maths", "users": ["小明"], "history": history}
    lines = ClientState(nick="小明").apply(welcome, sent + 99)
    assert lines[0].text == "── maths 之前的消息（自 2026年12月04日 星期五 09:05 起） ──", lines[0].text
