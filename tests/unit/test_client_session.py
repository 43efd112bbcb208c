"""The client session without a face: a fake server behind the Transport interface, a recording listener."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chatclient.session import ChatSession
from chatclient.sessiontypes import INTERACTIVE, SCRIPTED, Habits, Phase, backoff_delays
from tests.support.client_fakes import FakeServer, PasswordServer, RecordingListener, run, until

QUIET = Habits(ping_every=None)  # INTERACTIVE without pings: the tests count what was sent


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def make(server: FakeServer, listener: RecordingListener, habits: Habits = QUIET, **options: Any) -> ChatSession:
    options.setdefault("sleep", no_wait)
    return ChatSession(server.connect, "alice", "lobby", "fake:9009", listener, habits=habits, **options)


def test_backoff_doubles_to_thirty_seconds() -> None:
    """Reconnect waits 1, 2, 4 ... seconds, never more than 30."""
    delays = backoff_delays()
    assert [next(delays) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_join_goes_through_the_phases_and_learns_the_rooms_quietly() -> None:
    """start(): CONNECTING, JOINING, IN_ROOM; the welcome is shown, the automatic room list is not."""
    server = FakeServer()
    listener = RecordingListener()
    seen: list[Phase] = []

    async def scenario() -> None:
        session = make(server, listener)
        changed = listener.changed

        def record_phase() -> None:
            if not seen or seen[-1] is not session.phase:
                seen.append(session.phase)
            changed()

        listener.changed = record_phase  # type: ignore[method-assign]
        assert session.phase is Phase.CONNECTING and not session.in_session
        assert await session.start()
        assert session.in_session and session.status() == ("connected", "ok")
        await until(lambda: "physics" in session.state.rooms)
        await session.quit()

    run(scenario)
    assert seen == [Phase.CONNECTING, Phase.JOINING, Phase.IN_ROOM, Phase.CLOSING, Phase.CLOSED]
    assert server.of_type("hello") == [{"type": "hello", "nick": "alice", "room": "lobby", "features": ["batch_joins"]}]
    assert "you are alice in lobby on fake" in listener.text()
    assert "rooms:" not in listener.text()


def test_a_typed_rooms_is_shown_and_help_is_left_to_the_face() -> None:
    """perform(): /rooms by hand shows its answer; a Problem is an error line; /topic is answered locally."""
    from chatclient import commands

    server = FakeServer()
    listener = RecordingListener()

    async def scenario() -> None:
        session = make(server, listener)
        assert await session.start()
        await until(lambda: "physics" in session.state.rooms)
        for typed in ("/rooms", "/msg", "/topic"):
            action = commands.parse(typed)
            assert action is not None
            await session.perform(action)
        await until(lambda: "rooms: lobby (1), physics (1)" in listener.text())
        await session.quit()

    run(scenario)
    assert "usage: /msg" in listener.text() and "lobby has no topic" in listener.text()


def test_password_is_asked_and_tried_on_a_fresh_connection() -> None:
    """auth_failed: the listener is asked; each answer goes in a hello on a new connection; giving up fails quietly."""
    server = PasswordServer("s3cret")
    listener = RecordingListener(passwords=["guess", "s3cret"])

    async def scenario() -> None:
        session = make(server, listener)
        assert await session.start()
        assert session.password == "s3cret"
        await session.quit()

    run(scenario)
    assert [p.get("password") for p in server.of_type("hello")] == [None, "guess", "s3cret"]
    assert listener.asked == ["password", "password"]
    assert len(server.connections) == 3 and all(c.closed for c in server.connections)

    refused = RecordingListener()

    async def give_up() -> ChatSession:
        session = make(PasswordServer("s3cret"), refused)
        assert not await session.start()
        return session

    session = run(give_up)
    assert session.phase is Phase.CLOSED and session.failure is None and session.transport is None


def test_taken_nick_at_start_asks_the_listener() -> None:
    """nick_taken at start-up: the listener's answer is the next hello's nick; None gives up with no message."""
    server = FakeServer()
    server.taken = {"alice"}
    listener = RecordingListener(nicks=["alice_2"])

    async def scenario() -> None:
        session = make(server, listener)
        assert await session.start()
        await session.quit()

    run(scenario)
    assert [p["nick"] for p in server.of_type("hello")] == ["alice", "alice_2"]
    assert listener.asked == ["nick:nick_taken"]


def test_no_welcome_and_early_close_say_why() -> None:
    """A silent server or one that closes before welcome ends start() with a sentence for people."""
    server = FakeServer()
    server.silent = True

    async def silent() -> ChatSession:
        session = make(server, RecordingListener(), welcome_timeout=0.05)
        assert not await session.start()
        return session

    assert run(silent).failure == "no welcome from fake:9009 within 0.05 s"

    closing = FakeServer()
    closing.answer = lambda connection, payload: connection.drop()  # type: ignore[method-assign]

    async def closed() -> ChatSession:
        session = make(closing, RecordingListener())
        assert not await session.start()
        return session

    assert run(closed).failure == "fake:9009 closed the connection before welcome"

    refusing = FakeServer()
    refusing.refuse = 1

    async def refused() -> ChatSession:
        session = make(refusing, RecordingListener())
        assert not await session.start()
        return session

    assert run(refused).failure == "cannot connect to fake: connection refused"


def test_reconnect_waits_with_backoff_and_takes_an_alternative_nick() -> None:
    """A dropped connection: waits 1, 2, 4 s (two refusals), then hello again; a nick still taken after
    another wait of at least NICK_GRACE (5 s) becomes nick_2."""
    server = FakeServer()
    listener = RecordingListener()
    waited: list[float] = []

    async def counting_sleep(seconds: float) -> None:
        waited.append(seconds)
        await asyncio.sleep(0)

    async def scenario() -> None:
        session = make(server, listener, sleep=counting_sleep)
        assert await session.start()
        server.refuse = 2
        server.taken = {"alice"}
        server.current.drop()
        await until(lambda: len(server.connections) == 3 and session.phase is Phase.IN_ROOM)
        assert session.state.nick == "alice_2"
        await session.quit()

    run(scenario)
    assert waited == [1, 2, 4, 8]
    assert [p["nick"] for p in server.of_type("hello")] == ["alice", "alice", "alice", "alice_2"]
    assert "connection to fake:9009 lost; reconnecting" in listener.text()
    assert "alice was taken while you were away: you are alice_2 now" in listener.text()
    assert "reconnected to fake:9009" in listener.text()
    assert listener.reasons == []


def test_the_countdown_is_in_the_status_while_reconnecting() -> None:
    """RECONNECTING: the status gives the seconds left and the try number."""
    server = FakeServer()
    gate = asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        await gate.wait()

    async def scenario() -> None:
        session = make(server, RecordingListener(), sleep=held_sleep)
        assert await session.start()
        server.current.drop()
        await until(lambda: session.phase is Phase.RECONNECTING)
        assert session.status() == ("reconnecting in 1 s (try 1)", "warn")
        assert not await session.send({"type": "say", "text": "hi"})
        gate.set()
        await until(lambda: session.phase is Phase.IN_ROOM)
        await session.quit()

    run(scenario)
    assert not server.of_type("say")


def test_kicked_ends_the_session_without_coming_back() -> None:
    """A `left` about us with reason kicked: CLOSED at once, the listener told, no reconnect, no bye."""
    server = FakeServer()
    listener = RecordingListener()

    async def scenario() -> None:
        session = make(server, listener)
        assert await session.start()
        server.current.push(
            {"type": "left", "nick": "alice", "room": "lobby", "reason": "kicked", "by": "t", "ts": time.time()}
        )
        await asyncio.wait_for(session.wait_over(), 5)
        assert session.phase is Phase.CLOSED and session.status() == ("disconnected", "bad")
        await session.quit()

    run(scenario)
    assert listener.reasons == ["an operator ended your session (see above)"]
    assert len(server.connections) == 1 and not server.of_type("bye")


def test_scripted_habits_end_on_a_dropped_connection() -> None:
    """Line mode's habits: no pings, no room list, and a dropped connection ends the session (no reconnect)."""
    server = FakeServer()
    listener = RecordingListener()

    async def scenario() -> None:
        session = make(server, listener, habits=SCRIPTED)
        assert await session.start()
        server.current.drop()
        await asyncio.wait_for(session.wait_over(), 5)
        await session.quit()

    run(scenario)
    assert listener.reasons == ["connection to fake:9009 lost"]
    assert [p["type"] for p in server.sent] == ["hello"]


