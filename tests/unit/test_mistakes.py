"""Which framing mistakes reach the teacher's console, and how their bytes are shown."""

from __future__ import annotations

from chatsrv import mistakes
from chatsrv.mistakes import BURST, MistakeLog, excerpt, left_out_note, one_line


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_few_lines_per_host_per_interval_then_the_count_left_out() -> None:
    """The first BURST mistakes are shown, later ones in the interval are counted, the next one says how many."""
    clock = FakeClock()
    log = MistakeLog(interval=10, clock=clock)
    assert [log.report("10.0.0.5") for _ in range(BURST)] == [0] * BURST
    assert log.report("10.0.0.5") is None
    assert log.report("10.0.0.5") is None
    assert log.report("10.0.0.6") == 0
    clock.now += 10
    assert log.report("10.0.0.5") == 2
    assert left_out_note(2) == " (and 2 more from this address since the last line)"
    assert left_out_note(0) == ""


def test_the_table_of_addresses_is_bounded(monkeypatch: object) -> None:
    """A flood of source addresses cannot grow the table past its limit; old entries make room."""
    clock = FakeClock()
    log = MistakeLog(interval=10, clock=clock)
    for number in range(mistakes.MAX_ADDRESSES):
        assert log.report(number) == 0
    assert log.report("one too many") is None
    assert len(log._last) == mistakes.MAX_ADDRESSES
    clock.now += 10
    assert log.report("one too many") == 0
    assert len(log._last) == 1


def test_excerpt_is_printable_and_cut() -> None:
    """Bytes as Python shows them (ASCII stays, the rest becomes escapes); a long datagram is cut."""
    assert excerpt(b"hello") == "b'hello' (5 bytes)"
    assert excerpt(b'"\x00\x00\x00{') == "b'\"\\x00\\x00\\x00{' (5 bytes)"
    assert excerpt(b"\x1b[2J\xff") == "b'\\x1b[2J\\xff' (5 bytes)"
    assert excerpt(b"x" * 100, limit=4) == "b'xxxx'… (100 bytes)"
    assert excerpt("\u202e".encode()).isprintable()


def test_one_line_keeps_an_explanation_on_one_printable_line() -> None:
    """A multi-line explanation becomes one line; a control character in it becomes an escape."""
    assert one_line("frame of 553648128 bytes:\n  looks byte-swapped\t(33)") == (
        "frame of 553648128 bytes: looks byte-swapped (33)"
    )
    assert one_line("bad \x1b[2J header \u202e") == "bad \\x1b[2J header \\u202e"
