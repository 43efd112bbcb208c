"""The terminal UI, headless: pipe input, a dummy or in-memory VT100 output, a fake server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from chatclient import session as session_module
from chatclient.lines import Line
from chatclient.sessiontypes import Phase
from tests.support.client_fakes import FakeServer, run, until
from tests.support.ui_harness import CTRL_C, CTRL_D, ENTER, TAB, UP, chat


def test_typing_a_line_sends_say() -> None:
    """Enter sends what was typed as a `say`, and the line is not left on the screen as typed."""
    server = FakeServer()

    async def scenario() -> None:
        async with chat(server, vt100=True) as h:
            await h.type("hello world" + ENTER)
            await until(lambda: {"type": "say", "text": "hello world"} in server.sent)
            await until(lambda: h.ui.prompt_session.app.is_running and h.buffer == "")
            await until(lambda: "hello world" not in h.screen())  # the server's echo is what stays, not the typed line

    run(scenario)
    hello = {"type": "hello", "nick": "alice", "room": "lobby", "features": ["batch_joins"]}
    assert server.of_type("hello")[0] == hello


def test_slash_nick_sends_nick() -> None:
    """`/nick x` sends a `nick` payload; the slash command table parses it."""
    server = FakeServer()

    async def scenario() -> None:
        async with chat(server) as h:
            await h.type("/nick x" + ENTER)
            await until(lambda: server.of_type("nick"))

    run(scenario)
    assert server.of_type("nick") == [{"type": "nick", "nick": "x"}]


def test_tab_completes_nick_at_line_start_with_colon() -> None:
    """Tab at the start of a line completes a nick of the room and adds `: `."""
    server = FakeServer(users=("bob", "carol"))

    async def scenario() -> None:
        async with chat(server) as h:
            await h.type("ca")
            h.keys.send_text(TAB)
            await until(lambda: h.buffer == "carol: ")
            await h.type("hi" + ENTER)
            await until(lambda: server.of_type("say"))

    run(scenario)
    assert server.of_type("say") == [{"type": "say", "text": "carol: hi"}]


def test_tab_completes_command_and_room_and_nick_inside_line() -> None:
    """Tab completes a slash command, a room after /join, and a nick later in a line (no colon)."""
    server = FakeServer(users=("bob",), rooms=("lobby", "physics"))

    async def scenario() -> None:
        async with chat(server) as h:
            await until(lambda: "physics" in h.ui.state.rooms)  # learnt quietly after welcome
            await h.type("/jo")
            h.keys.send_text(TAB)
            await until(lambda: h.buffer == "/join ")
            await h.type("ph")
            h.keys.send_text(TAB)
            await until(lambda: h.buffer == "/join physics")
            h.keys.send_text("\x15")  # Ctrl-U clears the line
            await until(lambda: h.buffer == "")
            await h.type("thanks b")
            h.keys.send_text(TAB)
            await until(lambda: h.buffer == "thanks bob")
            h.keys.send_text("\x15/msg b")
            await until(lambda: h.buffer == "/msg b")
            h.keys.send_text(TAB)
            await until(lambda: h.buffer == "/msg bob ")

    run(scenario)
    assert not server.of_type("join")  # completing never sent anything
    assert len(server.of_type("rooms")) == 1  # the one quiet request after welcome


def test_incoming_message_leaves_half_typed_line_intact() -> None:
    """A message arriving while half a line is typed is printed above it; the line survives."""
    server = FakeServer()

    async def scenario() -> None:
        async with chat(server, vt100=True) as h:
            await h.type("half a li")
            server.current.push(
                {
                    "type": "message",
                    "id": 1,
                    "room": "lobby",
                    "from": "bob",
                    "text": "interrupting you",
                    "ts": time.time(),
                }
            )
            await until(lambda: "interrupting you" in h.screen())
            assert h.buffer == "half a li"
            assert "[lobby] half a li" in h.screen()
            await h.type("ne" + ENTER)
            await until(lambda: server.of_type("say"))

    run(scenario)
    assert server.of_type("say") == [{"type": "say", "text": "half a line"}]


def test_escape_sequences_in_incoming_text_are_neutralised() -> None:
    """ESC, 8-bit CSI, BEL, backspace, CR and bidi controls from the network never reach the terminal raw."""
    server = FakeServer()
    evil_text = "A\x1b[2J\x9b31mB\x07C\x08D\rE\u202eF"
    evil_nick = "mal\x1b]0;owned\x07"

    async def scenario() -> str:
        async with chat(server, vt100=True) as h:
            await h.prompt_ready()
            h.written.seek(0)
            h.written.truncate()
            server.current.push(
                {"type": "message", "id": 1, "room": "lobby", "from": evil_nick, "text": evil_text, "ts": time.time()}
            )
            await until(lambda: "\\x1b[2J" in h.written.getvalue())
            written = h.written.getvalue()
            for raw in ("\x1b[2J", "\x9b", "\x07", "\x08", "D\rE", "\u202e", "\x1b]0;"):
                assert raw not in written, repr(raw)
            return h.screen()

    screen = run(scenario)
    assert "A\\x1b[2J\\x9b31mB\\x07C\\x08D\\x0dE\\u202eF" in screen
    assert "mal\\x1b]0;owned\\x07" in screen


def test_mention_rings_our_bell_once_and_network_bel_never() -> None:
    """A message naming us rings one BEL written by the client; a BEL in text is shown, not rung."""
    server = FakeServer()

    async def scenario() -> None:
        async with chat(server, vt100=True) as h:
            await h.prompt_ready()
            h.written.seek(0)
            h.written.truncate()
            server.current.push(
                {"type": "message", "id": 1, "room": "lobby", "from": "bob", "text": "ding\x07 dong", "ts": time.time()}
            )
            await until(lambda: "dong" in h.written.getvalue())
            assert "\a" not in h.written.getvalue()
            server.current.push(
                {"type": "message", "id": 2, "room": "lobby", "from": "bob", "text": "alice: look", "ts": time.time()}
            )
            await until(lambda: "look" in h.written.getvalue())
            assert h.written.getvalue().count("\a") == 1

    run(scenario)


def test_history_in_welcome_does_not_ring() -> None:
    """Old messages that mention us, replayed in `welcome`, are highlighted but silent."""
    server = FakeServer()
    server.history = [
        {"type": "message", "id": 1, "room": "lobby", "from": "bob", "text": "where is alice?", "ts": time.time()}
    ]

    async def scenario() -> None:
        async with chat(server, vt100=True) as h:
            await until(lambda: "where is alice?" in h.written.getvalue())
            assert "\a" not in h.written.getvalue()

    run(scenario)


def test_no_colour_writes_no_colour_codes() -> None:
    """With colour off (--no-color / NO_COLOR) the output has no colour escapes, only attributes."""

    def colours_written(colour: bool) -> str:
        server = FakeServer()

        async def scenario() -> str:
            async with chat(server, vt100=True, colour=colour) as h:
                server.current.push(
                    {"type": "message", "id": 1, "room": "lobby", "from": "bob", "text": "colourful", "ts": time.time()}
                )
                await until(lambda: "colourful" in h.written.getvalue())
                return h.written.getvalue()

        written: str = run(scenario)
        return written

    import re

    colour_code = re.compile(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;5;\d+|4[0-7]|10[0-7]|48;5;\d+)[;m]")
    assert colour_code.search(colours_written(True))
    assert not colour_code.search(colours_written(False))


def test_rooms_typed_by_hand_is_shown_even_if_the_quiet_answer_was_lost() -> None:
    """The automatic `rooms` (for completion) is not printed, but /rooms typed by the user always is."""
    server = FakeServer(transport="udp")
    answer = server.answer

    def first_rooms_lost(connection: Any, payload: dict[str, Any]) -> None:
        if payload.get("type") == "rooms" and len(server.of_type("rooms")) == 1:
            return  # the automatic request after welcome is lost, as a datagram can be
        answer(connection, payload)

    server.answer = first_rooms_lost  # type: ignore[method-assign]

    async def scenario() -> str:
        async with chat(server) as h:
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM and len(server.of_type("rooms")) == 1)
            await h.type("/rooms" + ENTER)
            await until(lambda: "rooms: lobby (1), physics (1)" in h.shown_text())
            return h.shown_text()

    assert run(scenario).count("rooms: ") == 1


def test_up_recalls_previous_line() -> None:
    """Up arrow brings back the previous input line."""
    server = FakeServer()

    async def scenario() -> None:
        async with chat(server) as h:
            await h.type("first" + ENTER)
            await until(lambda: server.of_type("say"))
            h.keys.send_text(UP)
            await until(lambda: h.buffer == "first")

    run(scenario)


def test_long_paste_asks_before_sending_one_message_per_line() -> None:
    """A bracketed paste of more than 5 lines asks first; `y` sends one `say` per line."""
    server = FakeServer()
    pasted = "\n".join(f"line {n}" for n in range(1, 8))

    async def scenario() -> None:
        async with chat(server) as h:
            h.keys.send_text(f"\x1b[200~{pasted}\x1b[201~")
            await until(lambda: h.buffer == pasted)
            h.keys.send_text(ENTER)
            await until(lambda: h.ui.asking and "7 pasted lines" in h.ui.asking)
            assert not server.of_type("say")  # nothing before the answer
            h.keys.send_text("y" + ENTER)
            await until(lambda: len(server.of_type("say")) == 7)

    run(scenario)
    assert [p["text"] for p in server.of_type("say")] == [f"line {n}" for n in range(1, 8)]


def test_long_paste_refused_sends_nothing_short_paste_needs_no_question() -> None:
    """Answering no to the paste question sends nothing; 3 pasted lines go out at once as 3 messages."""
    server = FakeServer()

    async def scenario() -> None:
        async with chat(server) as h:
            h.keys.send_text("\x1b[200~" + "\n".join("abcdefgh") + "\x1b[201~" + ENTER)
            await until(lambda: h.ui.asking and "8 pasted lines" in h.ui.asking)
            h.keys.send_text("n" + ENTER)
            await until(lambda: h.ui.asking is None and h.ui.prompt_session.app.is_running)
            h.keys.send_text("\x1b[200~/quit\nb\nc\x1b[201~" + ENTER)
            await until(lambda: len(server.of_type("say")) == 3)

    run(scenario)
    assert [p["text"] for p in server.of_type("say")] == ["/quit", "b", "c"]  # pasted text is said, never run


@pytest.mark.parametrize("keys", ["/quit" + ENTER, CTRL_D, "half" + CTRL_C], ids=["quit", "ctrl-d", "ctrl-c"])
def test_quit_ctrl_d_and_ctrl_c_say_bye(keys: str) -> None:
    """/quit, Ctrl-D on an empty line and Ctrl-C each send `bye` and exit 0."""
    server = FakeServer()

    async def scenario() -> int:
        async with chat(server) as h:
            await h.prompt_ready()
            h.keys.send_text(keys)
            return await h.exit_code()

    assert run(scenario) == 0
    assert server.sent[-1] == {"type": "bye"}


@pytest.mark.parametrize(("typed", "expected"), [("", "login"), ("zoe", "zoe")], ids=["default", "typed"])
def test_asks_for_nick_with_login_name_as_default(typed: str, expected: str) -> None:
    """With no --nick the UI asks; Enter accepts the login name, and a typed nick replaces it (not appended)."""
    server = FakeServer()

    async def scenario() -> None:
        async with chat(server, nick=None) as h:
            h.keys.send_text(typed + ENTER)
            await until(lambda: server.of_type("hello"))

    run(scenario)
    assert server.of_type("hello")[0]["nick"] == expected


def test_taken_nick_at_start_is_asked_again() -> None:
    """A nick taken at start-up is asked for again, `nick_2` offered."""
    server = FakeServer()
    server.taken = {"alice"}

    async def scenario() -> None:
        async with chat(server) as h:
            await until(lambda: len(server.of_type("hello")) == 1)
            h.keys.send_text(ENTER)
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)

    run(scenario)
    assert [p["nick"] for p in server.of_type("hello")] == ["alice", "alice_2"]


def test_reconnects_with_backoff_then_hello_with_same_nick_and_room() -> None:
    """A dropped TCP connection is retried after 1, 2, 4 s; then hello again with the same nick and room."""
    server = FakeServer()
    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)
        await asyncio.sleep(0)

    async def scenario() -> None:
        async with chat(server, sleep=fake_sleep) as h:
            await h.type("/join physics" + ENTER)
            await until(lambda: server.of_type("join"))
            server.current.push(
                {"type": "welcome", "nick": "alice", "room": "physics", "users": ["alice"], "history": []}
            )
            await until(lambda: h.ui.state.room == "physics")
            server.refuse = 2
            server.current.drop()
            await until(lambda: len(server.connections) == 2 and h.ui.session.phase is Phase.IN_ROOM)
            assert "connection to fake:9009 lost" in h.shown_text()
            assert "reconnected to fake:9009" in h.shown_text()

    run(scenario)
    assert waited[:3] == [1, 2, 4]
    hello = {"type": "hello", "nick": "alice", "room": "physics", "features": ["batch_joins"]}
    assert server.of_type("hello")[-1] == hello


def test_reconnect_takes_nick_2_when_nick_was_taken() -> None:
    """If our nick is still taken after a wait of NICK_GRACE (chatclient.reconnect), the reconnect uses
    nick_2 and says so."""
    server = FakeServer()

    async def fake_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    async def scenario() -> str:
        async with chat(server, sleep=fake_sleep) as h:
            server.taken = {"alice"}
            server.current.drop()
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM and h.ui.state.nick == "alice_2")
            assert "".join(part for _, part in h.ui.toolbar()).startswith(" alice_2@lobby │")
            return h.shown_text()

    shown = run(scenario)
    # Asked at start, then after waits of 1 s (taken), 2 s (taken) and 4 s (taken, 6 s since the first): nick_2.
    assert [p["nick"] for p in server.of_type("hello")] == ["alice", "alice", "alice", "alice", "alice_2"]
    assert "alice was taken while you were away: you are alice_2 now" in shown


def test_ctrl_c_while_reconnecting_exits_at_once() -> None:
    """Ctrl-C during the reconnect wait leaves without waiting for the backoff to end."""
    server = FakeServer()

    async def scenario() -> int:
        async with chat(server) as h:
            server.refuse = 100
            server.current.drop()
            await until(lambda: h.ui.session.phase is Phase.RECONNECTING)
            h.keys.send_text(CTRL_C)
            return await h.exit_code()

    assert run(scenario) == 0
    assert len(server.connections) == 1


def test_no_reconnect_after_being_kicked() -> None:
    """A client that was kicked does not come straight back; it says it is disconnected."""
    server = FakeServer()

    async def fake_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    async def scenario() -> str:
        async with chat(server, sleep=fake_sleep) as h:
            server.current.push(
                {"type": "left", "nick": "alice", "room": "lobby", "reason": "kicked", "ts": time.time()}
            )
            server.current.drop()
            await until(lambda: h.ui.session.phase is Phase.CLOSED)
            assert "disconnected" in "".join(part for _, part in h.ui.toolbar())
            return h.shown_text()

    shown = run(scenario)
    assert len(server.connections) == 1
    assert "kicked you out of the chat" in shown


def test_a_bug_in_the_receive_task_ends_the_ui_visibly() -> None:
    """An unexpected exception while handling a payload ends the prompt with that error instead of hanging."""
    server = FakeServer()

    async def scenario() -> None:
        async with chat(server) as h:
            await h.prompt_ready()

            def broken(payload: dict[str, Any], now: float | None = None) -> list[Line]:
                raise RuntimeError("boom")

            h.ui.state.apply = broken  # type: ignore[method-assign]
            server.current.push({"type": "notice", "text": "x"})
            with pytest.raises(RuntimeError, match="boom"):
                await h.exit_code()

    run(scenario)


def test_toolbar_shows_reconnect_countdown() -> None:
    """While waiting to reconnect, the toolbar says so with the seconds left and the try number."""
    server = FakeServer()

    async def scenario() -> None:
        gate = asyncio.Event()

        async def held_sleep(seconds: float) -> None:
            await gate.wait()

        async with chat(server, sleep=held_sleep) as h:
            server.current.drop()
            await until(lambda: h.ui.session.phase is Phase.RECONNECTING)
            text = "".join(part for _, part in h.ui.toolbar())
            assert "reconnecting in 1 s (try 1)" in text and "alice@lobby" in text
            gate.set()
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)

    run(scenario)


def test_udp_server_silent_for_peer_timeout_shows_lost_then_back() -> None:
    """Over UDP a server silent for peer_timeout is shown as lost; when it answers again, connected."""
    server = FakeServer(transport="udp")
    server.peer_timeout = 0.3

    async def scenario() -> str:
        async with chat(server, ping_every=5.0) as h:
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
            assert abs(h.ui.session.ping_interval() - 0.1) < 1e-9  # peer_timeout / 3 (docs/protocol.md §2)
            server.silent = True
            await until(lambda: h.ui.session.phase is Phase.LOST)
            assert "server lost" in "".join(part for _, part in h.ui.toolbar())
            server.silent = False
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
            return h.shown_text()

    shown = run(scenario)
    assert "no answer from fake:9009 for 0.3 s: server lost" in shown
    assert "the server answers again" in shown


def test_udp_session_ended_by_transport_joins_again() -> None:
    """When the UDP transport ends the session (the server forgot us), a fresh one says hello again."""
    server = FakeServer(transport="udp")

    async def fake_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    async def scenario() -> None:
        async with chat(server, sleep=fake_sleep) as h:
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
            server.current.drop()
            await until(lambda: len(server.connections) == 2 and h.ui.session.phase is Phase.IN_ROOM)

    run(scenario)
    assert [p["nick"] for p in server.of_type("hello")] == ["alice", "alice"]


def test_udp_join_is_asked_again_when_its_welcome_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over UDP, /join is sent again after a while without a welcome for that room; TCP sends it once."""
    monkeypatch.setattr(session_module, "UDP_JOIN_WAIT", 0.05)
    for transport, expected in (("udp", 2), ("tcp", 1)):
        server = FakeServer(transport=transport)

        async def scenario(server: FakeServer = server) -> None:
            async with chat(server) as h:
                await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
                await h.type("/join physics" + ENTER)  # the fake never answers join: as if the welcome was lost
                await until(
                    lambda: (
                        len(server.of_type("join")) == 2 if server.transport_name == "udp" else server.of_type("join")
                    )
                )
                if server.transport_name == "udp":
                    server.current.push(
                        {"type": "welcome", "nick": "alice", "room": "physics", "users": ["alice"], "history": []}
                    )
                    await until(lambda: h.ui.state.room == "physics")
                await asyncio.sleep(0.3)  # several retry periods: no further tries once there (or ever, over TCP)

        run(scenario)
        assert server.of_type("join") == [{"type": "join", "room": "physics"}] * expected, transport


