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


def test_help_is_in_plain_words() -> None:
    """No Python leftovers in --help: no None, no tuple reprs, no "(...) (default: ...)" pile-up."""
    from chatclient.cli import build_parser
    from lanchat.cliargs import Parser

    text = build_parser().format_help()
    assert "None" not in text and "(default: (" not in text and ") (default" not in text
    assert "server port (default: 9009; discovery asks this UDP port)" in " ".join(text.split())
    shared = Parser(prog="x")
    shared.add_argument("--transports", default=("tcp", "udp"), help="which transports to run")
    assert "which transports to run (default: tcp, udp)" in " ".join(shared.format_help().split())
