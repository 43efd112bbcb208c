"""Teacher controls in the terminal UI, headless: password prompt, operator commands, toolbar marks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chatclient.sessiontypes import Phase
from tests.support.client_fakes import FakeServer, PasswordServer, run, until
from tests.support.ui_harness import CTRL_C, ENTER, TAB, chat

PASSWORD = "class101"


def toolbar_text(ui: Any) -> str:
    return "".join(part for _, part in ui.toolbar())


def test_auth_failed_asks_for_the_password_blind_and_joins_on_a_new_connection() -> None:
    """Without a password the UI asks for one (typed as stars), then says hello again on a fresh connection."""
    server = PasswordServer(PASSWORD)

    async def scenario() -> None:
        async with chat(server, vt100=True) as h:
            await until(lambda: h.ui.asking == "password: ")
            h.keys.send_text("guess1" + ENTER)
            await until(lambda: len(server.of_type("hello")) == 2 and h.ui.asking == "password: ")
            h.keys.send_text(PASSWORD + ENTER)
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
            await until(lambda: "(wrong password)" in h.screen())
            assert "password: " not in h.screen()  # the question was erased ...
            assert PASSWORD not in h.written.getvalue() and "guess1" not in h.written.getvalue()  # ... and typed blind
            assert "The server did not let you in (wrong password)" in h.shown_text()

    run(scenario)
    assert [p.get("password") for p in server.of_type("hello")] == [None, "guess1", PASSWORD]
    assert len(server.connections) == 3  # the server closed after each refusal


def test_password_given_on_the_command_line_is_sent_in_hello() -> None:
    """chatclient --password: the first hello carries it and nothing is asked."""
    server = PasswordServer(PASSWORD)

    async def scenario() -> None:
        async with chat(server, password=PASSWORD) as h:
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
            assert h.ui.asking is None

    run(scenario)
    assert [p.get("password") for p in server.of_type("hello")] == [PASSWORD]


def test_ctrl_c_at_the_password_question_exits_1() -> None:
    """Giving up on the password question ends the client with exit code 1."""
    server = PasswordServer(PASSWORD)

    async def scenario() -> int:
        async with chat(server) as h:
            await until(lambda: h.ui.asking == "password: ")
            h.keys.send_text(CTRL_C)
            return await h.exit_code()

    assert run(scenario) == 1


def test_reconnect_reuses_the_password() -> None:
    """After a dropped connection the UI says hello again with the password it was given."""
    server = PasswordServer(PASSWORD)

    async def fast_sleep(seconds: float) -> None:
        return None

    async def scenario() -> None:
        async with chat(server, password=PASSWORD, sleep=fast_sleep) as h:
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
            server.current.drop()
            await until(lambda: len(server.of_type("hello")) == 2 and h.ui.session.phase is Phase.IN_ROOM)

    run(scenario)
    assert [p.get("password") for p in server.of_type("hello")] == [PASSWORD, PASSWORD]


def notice(event: str, **fields: Any) -> dict[str, Any]:
    return {"type": "notice", "text": f"text of {event}", "event": event, "ts": time.time(), **fields}


def test_toolbar_marks_operators_and_my_restrictions() -> None:
    """The toolbar lists the room's operators and says when I am an operator, muted, or the room is locked or slow."""
    server = FakeServer(users=("bob", "teacher"))

    async def scenario() -> None:
        async with chat(server) as h:
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
            assert "@" not in toolbar_text(h.ui).replace("alice@lobby", "")
            server.current.push(notice("op", nick="teacher", room="lobby"))
            await until(lambda: "│ @teacher │" in toolbar_text(h.ui))
            server.current.push(notice("mute", nick="alice", by="teacher", minutes=5))
            server.current.push(notice("lock", room="lobby", by="teacher"))
            server.current.push(notice("slow", room="lobby", by="teacher", seconds=10))
            # At 80 columns the operators' names make way for what applies to me; their count stays.
            await until(
                lambda: "alice@lobby │ muted 5 min │ room locked │ slow 10 s │ 1 op │ TCP" in toolbar_text(h.ui)
            )
            assert "alice muted you" not in h.shown_text()
            assert "teacher muted you for 5 minute(s). You can still read the chat" in h.shown_text()
            server.current.push(notice("unmute", nick="alice", by="teacher"))
            server.current.push(notice("unlock", room="lobby", by="teacher"))
            server.current.push(notice("op", nick="alice", room="lobby"))
            await until(lambda: "alice@lobby │ operator │ slow 10 s │ 2 ops │ TCP" in toolbar_text(h.ui))
            server.current.push(notice("slow", room="lobby", by="teacher", seconds=0))
            # The names make way for the server's address (kept after a reconnect too); their count stays.
            await until(lambda: "alice@lobby │ operator │ 2 ops │ TCP fake:9009 │" in toolbar_text(h.ui))

    run(scenario)


