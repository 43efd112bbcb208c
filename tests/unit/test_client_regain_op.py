"""The client session regains operator after a reconnect by sending its /op secret again (a fake server)."""

from __future__ import annotations

import asyncio
from typing import Any

from chatclient import commands
from chatclient.session import ChatSession
from chatclient.sessiontypes import Habits
from tests.support.client_fakes import FakeServer, RecordingListener, run, until


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


async def operator_then_reconnect(server: FakeServer, listener: RecordingListener) -> ChatSession:
    session = ChatSession(
        server.connect, "alice", "lobby", "fake:9009", listener,
        habits=Habits(ping_every=None, learn_rooms=False), sleep=no_wait,
    )
    assert await session.start()
    action = commands.parse("/op s3cret")
    assert action is not None
    await session.perform(action)
    op_notice: dict[str, Any] = {"type": "notice", "event": "op", "nick": "alice", "room": "lobby", "text": "x"}
    server.current.push(op_notice)
    await until(lambda: session.state.operator)
    first = server.current
    first.drop()  # the server restarts
    await until(lambda: server.current is not first and "reconnected" in listener.text())
    await until(lambda: len(server.of_type("op")) == 2)
    return session


def test_after_a_reconnect_the_session_sends_its_op_secret_again_and_is_operator() -> None:
    server, listener = FakeServer(), RecordingListener()

    async def scenario() -> None:
        session = await operator_then_reconnect(server, listener)
        assert not session.state.operator  # the new welcome had no operators
        server.current.push({"type": "notice", "event": "op", "nick": "alice", "room": "lobby", "text": "x"})
        await until(lambda: session.state.operator)
        await session.quit()

    run(scenario)
    assert server.of_type("op") == [{"type": "op", "secret": "s3cret"}] * 2
    assert "not an operator any more" not in listener.text()
    # Nor was the teacher told the status was gone, a line before it came back by itself.
    assert "no longer an operator" not in listener.text()


def test_a_refused_secret_after_a_reconnect_is_one_plain_line_and_is_not_sent_again() -> None:
    server, listener = FakeServer(), RecordingListener()

    async def scenario() -> None:
        session = await operator_then_reconnect(server, listener)
        refusal = {"type": "error", "code": "not_allowed", "message": "wrong operator secret (4 tries left)"}
        server.current.push(refusal)
        await until(lambda: "not an operator any more" in listener.text())
        second = server.current
        second.drop()
        await until(lambda: server.current is not second and listener.text().count("reconnected") == 2)
        await session.quit()

    run(scenario)
    assert "wrong operator secret" not in listener.text() and "not_allowed" not in listener.text()
    assert len(server.of_type("op")) == 2  # the refused secret is not tried again
