"""The text door as nc users met it in a lesson (issue 16 follow-up): a goodbye on /quit, a wrong password retried."""

from __future__ import annotations

from tests.conftest import ServerFactory
from tests.integration.test_text_door import TextClient


def test_quit_says_goodbye_then_hangs_up(make_server: ServerFactory) -> None:
    """nc shows nothing when a connection just ends: /quit gets a goodbye line, then the server closes."""
    server = make_server("--rate", "0", "--text-port", "0")
    assert server.text is not None
    nc = TextClient(server.text.port)
    try:
        nc.line("alice")
        nc.expect("you are alice")
        nc.line("/quit")
        assert nc.expect("* bye").startswith("* bye: you left the chat")
        nc.wait_closed()
    finally:
        nc.close()


def test_a_wrong_password_is_said_and_can_be_typed_again(make_server: ServerFactory) -> None:
    """A wrong /password is answered at once and the connection stays; the right one then lets the nick in."""
    server = make_server("--rate", "0", "--text-port", "0", "--password", "letmein")
    assert server.text is not None
    nc = TextClient(server.text.port)
    try:
        nc.line("/password nope")
        assert nc.expect("! ") == "! wrong password: type /password SECRET again"
        nc.line("alice")
        assert nc.expect("! ") == "! this server needs a password: type /password SECRET, then your nick"
        nc.line("/password letmein")
        nc.expect("* password accepted")
        nc.line("alice")
        nc.expect("you are alice in lobby")
    finally:
        nc.close()


def test_wrong_passwords_at_the_door_are_slowed_down_like_any_other(make_server: ServerFactory) -> None:
    """The door counts each wrong /password as a guess: after the three free tries the address must wait."""
    server = make_server("--rate", "0", "--text-port", "0", "--password", "letmein")
    assert server.text is not None
    nc = TextClient(server.text.port)
    try:
        for guess in ("a", "b", "c"):
            nc.line(f"/password {guess}")
            nc.expect("! wrong password")
        nc.line("/password letmein")  # right, but within the wait: not even looked at
        assert "too many wrong passwords" in nc.expect("! ")
    finally:
        nc.close()
