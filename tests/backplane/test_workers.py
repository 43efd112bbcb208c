"""chatsrv --workers N: N nodes on one port (SO_REUSEPORT) joined by the backplane."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chatsrv import cluster
from lanchat import platforms
from tests.backplane.conftest import Redis
from tests.helpers import Client


def test_workers_share_one_port_and_one_chat(redis_server: Redis) -> None:
    command = [
        sys.executable,
        "-m",
        "chatsrv",
        "--workers",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        ":memory:",
        "--rate",
        "0",
        "--text-port",
        "0",
        "--backplane",
        redis_server.url,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.search(r"--workers 2: 2 nodes on 127\.0\.0\.1 port (\d+) \(SO_REUSEPORT", first)
        assert found, first
        port = int(found.group(1))
        ready: list[str] = []
        lines: list[str] = []
        deadline = time.monotonic() + 30
        doors: list[str] = []
        while (len(ready) < 2 or not any(line.startswith("discovery:") for line in lines)) and (
            time.monotonic() < deadline
        ):
            line = process.stdout.readline()
            assert line, "chatsrv --workers stopped"
            lines.append(line.rstrip())
            ready += re.findall(r"^node ([12]) of 2 ready, pid \d+; backplane: linked$", line.rstrip())
            doors += re.findall(r"^text door for nc and telnet on port (\d+): nc \S+ \1$", line.rstrip())
        assert sorted(ready) == ["1", "2"]
        # Node 1 opens the text door and says where (before, both nodes opened one on a port of their own,
        # unannounced; a fixed --text-port stopped them all, as the second node could not open it).
        assert len(doors) == 1, lines
        # The secret the nodes share was made up by --workers: the teacher must be told it (it was not).
        secrets = [found for line in lines for found in re.findall(r"^operator secret: (\S+) .*/op \1\)$", line)]
        assert len(secrets) == 1, "no operator secret printed"
        # One server's start-up lines: before, every node printed all of its own, interleaved, and each said
        # "operator secret: the one from LANCHAT_OP_SECRET (not shown ...)" right under the secret.
        assert not [line for line in lines if "not shown" in line or " listening on " in line]
        assert [line for line in lines if line.startswith("on this machine:")] == [
            f"on this machine: chatclient --host 127.0.0.1 --port {port} --nick NAME"
        ]
        assert sum(line == "Ctrl-C stops the server." for line in lines) == 1
        assert lines.count("over UDP: add --udp") == 1  # node 1 serves UDP on the same port
        # Node 1 also says where history goes and how discovery answers, once for all (before, --workers
        # printed neither: the teacher could not tell history was kept, nor that discovery was on).
        assert sum(line.startswith("history is kept in memory only") for line in lines) == 1, lines
        assert sum(line.startswith('discovery: answers as "') for line in lines) == 1, lines
        # After the --workers line: classmates join with (2 lines), on this machine, UDP, the secret, Ctrl-C, 2 nodes
        # and node 1's text door, history and discovery lines.
        assert len(lines) == 11, lines
        members = [Client(port) for _ in range(8)]
        try:
            for n, member in enumerate(members):
                member.join(f"m{n}")
            members[0].send({"type": "op", "secret": secrets[0]})
            members[0].expect("notice", event="op", nick="m0")
            for n, member in enumerate(members):
                member.send({"type": "say", "text": f"from m{n}"})
            for member in members:  # wherever the kernel put each one, everyone hears everyone, in one order
                seen: list[str] = []
                while len(seen) < 8:
                    payload = member.recv()
                    if payload["type"] == "message":
                        seen.append(payload["text"])
                assert sorted(seen) == sorted(f"from m{n}" for n in range(8))
            with socket.create_connection(("127.0.0.1", int(doors[0])), timeout=10) as door:
                door.sendall(b"tina\nhello from nc\n")  # the text door asks for a nick first
                heard = members[0].expect("message", text="hello from nc")
                assert heard["from"].startswith("tina")
        finally:
            for member in members:
                member.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the supervisor stops its nodes (a kill would orphan them)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_workers_need_a_backplane(capsys: pytest.CaptureFixture[str]) -> None:
    assert cluster.run_workers([], host="127.0.0.1", port=0, workers=2, backplane=None, op_secret_given=False) == 2
    assert "--workers needs --backplane" in capsys.readouterr().err


def test_workers_say_when_so_reuseport_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(platforms, "share_port", lambda sock: False)
    status = cluster.run_workers(
        [], host="127.0.0.1", port=0, workers=2, backplane="redis://127.0.0.1:1/0", op_secret_given=False
    )
    assert status == 2
    assert "--workers is not available on this system" in capsys.readouterr().err


def test_worker_flags() -> None:
    argv = ["--workers", "3", "--backplane", "redis://h/0", "--workers=2", "--port", "0"]
    assert cluster.worker_argv(argv, 9009) == [
        "--backplane",
        "redis://h/0",
        "--port",
        "0",
        "--port",
        "9009",
        cluster.SHARED_PORT_FLAG,
    ]


def test_backplane_without_the_redis_package_says_how_to_install_it(tmp_path: Path) -> None:
    fake = tmp_path / "redis"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('no redis here')\n")
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatsrv",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            ":memory:",
            "--backplane",
            "redis://127.0.0.1:1/0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": path},
        check=False,
    )
    assert shown.returncode == 2
    assert "pip install 'lanchat[backplane]'" in shown.stderr


def test_workers_start_again_at_once_on_the_port_they_just_left() -> None:
    """A restart of `--workers` finds the port's old connections in TIME_WAIT, as one chatsrv does, and binds.

    Before, the port holder had no SO_REUSEADDR: `chatsrv --workers 2` said "Address already in use" for a
    minute after any chatsrv on that port had served a connection.
    """
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port)) as client:
        served, _ = listener.accept()
        served.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
        client.recv(1)
    listener.close()
    holder, held = cluster.reserve_port("127.0.0.1", port)
    holder.close()
    assert held == port


class _Child:
    """A stand-in for a node process: node 2 was killed (-9, as by `kill -9` or the OOM killer)."""

    def __init__(self, command: list[str], **options: Any) -> None:
        self.node = options["env"][cluster.NODE_VARIABLE]
        self.returncode: int | None = -9 if self.node == "2/2" else None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = 0  # asked to stop: a node exits 0
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9


def test_a_node_that_was_killed_makes_the_exit_status_a_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cluster.subprocess, "Popen", _Child)
    monkeypatch.setattr(platforms, "ask_to_stop", lambda child: None)
    status = cluster.run_workers(
        [], host="127.0.0.1", port=0, workers=2, backplane="redis://127.0.0.1:1/0", op_secret_given=True
    )
    assert "a node stopped; stopping the others" in capsys.readouterr().err
    assert status == 1  # was 0: max(-9, 0), so a service manager saw a clean stop and did not restart it


def test_a_node_that_crashes_after_it_served_is_started_again(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, a `kill -9` of one node stopped every node: all members of the machine were disconnected."""
    started: list[_Child] = []
    stops: list[Callable[[], None]] = []

    def popen(command: list[str], **options: Any) -> _Child:
        child = _Child(command, **options)
        if started and child.node == "2/2" and any(c.node == "2/2" for c in started):
            child.returncode = None  # the new node 2 runs
            stops[0]()  # and then the teacher stops it all
        started.append(child)
        return child

    def on_stop_signals(stop: Callable[[], None]) -> Callable[[], None]:
        stops.append(stop)
        return lambda: None

    monkeypatch.setattr(cluster, "RESTART_AFTER", 0.0)  # node 2 "served" long enough to count as crashed
    monkeypatch.setattr(cluster.subprocess, "Popen", popen)
    monkeypatch.setattr(platforms, "on_stop_signals", on_stop_signals)
    monkeypatch.setattr(platforms, "ask_to_stop", lambda child: None)
    status = cluster.run_workers(
        [], host="127.0.0.1", port=0, workers=2, backplane="redis://127.0.0.1:1/0", op_secret_given=True
    )
    assert "node 2 ended (exit code -9); starting it again" in capsys.readouterr().err
    assert len(started) == 3 and status == 0


