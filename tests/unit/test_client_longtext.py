"""Splitting a text over the server's limit (chatclient.longtext): at white space, in order, nothing lost."""

from __future__ import annotations

import pytest

from chatclient.longtext import split_text
from lanchat.protocol import MAX_TEXT


def joined_words(parts: list[str]) -> list[str]:
    return " ".join(parts).split()


def test_a_text_that_fits_is_one_message_and_a_blank_one_none() -> None:
    assert split_text("  hello  ") == ["hello"]
    assert split_text("x" * MAX_TEXT) == ["x" * MAX_TEXT]
    assert split_text(" \n ") == []


def test_a_long_text_is_cut_at_white_space_in_order() -> None:
    """4,500 characters of words: three parts, each within the limit, no word cut, every word kept in order."""
    text = " ".join(f"w{number:04d}" for number in range(750)) + "!"
    assert len(text) == 4500
    parts = split_text(text)
    assert len(parts) == 3
    assert all(1 <= len(part) <= MAX_TEXT and part == part.strip() for part in parts)
    assert joined_words(parts) == text.split()


def test_line_breaks_and_wide_spaces_are_cut_points_too() -> None:
    text = "第一行" * 600 + "\n" + "第二行" * 600  # 1,800 + 1 + 1,800 characters, no ASCII space
    assert split_text(text) == ["第一行" * 600, "第二行" * 600]


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    parts = split_text("a" * 4500)
    assert [len(part) for part in parts] == [2000, 2000, 500]


@pytest.mark.parametrize(
    "cluster",
    [
        "e\u0301",  # e and a combining acute accent
        "\U0001f44d\U0001f3fd",  # thumbs up, medium skin tone
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family: three emoji joined by ZWJ
        "\U0001f1e8\U0001f1ed",  # a flag: two regional indicators
        "\u2764\ufe0f",  # a heart with the emoji variation selector
    ],
)
def test_a_hard_cut_never_splits_what_shows_as_one_character(cluster: str) -> None:
    """Clusters laid across the limit at every offset: each part is whole clusters only."""
    for offset in range(len(cluster) + 1):
        text = "a" * (MAX_TEXT - offset) + cluster * 3
        parts = split_text(text)
        assert "".join(parts) == text
        assert all(len(part) <= MAX_TEXT for part in parts)
        assert parts[1].startswith(cluster) or parts[1].startswith("a"), (offset, parts[1][:8])
