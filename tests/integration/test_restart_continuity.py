"""A restart with the same --db keeps the teacher in charge (real chatsrv processes).

The teacher's client is the real session (chatclient.session over a real TCP
transport): after the restart it reconnects and regains operator by itself,
with the secret the server kept. Students are raw protocol clients.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatclient import commands
from chatclient.session import ChatSession
from chatclient.sessiontypes import Habits
from chatclient.transport import Transport, open_transport
from tests.helpers import Client
from tests.integration.test_cli import finish, read_until, start_server
from tests.support.client_fakes import RecordingListener, until


def fast_backoff() -> Iterator[float]:
    while True:
        yield 0.2


def start(db: Path, *flags: str) -> tuple[subprocess.Popen[str], int, str]:
    """A chatsrv process on `db` (TCP only); returns it, its port and the operator secret it printed."""
    process, port = start_server("--db", str(db), "--no-udp", "--rate", "0", *flags)
    line = read_until(process, r"operator secret: ")[-1]
    match = re.search(r"operator secret: (\S+)", line)
    assert match is not None, line
    return process, port, line


def stop(process: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a teacher stops it; the process must exit on its own."""
    process.send_signal(signal.SIGINT)
    assert process.wait(15) == 0
    finish(process)


@pytest.mark.timeout(90)
def test_restart_keeps_topic_lock_mute_ban_and_the_teacher_regains_operator(tmp_path: Path) -> None:
    db = tmp_path / "lesson.sqlite3"
    first, port, secret_line = start(db)
    secret = re.search(r"operator secret: (\S+)", secret_line).group(1)  # type: ignore[union-attr]
    second: subprocess.Popen[str] | None = None
    listener = RecordingListener()
    try:
        with Client(port) as carol, Client(port, source="127.0.0.2") as bob:
            carol.join("carol")
            bob.join("bob")

            async def lesson() -> None:
                nonlocal second

                async def connect() -> Transport:
                    return await open_transport("127.0.0.1", port)

                teacher = ChatSession(
                    connect, "teacher", "lobby", f"127.0.0.1:{port}", listener,
                    habits=Habits(ping_every=None, learn_rooms=False), backoff=fast_backoff,
                )
                assert await teacher.start()
                for typed in (f"/op {secret}", "/topic fractions", "/lock", "/mute carol 10", "/ban bob spam"):
                    action = commands.parse(typed)
                    assert action is not None, typed
                    await teacher.perform(action)
                await until(lambda: "you banned bob" in listener.text())
                assert teacher.state.operator
                await asyncio.to_thread(stop, first)
                _, restarted_port, again_line = await asyncio.to_thread(start, db, "--port", str(port))
                second = _
                assert restarted_port == port
                assert f"operator secret: {secret} (kept from the last run)" in again_line
                await until(lambda: "reconnected" in listener.text(), timeout=20)
                await until(lambda: teacher.state.operator, timeout=10)
                await teacher.quit()

            asyncio.run(asyncio.wait_for(lesson(), 60))
        assert "not an operator any more" not in listener.text()
        with Client(port) as carol:
            welcome = carol.join("carol")
            assert welcome["topic"] == "fractions" and welcome["locked"] is True
            assert welcome["muted"]["by"] == "teacher" and welcome["muted"]["minutes"] in (9, 10)
            carol.send({"type": "say", "text": "can I?"})
            assert carol.expect("error")["code"] == "not_allowed"
        with Client(port, source="127.0.0.2") as bob:
            refused = bob.expect("error")
            assert refused["code"] == "not_allowed" and "banned" in refused["message"]
    finally:
        finish(first)
        if second is not None:
            finish(second)


@pytest.mark.timeout(60)
def test_memory_db_keeps_nothing_and_a_new_secret_is_drawn(tmp_path: Path) -> None:
    """--db :memory: (as documented) keeps nothing: a restart draws a new secret and forgets the topic."""
    first, port = start_server("--no-udp", "--rate", "0")
    try:
        line = read_until(first, r"operator secret: ")[-1]
        secret = re.search(r"operator secret: (\S+)", line).group(1)  # type: ignore[union-attr]
        with Client(port) as teacher:
            teacher.join("teacher")
            teacher.send({"type": "op", "secret": secret})
            teacher.expect("notice", event="op")
            teacher.send({"type": "topic", "text": "gone soon"})
            teacher.expect("notice", event="topic")
        stop(first)
        again, port = start_server("--no-udp", "--rate", "0", "--port", str(port))
        try:
            line = read_until(again, r"operator secret: ")[-1]
            assert secret not in line and "kept" not in line
            with Client(port) as teacher:
                assert "topic" not in teacher.join("teacher")
        finally:
            finish(again)
    finally:
        finish(first)