def test_a_node_starts_no_nodes_of_its_own_whatever_its_flags_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """argparse takes `--work 2` for `--workers 2`, and the supervisor passed it on to its nodes: each node then
    started nodes of its own, and those theirs. A node (told its place) builds its one server instead."""
    from chatsrv import app

    class Built(Exception):
        pass

    def build_server(args: object) -> None:
        raise Built(args)

    started: list[object] = []
    monkeypatch.setenv(cluster.NODE_VARIABLE, "2/2")

    def run_workers(*args: object, **kwargs: object) -> int:
        started.append(args)
        return 0

    monkeypatch.setattr(cluster, "run_workers", run_workers)
    monkeypatch.setattr(app, "build_server", build_server)
    for module, name in ((app, "configure_logging"), (app.platforms, "console_safe_stdio"), (app.i18n, "setup")):
        monkeypatch.setattr(module, name, lambda *args, **kwargs: None)  # no process-wide change in the suite
    argv = ["--work", "2", "--text-port", "0", "--backplane", "redis://127.0.0.1:1/0", cluster.SHARED_PORT_FLAG]
    with pytest.raises(Built) as built:
        app.main(argv)
    assert started == []
    args = built.value.args[0]
    assert args.workers == 1 and args.text_port is None and args.no_udp  # node 2: UDP and the text door are node 1's


