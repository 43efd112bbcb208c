"""A node that dies, and a Redis that stops and comes back (docs/scale-out.md, "Failures")."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatsrv.app import Server
from tests.backplane.conftest import Redis
from tests.helpers import Client, wait_until

# A dead node's members leave the other nodes' lists within ttl + heartbeat (3 s + 1 s by default);
# the test allows twice that for a loaded machine.
LOST_BOUND = 8.0


@pytest.fixture
def node_process(redis_server: Redis) -> Iterator[Callable[[], tuple[subprocess.Popen[str], int]]]:
    """Start chatsrv processes with the backplane; each is killed by its PID at teardown if still running."""
    started: list[subprocess.Popen[str]] = []

    def start() -> tuple[subprocess.Popen[str], int]:
        command = [sys.executable, "-m", "chatsrv", "--host", "127.0.0.1", "--port", "0", "--no-udp",
                   "--db", ":memory:", "--rate", "0", "--backplane", redis_server.url]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        started.append(process)
        assert process.stdout is not None
        port = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            found = re.search(r"listening on \S+ port (\d+)", line)
            if found:
                port = int(found.group(1))
            if line.startswith("backplane:"):
                assert "linked" in line and "not reachable" not in line, line
                return process, port
            if not line and process.poll() is not None:
                break
        raise AssertionError("chatsrv did not start with its backplane")

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_a_killed_node_s_members_leave_the_other_node_s_lists(
    redis_server: Redis,
    make_server: Callable[..., Server],
    node_process: Callable[[], tuple[subprocess.Popen[str], int]],
) -> None:
    a = make_server("--rate", "0", "--backplane", redis_server.url)
    process, port = node_process()
    with Client(a.port) as alice, Client(port) as bob:
        alice.join("alice")
        bob.join("bob")
        alice.expect("joined", nick="bob")
        killed_at = time.monotonic()
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        left = alice.expect("left", timeout=LOST_BOUND, nick="bob")
        assert left["reason"] == "lost"
        assert time.monotonic() - killed_at < LOST_BOUND
        assert a.service.registry.find("bob") is None
        with Client(a.port) as newcomer:  # the dead node's nick is free again
            assert newcomer.join("bob")["nick"] == "bob"


def said(client: Client, text: str) -> dict[str, Any]:
    return client.expect("message", text=text)


def test_without_redis_each_node_serves_its_own_and_the_shared_chat_comes_back(
    redis_server: Redis, make_server: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatsrv")
    a = make_server("--rate", "0", "--backplane", redis_server.url)
    b = make_server("--rate", "0", "--backplane", redis_server.url)
    with Client(a.port) as alice, Client(a.port) as carol, Client(b.port) as bob:
        alice.join("alice")
        carol.join("carol")
        bob.join("bob")
        wait_until(lambda: a.service.registry.find("bob") is not None and b.service.registry.find("carol"))
        redis_server.stop()
        assert alice.expect("notice", event="backplane")
        assert carol.expect("notice", event="backplane")
        # The notice says why before the others leave: else a pupil sees the teacher leave (lost) unexplained.
        assert "only people on this server" in bob.expect("notice", event="backplane")["text"]
        assert bob.expect("left", nick="alice")["reason"] == "lost"
        alice.send({"type": "say", "text": "still here"})
        assert said(carol, "still here")["from"] == "alice"  # local chat goes on
        # While apart, each node admits a "dave": after the link is back only one may keep the nick.
        with Client(a.port) as dave_a, Client(b.port) as dave_b:
            dave_a.join("dave")
            dave_b.join("dave")
            redis_server.start()
            wait_until(lambda: a.backplane.linked and b.backplane.linked, timeout=15)
            wait_until(lambda: b.service.registry.find("alice") is not None
                       and a.service.registry.find("bob") is not None, timeout=10)
            assert a.backplane.recovery_seconds is not None
            # Losing the link is a warning; its coming back is good news (it was logged as a warning too).
            levels = {r.levelname for r in caplog.records if "is back after" in r.getMessage()}
            assert levels == {"INFO"}
            assert {r.levelname for r in caplog.records if "lost the link" in r.getMessage()} == {"WARNING"}
            # The same when the link is back: the notice first, then the others come back (and any rename).
            assert "everyone hears you again" in carol.expect("notice", event="backplane")["text"]
            assert carol.expect("joined", nick="bob")
            alice.send({"type": "say", "text": "together again"})
            assert said(bob, "together again")["from"] == "alice"
            bob.send({"type": "say", "text": "hello from b"})
            assert said(carol, "hello from b")["from"] == "bob"
            nicks = sorted(
                session.nick or "" for server in (a, b) for session in server.service.sessions if session.joined
            )
            assert nicks == ["alice", "bob", "carol", "dave", "dave_2"]
            renamed = dave_a if any(session.nick == "dave_2" for session in a.service.sessions) else dave_b
            renamed.expect("renamed", new="dave_2")  # and why (before: only "you are now known as dave_2")
            assert "someone on another server took the nick dave" in renamed.expect("notice", event="backplane",
                                                                                    reason="backplane_renamed")["text"]
            wait_until(lambda: a.service.registry.find("dave_2") is not None
                       and b.service.registry.find("dave_2") is not None, timeout=10)


def test_a_send_queue_past_its_bound_takes_the_node_local_without_losing_the_message(
    redis_server: Redis, make_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatsrv import backplane

    a = make_server("--rate", "0", "--backplane", redis_server.url)
    with Client(a.port) as alice:
        alice.join("alice")
        monkeypatch.setattr(backplane, "MAX_QUEUED", 0)  # every entry is one too many
        alice.send({"type": "say", "text": "kept"})
        assert alice.expect("message")["text"] == "kept"
        assert "lost" in alice.expect("notice", event="backplane")["text"]


def test_a_node_that_stops_cleanly_is_not_logged_as_one_that_stopped_answering(
    redis_server: Redis,
    make_server: Callable[..., Server],
    node_process: Callable[[], tuple[subprocess.Popen[str], int]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = make_server("--rate", "0", "--backplane", redis_server.url)
    process, port = node_process()
    with caplog.at_level(logging.INFO, logger="chatsrv"), Client(a.port) as alice, Client(port) as bob:
        alice.join("alice")
        bob.join("bob")
        alice.expect("joined", nick="bob")
        process.send_signal(signal.SIGTERM)  # Ctrl-C, or `--workers` stopping the others
        assert process.wait(10) == 0
        assert alice.expect("left", nick="bob")["reason"] == "shutdown"
        wait_until(lambda: not a.backplane._stand_ins, timeout=LOST_BOUND)  # the node is forgotten
    # It was: "WARNING backplane: node … stopped answering: its 0 member(s) left (lost)" on every other node.
    assert not [r for r in caplog.records if "stopped answering" in r.getMessage()]
    assert [r.levelname for r in caplog.records if "left the cluster" in r.getMessage()] == ["INFO"]
