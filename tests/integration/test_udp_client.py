"""The client's UDP transport against a real server: handshake, retries, keepalive, and honest counters."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from chatclient.state import ClientState
from chatclient.transport import HELLO_TRIES, TransportError, UDPTransport
from tests.helpers import Client, wait_until


async def join(transport: UDPTransport, state: ClientState, nick: str) -> dict[str, Any]:
    """Send hello and apply what arrives until the welcome (the transport does challenge and retries)."""
    await transport.send({"type": "hello", "nick": nick})
    while True:
        payload = await asyncio.wait_for(transport.receive(), 5)
        assert payload is not None
        state.apply(payload, time.time())
        if payload["type"] == "welcome":
            return payload


async def ask_stats(transport: UDPTransport, state: ClientState) -> dict[str, Any]:
    """Ask for stats until an answer gets through (a stats reply can be lost too); apply all on the way."""
    for _ in range(20):
        await transport.send({"type": "stats"})
        try:
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                payload = await asyncio.wait_for(transport.receive(), deadline - time.monotonic())
                assert payload is not None
                state.apply(payload, time.time())
                if payload["type"] == "stats":
                    return payload
        except asyncio.TimeoutError:
            continue
    raise AssertionError("no stats reply in 20 tries")


async def drain(transport: UDPTransport, state: ClientState, quiet: float = 0.1, limit: float = 5.0) -> None:
    """Apply payloads until none has arrived for `quiet` seconds (or `limit` seconds have passed)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            payload = await asyncio.wait_for(transport.receive(), min(quiet, max(0.0, deadline - time.monotonic())))
        except asyncio.TimeoutError:
            return
        assert payload is not None
        state.apply(payload, time.time())


def test_client_loss_count_equals_servers_injected_count(make_server) -> None:
    """With --udp-loss 30 --seed 1 the client's count of lost payloads equals what the server dropped on purpose."""
    server = make_server("--rate", "0", "--udp-loss", "30", "--seed", "1")

    async def scenario() -> tuple[ClientState, dict[str, Any], dict[str, Any]]:
        transport = await UDPTransport.connect("127.0.0.1", server.udp.port)
        state = ClientState(nick="uma", transport="udp")
        try:
            welcome = await join(transport, state, "uma")
            for number in range(100):
                await transport.send({"type": "ping", "id": number})
            await drain(transport, state)
            stats = await ask_stats(transport, state)
            return state, welcome, stats
        finally:
            await transport.close()

    state, welcome, stats = asyncio.run(scenario())
    assert welcome["impairment"] == {"loss": 30, "duplicate": 0, "reorder": 0, "delay_ms": 0, "jitter_ms": 0, "seed": 1}
    assert 10 < stats["injected_lost"] < 60
    assert state.seq.missing == stats["injected_lost"]
    assert stats["gaps"] == 0  # nothing the client sent was lost on loopback


def test_client_duplicate_and_reorder_counts_equal_the_servers(make_server) -> None:
    """With --udp-dup and --udp-reorder the client's duplicates and reordered equal the server's injected ones."""
    server = make_server("--rate", "0", "--udp-dup", "20", "--udp-reorder", "20", "--seed", "2")

    async def scenario() -> tuple[ClientState, dict[str, Any]]:
        transport = await UDPTransport.connect("127.0.0.1", server.udp.port)
        state = ClientState(nick="uma", transport="udp")
        try:
            await join(transport, state, "uma")
            for number in range(100):
                await transport.send({"type": "ping", "id": number})
            # Held datagrams leave within 0.5 s; ask until both views agree (bounded).
            deadline = time.monotonic() + 5
            while True:
                await drain(transport, state, quiet=0.6)
                stats = await ask_stats(transport, state)
                await drain(transport, state, quiet=0.6)
                agreed = (state.seq.duplicates, state.seq.reordered) == (
                    stats["injected_duplicates"],
                    stats["injected_reordered"],
                )
                if agreed or time.monotonic() > deadline:
                    return state, stats
        finally:
            await transport.close()

    state, stats = asyncio.run(scenario())
    assert stats["injected_duplicates"] > 5 and stats["injected_reordered"] > 5
    assert state.seq.duplicates == stats["injected_duplicates"]
    assert state.seq.reordered == stats["injected_reordered"]
    assert state.seq.missing == 0