def test_workers_keep_the_secret_they_made_up_across_a_restart(tmp_path: Path) -> None:
    """`--workers` made up a new secret at every start: after a restart the teacher's client sent the old one
    and was refused. Now it is kept in --db, as one chatsrv keeps its own."""
    from chatsrv import app
    from chatsrv.options import build_parser

    def started(db: str) -> tuple[str, list[str]]:
        args = build_parser().parse_args(["--workers", "2", "--db", db, "--backplane", "redis://127.0.0.1:1/0"])
        secret = app.workers_op_secret(args)
        return secret, app.worker_start_lines(args, 9009, secret)

    first, lines = started(str(tmp_path / "lesson.db"))
    again, lines_again = started(str(tmp_path / "lesson.db"))
    assert again == first
    assert f"operator secret: {first}   (in chatclient type: /op {first})" in lines
    assert f"operator secret: {first} (kept from the last run)   (in chatclient type: /op {first})" in lines_again
    assert started(":memory:")[0] != started(":memory:")[0]  # nothing to keep it in


def test_a_node_says_what_it_says_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nodes share the supervisor's stdout: node 1's lines in one write, so no other node's line lands
    inside them (print() wrote a line and its newline apart, and the benchmark saw 'linkednode 1 of 2 ready')."""
    from types import SimpleNamespace

    from chatsrv import app
    from chatsrv.options import build_parser

    writes: list[str] = []
    monkeypatch.setattr(sys, "stdout", SimpleNamespace(write=writes.append, flush=lambda: None))
    monkeypatch.setenv(cluster.NODE_VARIABLE, "1/2")
    args = build_parser().parse_args(["--host", "127.0.0.1", "--backplane", "redis://127.0.0.1:1/0",
                                      cluster.SHARED_PORT_FLAG])
    store = SimpleNamespace(description="history is kept in memory only (--db :memory:): nothing is saved")
    server = SimpleNamespace(backplane=SimpleNamespace(linked=True), text=SimpleNamespace(port=9010), udp=None,
                             service=SimpleNamespace(store=store))
    app.print_start_lines(args, server)  # type: ignore[arg-type]
    assert len(writes) == 1, writes
    lines = writes[0].splitlines()
    assert re.fullmatch(r"node 1 of 2 ready, pid \d+; backplane: linked", lines[0])
    assert lines[1].startswith("text door for nc and telnet on port 9010") and lines[2] == store.description
    assert writes[0].endswith("\n")
