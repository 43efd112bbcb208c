"""Shared fixtures: real servers on 127.0.0.1:0 that always shut down, and a thread-leak check."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from chatsrv.app import Server, build_server
from chatsrv.options import build_parser
from tests.helpers import Client, UDPClient, wait_until

settings.register_profile("ci", deadline=None, max_examples=100)
settings.load_profile("ci")


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every test ends with the threads it started gone (bounded wait)."""
    before = set(threading.enumerate())
    yield
    wait_until(lambda: not [t for t in threading.enumerate() if t not in before and t.is_alive()], timeout=5)


ServerFactory = Callable[..., Server]

# The serving loops look up every 10 ms instead of chatsrv's 50: stop() waits for each loop to look
# up, so every test's teardown is that much shorter (what the server does is the same).
TEST_POLL_INTERVAL = 0.01
TEST_READ_BLOCK_MS = 20  # likewise a backplane's longest XREAD wait (chatsrv's: 200 ms)


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    """Start chatsrv servers in this process with chatsrv's own flags; stopped at teardown."""
    servers: list[Server] = []

    def start(*flags: str) -> Server:
        if "--db" not in flags:
            flags = ("--db", ":memory:", *flags)  # hermetic: no lanchat.sqlite3 in the working directory
        args = build_parser().parse_args(["--host", "127.0.0.1", "--port", "0", "--log-level", "warning", *flags])
        server = build_server(args)
        server.poll_interval = TEST_POLL_INTERVAL
        if server.backplane is not None:
            server.backplane.read_block_ms = TEST_READ_BLOCK_MS  # stop() waits for the XREAD under way
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        assert all(not thread.is_alive() for thread in server.threads)
        assert server.tcp.live_connections() == 0
        assert server.udp is None or server.udp.peer_count() == 0


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    """A server with the rate limit off, so tests can send quickly."""
    return make_server("--rate", "0")


@pytest.fixture
def clients(server: Server) -> Iterator[Callable[..., Client]]:
    """Open test clients to `server`; all are closed at teardown."""
    opened: list[Client] = []

    def connect(**kwargs: Any) -> Client:
        client = Client(server.port, **kwargs)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


@pytest.fixture
def udp_clients(server: Server) -> Iterator[Callable[..., UDPClient]]:
    """Open UDP test clients to `server`'s UDP port; all are closed at teardown."""
    opened: list[UDPClient] = []

    def open_client(**kwargs: Any) -> UDPClient:
        assert server.udp is not None
        client = UDPClient(server.udp.port, **kwargs)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()