def test_delay_is_felt_in_the_round_trip(make_server) -> None:
    """--udp-delay 150 makes a ping's round trip at least 150 ms."""
    server = make_server("--rate", "0", "--udp-delay", "150")

    async def scenario() -> float:
        transport = await UDPTransport.connect("127.0.0.1", server.udp.port)
        state = ClientState(nick="uma", transport="udp")
        try:
            await join(transport, state, "uma")
            started = time.monotonic()
            await transport.send({"type": "ping", "id": "x"})
            while (await asyncio.wait_for(transport.receive(), 5) or {}).get("type") != "pong":
                pass
            return time.monotonic() - started
        finally:
            await transport.close()

    assert asyncio.run(scenario()) >= 0.15


def test_every_client_payload_carries_its_own_seq(server) -> None:
    """The transport numbers everything it sends, so the server counts no gap after many sends."""

    async def scenario() -> tuple[UDPTransport, dict[str, Any]]:
        transport = await UDPTransport.connect("127.0.0.1", server.udp.port)
        state = ClientState(nick="uma", transport="udp")
        try:
            await join(transport, state, "uma")
            for number in range(20):
                await transport.send({"type": "say", "text": f"m{number}"})
            await drain(transport, state)
            return transport, await ask_stats(transport, state)
        finally:
            await transport.close()

    transport, stats = asyncio.run(scenario())
    assert transport.seq == 2 + 20 + 1  # two hellos (without and with cookie), the says, the stats
    assert stats["received"] == 22 and stats["gaps"] == 0


def test_keepalive_keeps_a_quiet_client_joined(make_server) -> None:
    """A client that says nothing stays joined past peer_timeout: its transport pings every third of it."""
    server = make_server("--rate", "0", "--peer-timeout", "0.6")
    watcher = Client(server.port)

    async def scenario() -> None:
        transport = await UDPTransport.connect("127.0.0.1", server.udp.port)
        state = ClientState(nick="uma", transport="udp")
        try:
            welcome = await join(transport, state, "uma")
            assert welcome["peer_timeout"] == 0.6
            await drain(transport, state, quiet=1.5, limit=1.5)  # 2.5 timeouts of silence from the user
            assert server.udp.peer_count() == 1
            assert state.rtt is not None  # keepalive pongs came back
        finally:
            await transport.close()

    try:
        watcher.join("watcher")
        asyncio.run(scenario())
        assert watcher.expect("joined", nick="uma")
        wait_until(lambda: server.udp.peer_count() == 0)  # silent after close: it times out
    finally:
        watcher.close()


def test_hello_is_retried_until_the_server_answers(make_server) -> None:
    """A hello whose answer is lost is sent again a second later; the second try gets the welcome."""
    server = make_server("--rate", "0")
    # A relay that drops the first datagram from the client, like a lossy network would.
    relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    relay.bind(("127.0.0.1", 0))
    relay.settimeout(0.05)
    client_address: list[Any] = []
    dropped: list[bytes] = []
    stop = False

    async def forward() -> None:
        loop = asyncio.get_running_loop()
        while not stop:
            try:
                data, sender = await loop.run_in_executor(None, relay.recvfrom, 65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if sender[1] == server.udp.port:
                relay.sendto(data, client_address[0])
            elif not dropped:
                client_address.append(sender)
                dropped.append(data)
            else:
                relay.sendto(data, ("127.0.0.1", server.udp.port))

    async def scenario() -> float:
        nonlocal stop
        relay_task = asyncio.ensure_future(forward())
        transport = await UDPTransport.connect("127.0.0.1", relay.getsockname()[1])
        try:
            started = time.monotonic()
            await join(transport, ClientState(nick="uma", transport="udp"), "uma")
            return time.monotonic() - started
        finally:
            stop = True
            await transport.close()
            await relay_task

    try:
        took = asyncio.run(scenario())
    finally:
        relay.close()
    assert dropped and b'"hello"' in dropped[0]
    assert 0.9 < took < 2.5


def test_no_answer_after_three_tries() -> None:
    """Nothing listening: after 3 hellos a second apart, the transport gives up with the exact message."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound but never read: no ICMP, no answer
        port = silent.getsockname()[1]

        async def scenario() -> None:
            transport = await UDPTransport.connect("127.0.0.1", port)
            try:
                await transport.send({"type": "hello", "nick": "uma"})
                await asyncio.wait_for(transport.receive(), 10)
            finally:
                await transport.close()

        started = time.monotonic()
        with pytest.raises(TransportError) as failure:
            asyncio.run(scenario())
        took = time.monotonic() - started
        hellos = 0
        silent.setblocking(False)
        while True:
            try:
                silent.recv(65536)
            except BlockingIOError:
                break
            hellos += 1
    assert str(failure.value) == (
        f"no answer from 127.0.0.1:{port} over UDP after 3 tries: is the server running, is UDP blocked?"
    )
    assert hellos == HELLO_TRIES == 3
    assert 2.5 < took < 5
