"""`chatclient --host A --host B`: the client moves to another node of the chat when its node is gone."""

from __future__ import annotations

import asyncio

import pytest

from chatclient.servers import Servers
from chatclient.session import ChatSession
from chatclient.sessiontypes import Habits
from chatclient.transport import Transport, TransportError
from tests.support.client_fakes import FakeServer, RecordingListener, run, until


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def opener(servers: dict[str, FakeServer], tried: list[str]):  # type: ignore[no-untyped-def]
    """Opens a fake connection to servers[host]; a host that is not there refuses."""

    async def open_one(host: str, port: int) -> Transport:
        tried.append(host)
        server = servers.get(host)
        if server is None:
            raise TransportError(f"cannot connect to {host}:{port}: connection refused")
        return await server.connect()

    return open_one


def test_one_address_is_always_that_address() -> None:
    tried: list[str] = []
    a = FakeServer(address="a:9009")
    servers = Servers([("a", 9009)], opener({"a": a}, tried))

    async def scenario() -> None:
        first = await servers.connect()
        second = await servers.connect()
        assert first.address == second.address == "a:9009"

    run(scenario)
    assert tried == ["a", "a"]


def test_the_next_call_begins_after_the_address_that_answered_and_skips_a_refusal() -> None:
    """A lost connection most likely means that node is down: the retry goes to the next one first."""
    tried: list[str] = []
    up = {"a": FakeServer(address="a:9009"), "b": FakeServer(address="b:9009")}
    servers = Servers([("a", 9009), ("b", 9009), ("c", 9009)], opener(up, tried))

    async def scenario() -> None:
        assert (await servers.connect()).address == "a:9009"
        assert (await servers.connect()).address == "b:9009"
        del up["a"]
        assert (await servers.connect()).address == "b:9009"  # c refused, a refused, then b

    run(scenario)
    assert tried == ["a", "b", "c", "a", "b"]


def test_when_none_answers_one_error_names_every_address() -> None:
    servers = Servers([("a", 1), ("b", 2)], opener({}, []))
    with pytest.raises(TransportError) as caught:
        run(servers.connect)
    assert "a:1" in str(caught.value) and "b:2" in str(caught.value)


def test_no_address_is_a_mistake() -> None:
    with pytest.raises(ValueError):
        Servers([], opener({}, []))


def test_a_session_whose_node_dies_reconnects_to_the_other_and_says_where() -> None:
    """The session's address (status bar, messages) follows the node it is on."""
    tried: list[str] = []
    up = {"a": FakeServer(address="a:9009"), "b": FakeServer(address="b:9009")}
    servers = Servers([("a", 9009), ("b", 9009)], opener(up, tried))
    listener = RecordingListener()

    async def scenario() -> None:
        session = ChatSession(servers.connect, "alice", "lobby", "a:9009", listener,
                              habits=Habits(ping_every=None), sleep=no_wait)
        assert await session.start()
        assert session.address == "a:9009"
        dead = up.pop("a")
        dead.current.drop()
        await until(lambda: "reconnected to b:9009" in listener.text())
        assert session.address == "b:9009"
        assert "connection to a:9009 lost; reconnecting" in listener.text()
        assert up["b"].of_type("hello")[-1]["nick"] == "alice"
        await session.quit()

    run(scenario)