def test_udp_server_silent_for_peer_timeout_is_lost_then_back() -> None:
    """Over UDP, no answer for peer_timeout: LOST (sending refused); any payload brings IN_ROOM back."""
    server = FakeServer(transport="udp")
    server.peer_timeout = 0.3
    listener = RecordingListener()

    async def scenario() -> None:
        session = make(server, listener, habits=Habits(ping_every=5.0))
        assert await session.start()
        assert abs(session.ping_interval() - 0.1) < 1e-9  # peer_timeout / 3 (docs/protocol.md §2)
        server.silent = True
        await until(lambda: session.phase is Phase.LOST)
        assert session.in_session and session.status() == ("server lost (no answer for 0 s)", "bad")
        assert not await session.send({"type": "say", "text": "anyone?"})
        server.silent = False
        await until(lambda: session.phase is Phase.IN_ROOM)
        await session.quit()

    run(scenario)
    assert "no answer from fake:9009 for 0.3 s: server lost" in listener.text()
    assert "the server answers again" in listener.text()
    assert server.sent[-1] == {"type": "bye"}  # a lost server is still told goodbye


def test_quit_says_bye_and_waits_for_the_close() -> None:
    """quit(): bye, what the server sent before closing is still shown, the transport is closed; twice is harmless."""
    server = FakeServer()
    listener = RecordingListener()
    answer = server.answer

    def last_words(connection: Any, payload: dict[str, Any]) -> None:
        if payload.get("type") == "bye":
            connection.push({"type": "notice", "text": "see you"})
        answer(connection, payload)

    server.answer = last_words  # type: ignore[method-assign]

    async def scenario() -> None:
        session = make(server, listener, habits=INTERACTIVE)
        assert await session.start()
        await session.quit()
        assert session.phase is Phase.CLOSED and session.transport is None
        await session.quit()

    run(scenario)
    assert server.sent[-1] == {"type": "bye"} and len(server.of_type("bye")) == 1
    assert "see you" in listener.text()
    assert server.connections[0].closed


