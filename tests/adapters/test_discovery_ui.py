"""The terminal UI's pick list for several discovered servers, headless: pipe input, dummy output."""

from __future__ import annotations

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chatclient import ui
from chatclient.discovery import FoundServer, parse_answer

DOWN, ENTER, CTRL_C = "\x1b[B", "\r", "\x03"


def servers() -> list[FoundServer]:
    found = [
        parse_answer({"type": "server_info", "id": str(n), "name": f"Room {n}", "tcp_port": 9009}, f"10.0.0.{n}")
        for n in (1, 2, 3)
    ]
    assert all(found)
    return found  # type: ignore[return-value]


def pick(keys: str) -> FoundServer | None:
    with create_pipe_input() as typed, create_app_session(input=typed, output=DummyOutput()):
        typed.send_text(keys)
        return ui.pick_server(servers())


@pytest.mark.parametrize(("keys", "chosen"), [(ENTER, "Room 1"), (DOWN + ENTER, "Room 2"), ("3" + ENTER, "Room 3")])
def test_pick_list_joins_the_server_chosen(keys: str, chosen: str) -> None:
    """Enter takes the highlighted server (the first at start); arrows and numbers move the highlight."""
    found = pick(keys)
    assert found is not None and found.name == chosen


@pytest.mark.parametrize("keys", ["q", CTRL_C])
def test_pick_list_q_or_ctrl_c_joins_nothing(keys: str) -> None:
    """q or Ctrl-C leaves the pick list without joining anything."""
    assert pick(keys) is None
