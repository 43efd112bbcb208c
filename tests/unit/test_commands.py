"""Slash commands: what Tab offers, from the one command table."""

from __future__ import annotations

from chatclient.commands import complete, help_lines


def test_complete_commands_nicks_and_rooms() -> None:
    """Tab suggestions: commands with their help, a nick (with `: ` first in a line), a room after /join."""
    nicks, rooms = ["bob", "Bea", "carol"], ["lobby", "physics"]
    assert [(s.text, s.replaces, s.meta) for s in complete("/jo", nicks, rooms)] == [
        ("/join ", 3, "go to another room (created if new)")
    ]
    assert [s.text for s in complete("b", nicks, rooms)] == ["bob: ", "Bea: "]
    assert [(s.text, s.replaces) for s in complete("thanks B", nicks, rooms)] == [("bob", 1), ("Bea", 1)]
    assert [s.text for s in complete("/join ph", nicks, rooms)] == ["physics"]
    assert [s.text for s in complete("/msg ca", nicks, rooms)] == ["carol "]
    assert complete("/msg carol hi b", nicks, rooms) == []  # only a command's first argument
    assert complete("/nick b", nicks, rooms) == []  # /nick takes a new name, not someone's
    assert complete("/nosuch b", nicks, rooms) == []


def test_help_says_a_ban_lasts_until_unban() -> None:
    # Bans are kept across restarts (docs/protocol.md §9), so help must not promise they end with one.
    ban = [line for line in help_lines() if "/ban" in line]
    assert ban and "until /unban" in ban[0]
    assert not any("server restarts" in line for line in help_lines())