def test_operator_commands_are_sent_and_complete_nicks() -> None:
    """Operator commands go out as their payloads; Tab completes their nick argument; /topic is shown locally."""
    server = FakeServer(users=("bob", "carol"))

    async def scenario() -> None:
        async with chat(server) as h:
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
            await h.type("/mu")
            h.keys.send_text(TAB)
            await until(lambda: h.buffer == "/mute ")
            await h.type("ca")
            h.keys.send_text(TAB)
            await until(lambda: h.buffer == "/mute carol ")
            await h.type("5" + ENTER)
            await h.type("/kick bob too loud" + ENTER)
            await h.type("/lock" + ENTER)
            await until(lambda: server.of_type("lock"))
            await h.type("/topic" + ENTER)
            await until(lambda: "lobby has no topic" in h.shown_text())

    run(scenario)
    assert server.of_type("mute") == [{"type": "mute", "nick": "carol", "minutes": 5}]
    assert server.of_type("kick") == [{"type": "kick", "nick": "bob", "reason": "too loud"}]


def test_kicked_with_ban_is_explained_and_not_reconnected() -> None:
    """A ban is explained in plain words; the UI does not try to come back."""
    server = FakeServer()

    async def scenario() -> str:
        async with chat(server) as h:
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
            server.current.push(
                {
                    "type": "left",
                    "nick": "alice",
                    "room": "lobby",
                    "reason": "kicked",
                    "by": "teacher",
                    "ban": True,
                    "ts": time.time(),
                }
            )
            server.current.drop()
            await until(lambda: h.ui.session.phase is Phase.CLOSED)
            bar = toolbar_text(h.ui)
            assert "disconnected" in bar and "user" not in bar, bar  # the last count is no longer true
            return h.shown_text()

    shown = run(scenario)
    assert "teacher banned you from this server. You cannot join again until an operator lifts the ban." in shown
    assert "server restarts" not in shown
    assert len(server.connections) == 1


def test_a_password_wanted_on_reconnect_is_asked_while_chatting_and_the_typed_line_survives() -> None:
    """The server came back with --password: the prompt steps aside for the question, then comes back as it was."""
    server = PasswordServer(PASSWORD)

    async def fake_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    async def scenario() -> None:
        async with chat(server, vt100=True, password=PASSWORD, sleep=fake_sleep) as h:
            await h.prompt_ready()
            await h.type("half typ")
            server.password = "new-one"
            server.current.drop()
            await until(lambda: h.ui.asking == "password: ")
            assert "fake:9009 now needs a password" in h.shown_text()
            h.keys.send_text("new-one" + ENTER)
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM and "reconnected to" in h.shown_text())
            await until(lambda: h.ui.prompt_session.app.is_running and h.buffer == "half typ")
            h.keys.send_text("ed" + ENTER)
            await until(lambda: server.of_type("say"))
            assert "new-one" not in h.written.getvalue()

    run(scenario)
    assert [p.get("password") for p in server.of_type("hello")] == [PASSWORD, PASSWORD, "new-one"]
    assert server.of_type("say") == [{"type": "say", "text": "half typed"}]


def test_giving_up_at_the_reconnect_password_says_why_in_the_chat() -> None:
    """Ctrl-C at the question: the session ends, and the UI says why in a sentence (not just "disconnected")."""
    server = PasswordServer(PASSWORD)

    async def fake_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    async def scenario() -> str:
        async with chat(server, password=PASSWORD, sleep=fake_sleep) as h:
            await h.prompt_ready()
            server.password = "new-one"
            server.current.drop()
            await until(lambda: h.ui.asking == "password: ")
            h.keys.send_text(CTRL_C)
            await until(lambda: h.ui.session.phase is Phase.CLOSED and h.ui.prompt_session.app.is_running)
            await until(lambda: "disconnected: fake:9009 now needs a password" in h.shown_text())
            return toolbar_text(h.ui)

    assert "disconnected" in run(scenario)


def test_a_server_known_to_want_a_password_is_asked_for_it_before_the_first_hello() -> None:
    """Discovery said password_required: the question comes first, so no refusal is shown before it."""
    server = PasswordServer(PASSWORD)

    async def scenario() -> str:
        async with chat(server, password_first=True) as h:
            await until(lambda: h.ui.asking == "password: ")
            assert server.connections == []
            h.keys.send_text(PASSWORD + ENTER)
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
            return h.shown_text()

    shown = run(scenario)
    assert [p.get("password") for p in server.of_type("hello")] == [PASSWORD]
    assert "password" not in shown
