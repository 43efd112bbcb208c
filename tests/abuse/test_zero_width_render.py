"""Attack: messages of zero-width characters that freeze every terminal client (issue 14, item 8).

The client measured a row's width again for every character while wrapping,
so 2,000 zero-width characters took 20 times as long to render as 2,000
letters; a few such messages a second used more than a core in every client
of the room. The rendering is now linear, and long zero-width runs are shown
as one marker. Times are compared with each other, never with a clock limit.
"""

from __future__ import annotations

import time

import pytest

from chatclient.lines import Line
from chatclient.render import fragments

LENGTH = 2000  # the longest message text the server accepts (docs/protocol.md §6)
FACTOR = 4  # generous: the old code measured 20 on the same machine


def render_time(text: str) -> float:
    """The best of a few renders of one message at 80 columns (the best is least disturbed by other load)."""
    times = []
    for _ in range(7):
        start = time.perf_counter()
        fragments(Line("message", text, 0.0, "mallory"), True, 80)
        times.append(time.perf_counter() - start)
    return min(times)


@pytest.mark.parametrize("char", ["\u200b", "\u0301", "\ufeff", "\U000e0041"])
def test_zero_width_message_renders_within_a_small_factor_of_ascii(char: str) -> None:
    """2,000 zero-width characters render in at most a few times what 2,000 ASCII letters take."""
    ascii_time = render_time("a" * LENGTH)
    attack_time = render_time("a" + char * (LENGTH - 1))
    assert attack_time < FACTOR * ascii_time, (attack_time, ascii_time)


def test_zero_width_message_is_shown_compactly() -> None:
    """The 2,000 invisible characters are one short, visible marker on one row."""
    text = "".join(part for _, part in fragments(Line("message", "\u200b" * LENGTH, 0.0, "mallory"), True, 80))
    assert "⟨2000 × U+200B⟩" in text and "\u200b" not in text and text.count("\n") == 1
