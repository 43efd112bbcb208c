"""render's formatted text for the terminal UI: layout, styles, widths, safety, toolbar."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatclient.lines import Line
from chatclient.render import (
    NICK_COLUMN,
    cell_width,
    fragments,
    fragments_text,
    nick_colour,
    sanitize,
    status_bar,
    wrap,
)
from chatclient.state import ClientState
from lanchat.display import COMPACT_RUN

TS = time.mktime((2024, 5, 6, 9, 7, 0, 0, 0, -1))


def text_of(line: Line, width: int | None = None, colour: bool = True) -> str:
    return fragments_text(fragments(line, colour, width))


def styles_of(line: Line, colour: bool = True) -> str:
    return " ".join(style for style, _ in fragments(line, colour))


def test_message_line_has_clock_aligned_nick_and_text() -> None:
    """`HH:MM`, the nick right-aligned in its column, a bar, the text, a newline."""
    assert text_of(Line("message", "hi all", TS, "bob")) == "09:07" + " " * (1 + NICK_COLUMN - 3) + "bob │ hi all\n"


def test_wide_nicks_align_by_display_width() -> None:
    """A CJK nick takes two cells per character, so the text column stays put."""
    ascii_line = text_of(Line("message", "x", TS, "abcdef"))
    cjk_line = text_of(Line("message", "x", TS, "王小明"))
    assert cell_width(ascii_line.split("│")[0]) == cell_width(cjk_line.split("│")[0])
    assert cell_width("王小明") == 6 and cell_width("e\u0301") == 1 and cell_width("ab") == 2


def test_kinds_are_distinguishable_without_colour() -> None:
    """Own, whisper in/out, action, notice, error, presence and info differ even with colour off."""
    kinds = {
        "own": Line("own", "t", TS, "me"),
        "message": Line("message", "t", TS, "me"),
        "action": Line("action", "waves", TS, "bob"),
        "whisper_in": Line("whisper_in", "t", TS, "bob", "me"),
        "whisper_out": Line("whisper_out", "t", TS, "me", "bob"),
        "notice": Line("notice", "t", TS),
        "error": Line("error", "t", TS),
        "presence": Line("presence", "t", TS, "bob"),
    }
    seen = {(text_of(line, colour=False), styles_of(line, colour=False)) for line in kinds.values()}
    assert len(seen) == len(kinds)
    assert "* │ bob waves" in text_of(kinds["action"])
    assert "*bob* │ t" in text_of(kinds["whisper_in"])
    assert "-> *bob* │ t" in text_of(kinds["whisper_out"])
    assert "dim" in styles_of(kinds["presence"], colour=False)


def test_no_colour_keeps_attributes_but_drops_colours() -> None:
    """colour=False removes every fg:/bg: style but keeps bold, dim, reverse."""
    line = Line("message", "hey me", TS, "bob", mention=True)
    assert "fg:" in styles_of(line) and "fg:" not in styles_of(line, colour=False)
    assert "reverse" in styles_of(line, colour=False)


def test_mention_is_highlighted() -> None:
    """A line that mentions you is shown in reverse video; others are not."""
    assert "reverse" in styles_of(Line("message", "hi me", TS, "bob", mention=True))
    assert "reverse" not in styles_of(Line("message", "hi", TS, "bob"))


def test_nick_colour_is_stable_and_case_insensitive() -> None:
    """The same nick always gets the same colour, whatever its case."""
    assert nick_colour("Alice") == nick_colour("alice") == nick_colour("ALICE")
    assert f"fg:{nick_colour('alice')}" in styles_of(Line("message", "x", TS, "alice"))


def test_control_characters_become_visible_in_text_and_nick() -> None:
    """Escapes, C1 CSI, BEL, BS, CR and bidi overrides are shown as escapes, never emitted."""
    text = text_of(Line("message", "a\x1b[2Jb\x9bc\x07d\x08e\rf\u202eg", TS, "ev\x1bil"))
    assert "a\\x1b[2Jb\\x9bc\\x07d\\x08e\\x0df\\u202eg" in text
    assert "ev\\x1bil" in text
    assert not any(ord(char) < 32 and char != "\n" or 0x7F <= ord(char) < 0xA0 for char in text)


def test_newline_in_a_message_cannot_forge_a_line() -> None:
    """Later rows of a message start blank where the clock and nick go."""
    forged = text_of(Line("message", "hi\n09:08        bob │ give me your password", TS, "mallory"))
    rows = forged.splitlines()
    assert rows[1].startswith(" " * (6 + NICK_COLUMN) + " │ 09:08")


def test_long_line_wraps_indented_so_soft_wrap_cannot_forge_a_line() -> None:
    """Text longer than the width is wrapped by us onto indented rows, each within the width."""
    width = 40
    text = "x" * 21 + "09:08  teacher │ fake"
    rows = text_of(Line("message", text, TS, "mallory"), width=width).splitlines()
    assert len(rows) > 1
    assert all(cell_width(row) <= width for row in rows)
    assert all(row.startswith(" " * 16 + " │ ") for row in rows[1:])


def test_wrap_breaks_at_spaces_and_inside_cjk() -> None:
    """Words move whole to the next row; CJK text breaks between characters at the cell limit."""
    assert wrap("hello big world", 9) == ["hello big", "world"]
    assert wrap("王王王王王", 5) == ["王王", "王王", "王"]
    assert wrap("abcdefgh", 3) == ["abc", "def", "gh"]
    assert wrap("", 5) == [""]


def test_status_bar_shows_who_where_transport_users_rtt_state() -> None:
    """The toolbar: nick@room, TCP and the address, users in the room, rtt, connection state."""
    state = ClientState(nick="alice", room="lobby", users=["alice", "bob", "carol"], rtt=0.0123)
    bar = fragments_text(status_bar(state, "127.0.0.1:9009", "connected"))
    assert bar.strip() == "alice@lobby │ TCP 127.0.0.1:9009 │ 3 users │ rtt 12.3 ms │ connected"


def test_status_bar_udp_has_loss_counters() -> None:
    """Over UDP the toolbar adds lost/reordered/duplicate counts from the seq tracker."""
    state = ClientState(nick="bob", room="lobby", users=["bob"], transport="udp")
    for seq in (1, 3, 2, 2, 6):
        state.seq.add(seq)
    bar = fragments_text(status_bar(state, "h:1", "connected"))
    assert "1 user │" in bar and "rtt -" in bar
    assert bar.rstrip().endswith("lost 2 reordered 1 dup 1")


def test_status_bar_drops_rtt_then_address_when_narrow() -> None:
    """A narrow terminal loses the rtt first, then the address; nick, state and loss counters stay."""
    state = ClientState(nick="listener", room="lobby", users=["listener", "talker"], transport="udp", rtt=0.0005)
    state.seq.add(3)
    wide = fragments_text(status_bar(state, "127.0.0.1:42543", "connected", width=200))
    assert "UDP 127.0.0.1:42543 │" in wide and "rtt 0.5 ms" in wide
    medium = fragments_text(status_bar(state, "127.0.0.1:42543", "connected", width=len(wide) - 5))
    assert "UDP 127.0.0.1:42543 │" in medium and "rtt" not in medium and "lost 2" in medium
    narrow = fragments_text(status_bar(state, "127.0.0.1:42543", "connected", width=70))
    assert narrow.strip() == "listener@lobby │ UDP │ 2 users │ connected │ lost 2 reordered 0 dup 0"


@given(st.text(alphabet="ab 王c\u0301", max_size=80), st.integers(2, 30), st.integers(2, 30))
def test_wrap_property_rows_fit_and_nothing_but_break_spaces_is_lost(text: str, cells: int, later: int) -> None:
    """Every row fits its limit (the first `cells`, later ones `later`); only spaces at breaks disappear."""
    rows = wrap(text, cells, later)
    assert cell_width(rows[0]) <= cells
    assert all(cell_width(row) <= later for row in rows[1:])
    assert "".join(rows).replace(" ", "") == text.replace(" ", "")


def test_wrapped_rows_keep_their_indentation() -> None:
    """A wrapped indented row (a list, /help) continues at the same indentation."""
    rows = text_of(Line("info", "head\n   item one two three four five six", TS), width=40).splitlines()
    assert [row.split(" │ ", 1)[1] for row in rows] == ["head", "   item one two three", "   four five six"]


# --- display integrity: format characters and long zero-width runs (issue 15, issue 14) ---


@pytest.mark.parametrize(
    ("char", "escape"),
    [
        ("\u200b", "\\u200b"),  # zero-width space
        ("\u200c", "\\u200c"),  # zero-width non-joiner
        ("\u200d", "\\u200d"),  # zero-width joiner
        ("\u2060", "\\u2060"),  # word joiner
        ("\ufeff", "\\ufeff"),  # byte order mark / zero-width no-break space
        ("\u00ad", "\\xad"),  # soft hyphen
        ("\U000e0041", "\\U000e0041"),  # tag letter A
        ("\U000e0000", "\\U000e0000"),  # unassigned, but in the tag block
        ("\U000e007f", "\\U000e007f"),  # cancel tag
        ("\u202e", "\\u202e"),  # right-to-left override
        ("\u2066", "\\u2066"),  # left-to-right isolate
        ("\u200f", "\\u200f"),  # right-to-left mark
        ("\u061c", "\\u061c"),  # Arabic letter mark
    ],
)
def test_format_characters_are_visible_escapes(char: str, escape: str) -> None:
    """Every format character (category Cf, and the tag block) is shown as an escape in text and nick."""
    text = text_of(Line("message", f"te{char}acher", TS, f"ev{char}il"))
    assert f"te{escape}acher" in text and f"ev{escape}il" in text and char not in text


def test_hidden_text_in_tags_is_shown() -> None:
    """A line of tag characters (hidden ASCII) shows up instead of vanishing."""
    hidden = "".join(chr(0xE0000 + ord(letter)) for letter in "hi")
    assert sanitize(f"ok{hidden}") == "ok\\U000e0068\\U000e0069"


def test_long_run_of_one_zero_width_character_is_one_marker() -> None:
    """200 zero-width spaces become `⟨200 × U+200B⟩`, not 1,200 characters of escapes."""
    assert sanitize("a" + "\u200b" * 200 + "b") == "a⟨200 × U+200B⟩b"
    assert sanitize("e" + "\u0301" * COMPACT_RUN * 3) == f"e⟨{COMPACT_RUN * 3} × U+0301⟩"


def test_long_mixed_zero_width_run_is_one_marker() -> None:
    """A "Zalgo" pile of different combining and format characters is counted in one marker."""
    pile = "\u0301\u0302\u0303\u200b\u0304" * 10
    assert sanitize(f"z{pile}!") == "z⟨50 zero-width characters⟩!"


def test_short_combining_runs_are_kept() -> None:
    """Real scripts stack a few marks on a letter (Vietnamese ệ, Hindi कि): those stay as they are."""
    for word in ("Vie\u0323\u0302t", "\u0915\u093f", "a" + "\u0301" * COMPACT_RUN):
        assert sanitize(word) == word


def test_wrap_takes_linear_time_with_zero_width_characters() -> None:
    """Wrapping one letter and 1,999 combining marks costs about what 2,000 letters cost (ratio, not a clock)."""
    def best(text: str) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            wrap(text, 60)
            times.append(time.perf_counter() - start)
        return min(times)

    letters = best("a" * 2000)
    marks = best("a" + "\u0301" * 1999)
    assert marks < 5 * letters, (marks, letters)


def test_a_joiner_between_emoji_stays_and_elsewhere_is_escaped() -> None:
    """U+200D inside an emoji sequence is kept (the family shows as one); between letters it is an escape."""
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    rainbow = "\U0001f3f3\ufe0f\u200d\U0001f308"
    assert sanitize(family) == family
    assert sanitize(rainbow) == rainbow
    assert sanitize("te\u200dacher") == "te\\u200dacher"
    assert sanitize("\u200d\U0001f468") == "\\u200d\U0001f468"