def test_a_crash_in_the_receive_task_is_reported_and_raised() -> None:
    """A bug while handling a payload reaches the listener and wait_over(), never a silent stop."""
    server = FakeServer()
    listener = RecordingListener()

    async def scenario() -> None:
        session = make(server, listener)
        assert await session.start()

        def broken(payload: dict[str, Any], now: float | None = None) -> list[Any]:
            raise RuntimeError("boom")

        session.state.apply = broken  # type: ignore[method-assign]
        server.current.push({"type": "notice", "text": "x"})
        try:
            await asyncio.wait_for(session.wait_over(), 5)
        except RuntimeError as error:
            assert str(error) == "boom"
        else:
            raise AssertionError("wait_over did not raise")
        await session.quit()

    run(scenario)
    assert [str(error) for error in listener.crashes] == ["boom"]


def test_a_password_wanted_on_reconnect_is_asked_for_and_used_at_once() -> None:
    """The server came back with a password: the listener is asked, the next hello carries it, without a wait."""
    server = PasswordServer("old")
    listener = RecordingListener(passwords=["wrong", "new"])
    waits: list[float] = []

    async def counting_wait(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    async def scenario() -> None:
        session = make(server, listener, password="old", sleep=counting_wait)
        assert await session.start()
        server.password = "new"
        server.current.drop()
        await until(lambda: "reconnected to fake:9009" in listener.text())
        assert session.phase is Phase.IN_ROOM and session.password == "new"
        await session.quit()

    run(scenario)
    assert [p.get("password") for p in server.of_type("hello")] == ["old", "old", "wrong", "new"]
    assert listener.asked == ["password", "password"] and listener.reasons == []
    assert waits == [1.0]  # only before the first try; a typed password is tried at once


def test_no_password_on_reconnect_ends_the_session_and_says_so() -> None:
    """Giving up at the question (Ctrl-C, or line mode, which cannot ask) ends the session with the reason."""
    server = PasswordServer("old")
    listener = RecordingListener()

    async def scenario() -> None:
        session = make(server, listener, password="old")
        assert await session.start()
        server.password = "new"
        server.current.drop()
        await asyncio.wait_for(session.wait_over(), 5)
        assert session.phase is Phase.CLOSED and session.transport is None
        await session.quit()

    run(scenario)
    assert listener.reasons == ["fake:9009 now needs a password, and none was given"]
    assert len(server.connections) == 2 and listener.asked == ["password"]


class BanningServer(FakeServer):
    """Refuses every hello with a fatal not_allowed once `banned` is set (as chatsrv does for a banned address)."""

    banned = False

    def answer(self, connection: Any, payload: dict[str, Any]) -> None:
        if self.banned and payload.get("type") == "hello":
            connection.push({"type": "error", "code": "not_allowed", "message": "your address is banned"})
            connection.drop()
            return
        super().answer(connection, payload)


def test_a_ban_met_on_reconnect_ends_it_with_the_reason_other_refusals_are_retried() -> None:
    """not_allowed will not pass by waiting: no more tries; a full server or a silent one is tried again."""
    server = BanningServer()
    listener = RecordingListener()

    async def scenario() -> None:
        session = make(server, listener)
        assert await session.start()
        server.refuse = 2  # two tries fail to connect at all, then the ban answers
        server.banned = True
        server.current.drop()
        await asyncio.wait_for(session.wait_over(), 5)
        await session.quit()

    run(scenario)
    assert listener.reasons == [
        "fake:9009 does not let this computer in any more (banned, or not on its list): ask the teacher"
    ]
    assert len(server.of_type("hello")) == 2  # the first join, and one refused: no retries after the ban


def test_a_missed_ping_shows_how_long_the_server_has_been_silent() -> None:
    """A server that stops answering (UDP: nothing closes) is not shown as connected with the last round trip."""
    server = FakeServer(transport="udp")
    server.peer_timeout = 60.0  # far away: the bar must not wait for it
    listener = RecordingListener()

    async def scenario() -> None:
        session = make(server, listener, habits=Habits(ping_every=0.05))
        assert await session.start()
        await until(lambda: session.state.rtt is not None)
        assert session.status() == ("connected", "ok")
        server.silent = True
        session.last_heard -= 3  # as if the last answer came 3 s ago (instead of waiting 3 s)
        await until(lambda: session.state.rtt is None)
        text, level = session.status()
        assert text == "no answer for 3 s" and level == "warn" and session.phase is Phase.IN_ROOM
        server.silent = False
        await until(lambda: session.status() == ("connected", "ok") and session.state.rtt is not None)
        await session.quit()

    run(scenario)


def test_an_operator_who_reconnects_is_told_the_status_is_gone() -> None:
    """The operator tag does not vanish silently: after a reconnect the user reads why and what to type."""
    server = FakeServer()
    listener = RecordingListener()

    async def scenario() -> None:
        session = make(server, listener)
        assert await session.start()
        server.current.push({"type": "notice", "event": "op", "nick": "alice", "room": "lobby", "text": "op"})
        await until(lambda: session.state.operator)
        server.current.drop()
        await until(lambda: "reconnected to" in listener.text() and session.phase is Phase.IN_ROOM)
        await until(lambda: "you are no longer an operator" in listener.text())
        assert not session.state.operator
        await session.quit()

    run(scenario)


def test_a_timed_mute_ends_on_our_clock_and_a_later_server_notice_is_not_repeated() -> None:
    """The bar's mute clears when its time is up though the server says nothing; its notice, if it comes, is not said
    twice."""
    server = FakeServer()
    listener = RecordingListener()

    async def scenario() -> None:
        session = make(server, listener)
        assert await session.start()
        mute = {"type": "notice", "event": "mute", "nick": "alice", "by": "teacher", "minutes": 0.002, "text": "muted"}
        server.current.push(mute)  # 0.12 s
        await until(lambda: session.state.muted)
        assert session.state.status_marks(time.time())[0].startswith("muted")
        changes = listener.changes
        await until(lambda: "your mute has ended" in listener.text())
        assert not session.state.muted and listener.changes > changes
        server.current.push({"type": "notice", "event": "unmute", "nick": "alice", "expired": True, "text": "ended"})
        server.current.push({"type": "notice", "text": "marker"})
        await until(lambda: "marker" in listener.text())
        await session.quit()

    run(scenario)
    assert listener.text().count("your mute has ended") == 1 and "ended\n" not in listener.text()


def test_the_servers_mute_ended_notice_clears_the_mute_before_our_clock() -> None:
    """`notice` event `unmute` with `expired` (no `by`): the mute is over, said in plain words, not "X unmuted you"."""
    server = FakeServer()
    listener = RecordingListener()

    async def scenario() -> None:
        session = make(server, listener)
        assert await session.start()
        server.current.push({"type": "notice", "event": "mute", "nick": "alice", "by": "teacher", "minutes": 5})
        await until(lambda: session.state.muted)
        server.current.push({"type": "notice", "event": "unmute", "nick": "alice", "expired": True, "text": "x"})
        await until(lambda: not session.state.muted)
        await session.quit()

    run(scenario)
    assert "your mute has ended: the room sees what you write again." in listener.text()
    assert "unmuted you" not in listener.text()


def test_a_long_say_goes_as_several_in_order_and_the_user_is_told() -> None:
    """send(): a text over the limit becomes one `say` per part (an action stays an action); a short one is
    untouched."""
    server = FakeServer()
    listener = RecordingListener()
    text = " ".join(f"w{number:04d}" for number in range(750)) + "!"

    async def scenario() -> None:
        session = make(server, listener)
        assert await session.start()
        assert await session.send({"type": "say", "text": text, "action": True})
        assert await session.send({"type": "say", "text": "short"})
        await session.quit()

    run(scenario)
    says = server.of_type("say")
    assert len(says) == 4 and says[-1] == {"type": "say", "text": "short"}
    assert all(say.get("action") is True and len(say["text"]) <= 2000 for say in says[:3])
    assert " ".join(say["text"] for say in says[:3]) == text
    assert "that text was over 2,000 characters: sent as 3 messages" in listener.text()


def test_a_nick_held_a_few_seconds_by_a_server_that_died_is_ours_again() -> None:
    """Several chat servers (docs/scale-out.md): one dies, its members reconnect to another at once, which
    holds their nicks until it knows the dead one is dead (about 4 s). Asked again after the next wait, the
    nick is ours: before, the teacher came back as teacher_2 at once."""
    server = FakeServer()
    listener = RecordingListener()
    waited: list[float] = []

    async def counting_sleep(seconds: float) -> None:
        waited.append(seconds)
        if len(waited) == 2:
            server.taken.clear()  # the dead server's members are gone from the others' lists
        await asyncio.sleep(0)

    async def scenario() -> None:
        session = make(server, listener, sleep=counting_sleep)
        assert await session.start()
        server.taken = {"alice"}
        server.current.drop()
        await until(lambda: len(server.connections) == 3 and session.phase is Phase.IN_ROOM)
        assert session.state.nick == "alice"
        await session.quit()

    run(scenario)
    assert waited == [1, 2]
    assert [p["nick"] for p in server.of_type("hello")] == ["alice", "alice", "alice"]
    assert "taken while you were away" not in listener.text()
    assert "already has that nick" not in listener.text()  # the refusals asked again are not errors to read
    assert "reconnected to fake:9009" in listener.text()
