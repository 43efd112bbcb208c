"""`chatsrv --help` and `chatlab --help` in plain words, as chatclient's (tests/unit/test_cli_choices.py)."""

from __future__ import annotations

import re

import pytest

from chatsrv.app import teacher_lines
from chatsrv.options import build_parser as server_parser
from lanchat_lab.cli import build_parser as lab_parser


@pytest.mark.parametrize("build", [server_parser, lab_parser], ids=["chatsrv", "chatlab"])
def test_help_has_no_python_leftovers(build: object) -> None:
    """No `None`, no tuple reprs, no "(...) (default: ...)" pile-up."""
    assert callable(build)
    text = " ".join(build().format_help().split())
    assert not re.search(r"\bNone\b", text), text
    assert "(default: (" not in text and ") (default" not in text


def test_the_server_says_what_an_unset_udp_port_and_seed_mean() -> None:
    text = " ".join(server_parser().format_help().split())
    assert "UDP port (default: the same number as the TCP port)" in text
    assert "(default: a new one, printed at start)" in text


def test_the_password_line_tells_nc_users_too_when_the_text_door_is_on() -> None:
    """nc users at the text door give the password with /password, not with chatclient's flag."""
    door = "(at the text door: /password SECRET, then your nick)"
    with_door = server_parser().parse_args(["--password", "pw", "--text-port", "0"])
    without = server_parser().parse_args(["--password", "pw"])
    assert any(line.endswith(door) for line in teacher_lines(with_door))
    assert not any(door in line for line in teacher_lines(without))