def test_udp_toolbar_shows_live_loss_counters() -> None:
    """A UDP client's toolbar counts lost, reordered and duplicate server payloads as they happen."""
    server = FakeServer(transport="udp")

    async def scenario() -> None:
        async with chat(server) as h:
            await until(lambda: h.ui.session.phase is Phase.IN_ROOM)
            connection = server.current
            await until(
                lambda: connection.seq >= 3 and h.ui.state.seq.highest == connection.seq
            )  # welcome, rooms, pong
            base = connection.seq
            # base+1 and +2 skipped; +1 arrives late (reordered), again (duplicate); +4 skipped: 2 still lost
            for seq in (base + 3, base + 1, base + 1, base + 5):
                connection.incoming.put_nowait(
                    {
                        "type": "message",
                        "id": seq,
                        "room": "lobby",
                        "from": "bob",
                        "text": f"m{seq}",
                        "ts": time.time(),
                        "seq": seq,
                    }
                )
            await until(lambda: h.ui.state.seq.highest == base + 5)
            bar = "".join(part for _, part in h.ui.toolbar())
            assert " │ UDP" in bar
            assert "lost 2 reordered 1 dup 1" in bar

    run(scenario)


def test_ping_every_interval_measures_rtt() -> None:
    """The client pings on its own and the toolbar shows the round trip."""
    server = FakeServer()

    async def scenario() -> None:
        async with chat(server, ping_every=0.05) as h:
            await until(lambda: h.ui.state.rtt is not None)
            assert "rtt " in "".join(part for _, part in h.ui.toolbar()) and " ms" in "".join(
                part for _, part in h.ui.toolbar()
            )

    run(scenario)
    assert all(p["id"] == "rtt" and isinstance(p["t"], float) for p in server.of_type("ping"))


def test_raw_escape_sequences_typed_as_keys_never_stop_the_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    """Malformed mouse reports and other stray escape sequences are ignored; the next line is still sent."""
    import random

    server = FakeServer()
    typed = ["\x1b[M", "\x1b[M!!", "\x1b[<M", "\x1b[<;;M", "\x1b[<a;b;cM", "\x1b[<0;0;0;0M", "\x1b[12;4R", "\x1b[R"]
    chance = random.Random(16)
    typed += ["".join(chance.choice("\x1b[<;M0123456789~Rm") for _ in range(12)) for _ in range(30)]

    async def scenario() -> None:
        async with chat(server) as h:
            await h.prompt_ready()
            for keys in typed:
                h.keys.send_text(keys)
                await asyncio.sleep(0.01)
                assert h.ui.prompt_session.app.is_running
            h.keys.send_text("\x15still here" + ENTER)  # Ctrl-U clears whatever the junk left in the line
            await until(lambda: server.of_type("say"), 3)

    run(scenario)
    assert server.of_type("say") == [{"type": "say", "text": "still here"}]
    assert "Unhandled exception" not in capsys.readouterr().out
