"""The text door's pure parts: line splitting, typed lines to payloads, payloads to safe text lines."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from chatsrv.textdoor import (
    Answer,
    LineSplitter,
    Overlong,
    Remember,
    Send,
    TextOutbox,
    erase,
    escape,
    interpret,
    render_payload,
)
from lanchat.wire import encode_payload


def test_lines_end_at_lf_crlf_cr_nul_and_lone_cr() -> None:
    """nc's LF, telnet's CR LF and CR NUL, and a lone CR all end a line, once."""
    splitter = LineSplitter()
    assert splitter.feed(b"a\nb\r\nc\r\x00d\re\n") == [b"a", b"b", b"c", b"d", b"e"]


def test_crlf_split_across_reads_is_one_line_end() -> None:
    """A CR at the end of one read and its LF at the start of the next make no empty line."""
    splitter = LineSplitter()
    assert splitter.feed(b"hi\r") == [b"hi"]
    assert splitter.feed(b"\nthere\n") == [b"there"]


def test_a_partial_line_waits_for_its_newline() -> None:
    """Bytes without a newline are kept until the line ends."""
    splitter = LineSplitter()
    assert splitter.feed(b"hel") == []
    assert splitter.feed(b"lo\n") == [b"hello"]


def test_an_overlong_line_is_refused_at_once_and_discarded_to_its_newline() -> None:
    """Past the limit: one Overlong as soon as it is known, nothing buffered, the next line is normal."""
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"x" * 11) == [Overlong(10)]
    assert len(splitter._line) == 0
    assert splitter.feed(b"x" * 1000) == []
    assert len(splitter._line) == 0
    assert splitter.feed(b"xx\nok\n") == [b"ok"]


def test_a_line_of_exactly_the_limit_passes() -> None:
    """The limit is inclusive."""
    assert LineSplitter(max_line=4).feed(b"abcd\n") == [b"abcd"]


def test_telnet_commands_are_dropped_even_across_reads() -> None:
    """IAC WILL/DO option, a subnegotiation and IAC IAC vanish, also when split between reads."""
    splitter = LineSplitter()
    assert splitter.feed(b"\xff\xfd\x01a\xff") == []
    assert splitter.feed(b"\xfb\x03b\xff\xfa\x18\x00VT100\xff") == []
    assert splitter.feed(b"\xf0c\xff\xffd\n") == [b"abcd"]


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=40))
def test_memory_stays_bounded_whatever_arrives(data: bytes, limit: int) -> None:
    """No byte sequence, in any chunks, makes the splitter hold more than its limit."""
    splitter = LineSplitter(max_line=limit)
    for start in range(0, len(data), 7):
        for item in splitter.feed(data[start : start + 7]):
            assert isinstance(item, Overlong) or len(item) <= limit
        assert len(splitter._line) <= limit


def test_before_the_nick_a_line_is_the_nick() -> None:
    """The first plain line is the hello; /join and /password are kept for it."""
    assert interpret("alice", joined=False) == Send({"type": "hello", "nick": "alice"})
    assert interpret("/nick alice", joined=False) == Send({"type": "hello", "nick": "alice"})
    assert interpret("/join lab", joined=False) == Remember("room", "lab")
    assert interpret("/password s3cret", joined=False) == Remember("password", "s3cret")
    assert isinstance(interpret("/who", joined=False), Answer)


def test_after_the_nick_lines_are_says_and_commands() -> None:
    """Plain lines are says; the line-mode commands map to the payloads chatclient sends."""
    assert interpret("hi", joined=True) == Send({"type": "say", "text": "hi"})
    assert interpret("//etc", joined=True) == Send({"type": "say", "text": "/etc"})
    assert interpret("/me waves", joined=True) == Send({"type": "say", "text": "waves", "action": True})
    assert interpret("/msg bob psst now", joined=True) == Send({"type": "whisper", "to": "bob", "text": "psst now"})
    assert interpret("/w bob x", joined=True) == Send({"type": "whisper", "to": "bob", "text": "x"})
    assert interpret("/join lab", joined=True) == Send({"type": "join", "room": "lab"})
    assert interpret("/who", joined=True) == Send({"type": "who"})
    assert interpret("/who lab", joined=True) == Send({"type": "who", "room": "lab"})
    assert interpret("/rooms", joined=True) == Send({"type": "rooms"})
    assert interpret("/nick carol", joined=True) == Send({"type": "nick", "nick": "carol"})
    assert interpret("/quit", joined=True) == Send({"type": "bye"})
    assert interpret("   ", joined=True) is None
    unknown = interpret("/frob\x1b[2J", joined=True)
    assert isinstance(unknown, Answer) and "\x1b" not in unknown.lines[0]


def test_escape_keeps_text_and_escapes_controls() -> None:
    """Letters, emoji and tabs stay; ESC, CR, NUL and bidi overrides become visible escapes."""
    assert escape("héllo 你好 👍\tx") == "héllo 你好 👍\tx"
    assert escape("a\x1b[31mb\r\x00\u202e") == "a\\x1b[31mb\\x0d\\x00\\u202e"  # lanchat.display's escapes


def test_render_escapes_every_peer_string() -> None:
    """Nicks, rooms and texts from the service never put a control character on the terminal."""
    payloads = [
        {"type": "message", "from": "b\x1b", "room": "r", "text": "t\x07"},
        {"type": "whisper", "from": "a", "to": "b\x9b", "text": "x"},
        {"type": "left", "nick": "n\x00", "room": "r", "reason": "quit"},
        {"type": "notice", "text": "\x1b]0;title\x07"},
        {"type": "error", "code": "bad_request", "message": "m\x1b"},
        {"type": "something_new", "field": "v\x1b"},
    ]
    for payload in payloads:
        for line in render_payload(payload):
            assert line.isprintable(), line


def test_render_welcome_shows_room_users_and_history() -> None:
    """A welcome becomes who is here, then the recent messages, then a hint."""
    welcome = {
        "type": "welcome",
        "nick": "alice",
        "room": "lobby",
        "users": ["alice", "bob"],
        "history": [{"type": "message", "from": "bob", "text": "earlier", "room": "lobby"}],
    }
    assert render_payload(welcome) == [
        "* you are alice in lobby; here: alice, bob",
        "<bob> earlier",
        "* type a line to say it; /help lists the commands",
    ]


def test_text_outbox_writes_lines_not_frames() -> None:
    """The outbox's encoding is text lines ending in CR LF, with no length header and no seq."""
    bodies = [encode_payload({"type": "message", "from": "bob", "text": "hi"}), encode_payload({"type": "pong"})]
    assert TextOutbox.encode(bodies, 7) == b"<bob> hi\r\n* pong\r\n"
    assert json.loads(bodies[0])["text"] == "hi"


def test_backspaces_edit_the_line() -> None:
    """Telnet in character mode sends BS or DEL for a correction: the line is what the person meant."""
    assert erase("hellp\bo") == "hello"
    assert erase("hx\bexx\b\bllo") == "hello"
    assert erase("你好x\x7f") == "你好"
    assert erase("\b\bhi") == "hi"
    assert erase("plain") == "plain"


def test_a_kick_says_who_and_why() -> None:
    """A `left` with the optional `by` and `message` (docs/protocol.md §9) shows both."""
    left = {"type": "left", "nick": "bob", "room": "lobby", "reason": "kicked", "by": "teacher", "message": "spam"}
    assert render_payload(left) == ["* bob left lobby (kicked by teacher: spam)"]
    assert render_payload({"type": "left", "nick": "bob", "room": "lobby", "reason": "quit"}) == [
        "* bob left lobby (quit)"
    ]
