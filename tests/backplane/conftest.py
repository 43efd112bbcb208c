"""A real redis-server per test on a free loopback port, persistence off, stopped by PID afterwards;
two nodes linked through it (`nodes`, flags from `node_flags`) and clients closed after the test (`connect`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from chatsrv.app import Server
from tests.helpers import Client

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Redis:
    """A redis-server this test started (and may stop and start again on the same port)."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        command = [REDIS_SERVER, "--save", "", "--appendonly", "no", "--port", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def redis_server() -> Iterator[Redis]:
    pytest.importorskip("redis", reason="the backplane needs the redis package: pip install -e '.[backplane]'")
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = Redis(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def node_flags() -> tuple[str, ...]:
    """The flags of both `nodes` besides `--backplane` (a test module may override this fixture)."""
    return ("--rate", "0")


@pytest.fixture
def nodes(
    redis_server: Redis, make_server: Callable[..., Server], node_flags: tuple[str, ...]
) -> tuple[Server, Server]:
    # redis_server first: it is set up first and so stopped last, after both nodes.
    first = make_server(*node_flags, "--backplane", redis_server.url)
    second = make_server(*node_flags, "--backplane", redis_server.url)
    assert first.backplane.linked and second.backplane.linked
    return first, second


@pytest.fixture
def connect() -> Iterator[Callable[[Server], Client]]:
    """Open a client to a node; every client opened is closed after the test."""
    opened: list[Client] = []

    def open_client(server: Server) -> Client:
        client = Client(server.port)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()
