"""Two nodes given with --host: the real client joins one that answers, and moves when its node dies.

The two servers here are plain chatsrv processes (no backplane): what is tested is the client's
choice of address, which is the same whether or not the nodes share their rooms through Redis.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from chatclient.servers import Servers
from chatclient.session import ChatSession
from chatclient.sessiontypes import Habits
from chatclient.transport import open_transport
from tests.helpers import Client
from tests.integration.test_cli import ENV, ROOT, finish, read_until, start_server
from tests.support.client_fakes import RecordingListener, until


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then closed): connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.timeout(40)
def test_line_client_with_two_hosts_joins_the_one_that_answers() -> None:
    server, port = start_server("--no-udp")
    dead = closed_port()
    client = subprocess.Popen(
        [sys.executable, "-m", "chatclient", "--plain", "--nick", "ann",
         "--host", f"127.0.0.1:{dead}", "--host", f"127.0.0.1:{port}"],
        cwd=ROOT, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        read_until(client, r"you are ann in lobby")
        with Client(port) as bob:
            bob.join("bob")
            assert client.stdin is not None
            client.stdin.write("hello from the second address\n")
            client.stdin.flush()
            assert bob.expect("message")["text"] == "hello from the second address"
    finally:
        finish(client, server)


@pytest.mark.timeout(60)
def test_session_moves_to_the_other_node_when_its_node_is_killed() -> None:
    first, first_port = start_server("--no-udp", "--rate", "0")
    second, second_port = start_server("--no-udp", "--rate", "0")
    listener = RecordingListener()
    try:
        with Client(second_port) as bob:
            bob.join("bob")

            async def lesson() -> None:
                servers = Servers([("127.0.0.1", first_port), ("127.0.0.1", second_port)], open_transport)
                alice = ChatSession(servers.connect, "alice", "lobby", f"127.0.0.1:{first_port}", listener,
                                    habits=Habits(ping_every=None, learn_rooms=False),
                                    backoff=lambda: iter([0.2] * 50))
                assert await alice.start()
                assert alice.address == f"127.0.0.1:{first_port}"
                first.kill()  # the node dies: no goodbye
                await until(lambda: f"reconnected to 127.0.0.1:{second_port}" in listener.text(), timeout=20)
                assert alice.address == f"127.0.0.1:{second_port}"
                await alice.quit()

            asyncio.run(asyncio.wait_for(lesson(), 40))
            assert bob.expect("joined")["nick"] == "alice"
        assert f"connection to 127.0.0.1:{first_port} lost; reconnecting" in listener.text()
    finally:
        finish(first, second)


@pytest.mark.timeout(40)
def test_line_client_names_the_node_that_refused_it_not_the_first_host() -> None:
    """The 'did not let us in' line named the first --host (which was down), not the server that asked."""
    server, port = start_server("--no-udp", "--password", "letmein")
    dead = closed_port()
    client = subprocess.Popen(
        [sys.executable, "-m", "chatclient", "--plain", "--nick", "ann",
         "--host", f"127.0.0.1:{dead}", "--host", f"127.0.0.1:{port}"],
        cwd=ROOT, env={k: v for k, v in ENV.items() if k != "LANCHAT_PASSWORD"},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert client.wait(20) == 1
        assert client.stderr is not None
        errors = client.stderr.read()
        assert f"127.0.0.1:{port} did not let us in" in errors, errors
    finally:
        finish(client, server)
