"""A /join over UDP is asked again only while unanswered: a refusal (an `error`) ends the retries."""

from __future__ import annotations

import asyncio

import pytest

from chatclient import session as session_module
from chatclient.session import ChatSession
from chatclient.sessiontypes import Habits
from tests.support.client_fakes import FakeServer, RecordingListener, run, until


def test_a_refused_udp_join_is_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """During /lock all the server answers the join with not_allowed: one join, one error on screen (not three)."""
    monkeypatch.setattr(session_module, "UDP_JOIN_WAIT", 0.2)
    server = FakeServer(transport="udp")
    listener = RecordingListener()

    async def scenario() -> None:
        session = ChatSession(server.connect, "alice", "lobby", "fake:9009", listener, habits=Habits(ping_every=None))
        assert await session.start()
        assert await session.send({"type": "join", "room": "physics"})
        server.current.push({"type": "error", "code": "not_allowed", "message": "every room is locked"})
        await until(lambda: "every room is locked" in listener.text())
        await asyncio.sleep(3 * 0.2)  # longer than every retry would take
        await session.quit()

    run(scenario)
    assert server.of_type("join") == [{"type": "join", "room": "physics"}]
