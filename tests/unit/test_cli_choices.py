"""The chatclient command's pure choices: colour or not, the terminal UI or line mode."""

from __future__ import annotations

import io

from chatclient.cli import wants_colour, wants_terminal_ui


def test_colour_choice_follows_flag_and_no_color() -> None:
    """--no-color or a non-empty NO_COLOR turns colour off."""
    assert wants_colour(False, {})
    assert not wants_colour(True, {})
    assert not wants_colour(False, {"NO_COLOR": "1"})
    assert wants_colour(False, {"NO_COLOR": ""})


def test_terminal_ui_only_for_terminals_and_not_with_plain() -> None:
    """Pipes get line mode; so does --plain in a terminal."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wants_terminal_ui(False, Tty(), Tty())
    assert not wants_terminal_ui(True, Tty(), Tty())
    assert not wants_terminal_ui(False, io.StringIO(), Tty())
    assert not wants_terminal_ui(False, Tty(), io.StringIO())
