"""chatsrv and chatclient as processes without Linux's extras: what Windows and macOS give them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from lanchat.netinfo import linux_interfaces
from lanchat.wire import encode_frame, encode_payload
from tests.helpers import Client
from tests.platform.conftest import ROOT, Launcher, hidden_env

PROBE = """
import asyncio, json, os, signal, socket
from lanchat import netinfo, platforms
hidden = []
for name in ("resource", "fcntl", "termios"):
    try:
        __import__(name)
    except ImportError:
        hidden.append(name)
loop = asyncio.new_event_loop()
try:
    loop.add_signal_handler(signal.SIGTERM, print)
    handlers = "work"
except NotImplementedError:
    handlers = "raise"
loop.close()
print(json.dumps({
    "sitecustomize": os.environ.get("LANCHAT_LINUX_HIDDEN"),
    "hidden": hidden,
    "tcp_info": hasattr(socket, "TCP_INFO"),
    "share_port": platforms.share_port(socket.socket()),
    "sighup": hasattr(signal, "SIGHUP"),
    "signal_handlers": handlers,
    "file_limit": platforms.raise_open_file_limit(),
    "ioctl": platforms.LINUX_IOCTL is not None,
    "probe": platforms.read_tcp_info(socket.socket(), 8) is not None,
    "interfaces": [i.name for i in netinfo.ipv4_interfaces()],
}))
"""


def run_hidden(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=hidden_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_linux_extras_really_are_hidden_and_the_fallbacks_chosen() -> None:
    """Under hide_linux the modules, options and loop signals are gone, and lanchat.platforms picks every fallback."""
    result = run_hidden(PROBE)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {
        "sitecustomize": "1",
        "hidden": ["resource", "fcntl", "termios"],
        "tcp_info": False,
        "share_port": False,
        "sighup": False,
        "signal_handlers": "raise",
        "file_limit": None,
        "ioctl": False,
        "probe": False,
        "interfaces": seen["interfaces"],
    }
    assert seen["interfaces"][0] == "loopback" and set(seen["interfaces"]) <= {"loopback", "default route", "host name"}


def test_join_hints_name_an_address_without_the_linux_ioctls() -> None:
    """Listening on 0.0.0.0, the start-up lines still give classmates an address (the portable lookup)."""
    if not any(not interface.is_loopback for interface in linux_interfaces()):
        pytest.skip("this machine has no non-loopback IPv4 address to find")
    result = run_hidden("from chatsrv.app import join_hints; print('\\n'.join(join_hints('0.0.0.0', 9009)))")
    assert result.returncode == 0, result.stderr
    hints = result.stdout.splitlines()
    assert hints and all(hint.startswith("chatclient --host ") and "127.0.0.1" not in hint for hint in hints)


@pytest.mark.timeout(60)
def test_chat_quit_and_ctrl_c_without_linux_extras(hidden: Launcher) -> None:
    """Server, two line-mode TCP clients and a UDP client chat; /quit exits 0; Ctrl-C stops the server in 2 s."""
    server, port, start_lines = hidden.server()
    assert "classmates join with:" in start_lines
    assert f"  chatclient --host 127.0.0.1 --port {port} --nick NAME" in start_lines
    alice = hidden.client(port, "alice")
    bob = hidden.client(port, "bob")
    carol = hidden.client(port, "carol", "--udp")
    alice.say("hello from alice")
    bob.stdout.until(r"<alice> hello from alice")
    carol.stdout.until(r"<alice> hello from alice")
    carol.say("hello over udp")
    alice.stdout.until(r"<carol> hello over udp")
    bob.stdout.until(r"<carol> hello over udp")
    for member in (bob, carol, alice):
        member.say("/quit")
        assert member.exit_code(10) == 0
        assert "Traceback" not in member.error_text()
    started = time.monotonic()
    server.popen.send_signal(signal.SIGINT)
    assert server.exit_code(2.0) == 0, "Ctrl-C did not stop the server within 2 s"
    assert time.monotonic() - started < 2.0
    assert "Traceback" not in server.error_text()


@pytest.mark.timeout(60)
def test_sigterm_stops_the_server_and_tells_the_clients(hidden: Launcher) -> None:
    """SIGTERM (what a service manager sends) stops the server politely: connected clients hear why."""
    server, port, _ = hidden.server()
    alice = hidden.client(port, "alice")
    server.popen.send_signal(signal.SIGTERM)
    assert server.exit_code(5) == 0
    alice.stdout.until(r"shutting down")
    assert alice.exit_code(10) == 1
    assert "Traceback" not in alice.error_text()


@pytest.mark.timeout(60)
def test_workers_without_so_reuseport_say_so_in_one_line_and_exit_2() -> None:
    """`chatsrv --workers 2` where SO_REUSEPORT is missing: one line that says what to do instead, exit code 2."""
    result = run_hidden(
        "import sys; from chatsrv.app import main; sys.exit(main(['--workers', '2', '--host', '127.0.0.1', "
        "'--port', '0', '--backplane', 'redis://127.0.0.1:1/0']))"
    )
    assert result.returncode == 2, result.stderr
    expected = ("chatsrv: --workers is not available on this system (no SO_REUSEPORT that spreads connections); "
                "run one chatsrv per port with --backplane instead")
    assert result.stderr.splitlines() == [expected]
    assert result.stdout == ""  # no start line: no node was started


@pytest.mark.parametrize("log_level", ["info", "debug"])
def test_a_failed_start_up_stops_the_listeners_and_exits_with_one_line(hidden: Launcher, log_level: str) -> None:
    """An exception after the listeners started (the interface lookup fails) exits 1 with one line, never hangs."""
    server = hidden.start(
        ["-m", "chatsrv", "--host", "127.0.0.1", "--port", "0", "--db", ":memory:", "--log-level", log_level],
        LANCHAT_TEST_BREAK_JOIN_HINTS="1",
    )
    code = server.exit_code(10)
    assert code == 1, "chatsrv kept running after its start-up failed" if code is None else server.error_text()
    errors = server.error_text().splitlines()
    problem = [line for line in errors if line.startswith("chatsrv:")]
    expected = (
        "chatsrv: stopped, start-up failed: ImportError: No module named 'fcntl' "
        "(the interface lookup is broken on purpose) (--log-level debug shows where)"
    )
    assert problem == [expected]
    assert server.stdout.rest()[0].startswith("chatsrv ")  # the listeners had started
    if log_level == "info":
        assert all(line in problem or " INFO " in line for line in errors), errors
    else:
        assert "Traceback (most recent call last):" in errors and any("print_start_lines" in line for line in errors)


@pytest.mark.timeout(90)
def test_a_stuck_reader_is_dropped_as_slow_without_tcp_info(hidden: Launcher) -> None:
    """Without TCP_INFO the backpressure counts what the kernel took: a reader that stops is still dropped as slow,
    and the room is never held back for more than a moment."""
    _, port, _ = hidden.server("--outbox", "65536")
    with Client(port) as reader, Client(port, rcvbuf=4096) as stuck, Client(port) as sender:
        reader.join("reader")
        stuck.join("stuck")
        sender.join("sender")
        batch = b"".join(encode_frame(encode_payload({"type": "say", "text": "y" * 1000})) for _ in range(10))
        total = 3000  # about 3 MB: far beyond the stuck member's buffers and outbox
        received = echoed = 0
        left = None
        longest = 0.0
        for sent in range(10, total + 1, 10):
            started = time.monotonic()
            sender.send_raw(batch)
            while received < sent:  # the reader keeps up: it has everything sent so far
                payload = reader.recv()
                if payload["type"] == "message":
                    received += 1
                elif payload["type"] == "left":
                    left = payload
            longest = max(longest, time.monotonic() - started)
            while echoed < sent:
                echoed += sender.recv()["type"] == "message"
        if left is None:
            left = reader.expect("left", nick="stuck")
        assert left["nick"] == "stuck" and left["reason"] == "slow"
        assert received == total
        assert longest < 1.5, f"the room waited {longest:.2f} s for a batch"
