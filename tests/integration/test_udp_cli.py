"""The real commands over UDP: chatsrv's UDP flags and messages, chatclient --udp in line mode."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration.test_cli import ENV, ROOT, client, finish, read_until, run_briefly, start_server


@pytest.fixture
def lossy_server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    process, port = start_server("--rate", "0", "--udp-loss", "20", "--seed", "5")
    yield process, port
    finish(process)


def test_listening_line_names_both_transports() -> None:
    """The start-up line says TCP and UDP share the port, in the form scripts parse; --no-udp says TCP only."""
    for flags, expected in (((), "(TCP and UDP)"), (("--no-udp",), "(TCP)")):
        process = subprocess.Popen(
            [sys.executable, "-m", "chatsrv", "--host", "127.0.0.1", "--port", "0", "--db", ":memory:", *flags],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert re.search(r"listening on (\S+) port (\d+)", line), line
            assert line.rstrip().endswith(expected), line
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(5) == 0
            finish(process)


def test_tcp_and_udp_line_clients_chat(lossy_server) -> None:
    """The README scenario: a TCP and a UDP client chat both ways; /stats shows the injected loss on the UDP side."""
    server, port = lossy_server
    assert server.stdout is not None
    tom = client(port, "tom")
    uma = None
    try:
        read_until(tom, r"you are tom in lobby")
        uma = client(port, "uma", "--udp")
        read_until(uma, r"you are uma in lobby")
        read_until(tom, r"-> uma joined lobby")
        assert tom.stdin and uma.stdin
        uma.stdin.write("hello from udp\n")
        uma.stdin.flush()
        read_until(tom, r"<uma> hello from udp")
        # 20 % of what the server sends uma is dropped on purpose: send until one arrives.
        for number in range(20):
            tom.stdin.write(f"hello from tcp {number}\n")
            tom.stdin.flush()
            try:
                read_until(uma, r"<tom> hello from tcp", timeout=0.5)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("none of 20 messages reached the UDP client")
        for number in range(30):
            tom.stdin.write(f"more {number}\n")
        tom.stdin.flush()
        read_until(tom, r"<tom> more 29")
        lines: list[str] = []
        for _ in range(20):  # the stats reply can be lost too
            uma.stdin.write("/stats\n")
            uma.stdin.flush()
            try:
                lines = read_until(uma, r"fault injection caused", timeout=0.5)
                break
            except AssertionError:
                continue
        mine = next(line for line in lines if "your view:" in line)
        injected = lines[-1]
        client_lost = int(re.search(r"lost (\d+)", mine).group(1))  # type: ignore[union-attr]
        server_lost = int(re.search(r"lost (\d+)", injected).group(1))  # type: ignore[union-attr]
        assert server_lost > 0 and client_lost == server_lost
        uma.stdin.close()
        assert uma.wait(5) == 0
        read_until(tom, r"-> uma left \(quit\)")
    finally:
        finish(tom, *([uma] if uma else []))


def test_udp_client_without_server_says_so_and_exits_1() -> None:
    """chatclient --udp to a port where nothing answers: the exact one-line message, exit 1, after 3 tries."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "chatclient", "--udp", "--host", "127.0.0.1", "--port", str(port), "--nick", "x"],
        cwd=ROOT,
        env=ENV,
        input="",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"chatclient: no answer from 127.0.0.1:{port} over UDP after 3 tries: is the server running, is UDP blocked?\n"
    )
    assert 2.5 < time.monotonic() - started < 10


def test_udp_client_sees_shutdown_and_exits_1() -> None:
    """SIGINT on the server: the UDP client shows the notice and its own leaving, then exits 1 saying so."""
    server, port = start_server("--rate", "0")
    uma = client(port, "uma", "--udp")
    try:
        read_until(uma, r"you are uma")
        server.send_signal(signal.SIGINT)
        assert server.wait(5) == 0
        lines = read_until(uma, r"you left lobby \(shutdown\)")
        assert any("shutting down" in line for line in lines)
        assert uma.wait(5) == 1
        assert uma.stderr and "lost" in uma.stderr.read()
    finally:
        finish(uma, server)


def test_udp_port_in_use_exits_2_with_one_line() -> None:
    """A UDP port already taken: one clear line naming UDP, exit 2, no traceback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        result = run_briefly(
            "-m", "chatsrv", "--host", "127.0.0.1", "--port", "0", "--udp-port", str(port), "--db", ":memory:"
        )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"chatsrv: cannot listen on 127.0.0.1 UDP port {port}: address already in use "
        "(try another --udp-port, or --no-udp)"
    )


def test_fault_injection_is_announced() -> None:
    """The server says at start which faults it injects, with the seed to repeat the run."""
    process, _ = start_server("--udp-loss", "10", "--udp-delay", "50:10", "--seed", "3")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == (
            "UDP fault injection: loss 10%, duplicate 0%, reorder 0%, delay 50±10 ms, seed 3 (on what the server sends)"
        )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(5)
        finish(process)


def test_help_mentions_udp() -> None:
    """--help of both commands explains the UDP options."""
    server_help = run_briefly("-m", "chatsrv", "--help").stdout
    client_help = run_briefly("-m", "chatclient", "--help").stdout
    for flag in (
        "--udp-port",
        "--no-udp",
        "--peer-timeout",
        "--max-datagram",
        "--udp-loss",
        "--udp-dup",
        "--udp-reorder",
        "--udp-delay",
        "--seed",
    ):
        assert flag in server_help
    assert "--udp" in client_help


def test_a_piped_udp_client_waits_for_its_last_echo_like_tcp() -> None:
    """`printf 'hi\\nbye now\\n' | chatclient --udp` shows both lines come back before it exits 0, as over TCP."""
    process, port = start_server("--rate", "0")
    try:
        for nick, flags in (("pipe_tcp", ()), ("pipe_udp", ("--udp",)), ("pipe_udp2", ("--udp",))):
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "chatclient",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--nick",
                    nick,
                    *flags,
                ],
                cwd=ROOT,
                env=ENV,
                input="hi\nbye now\n",
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert f"<{nick}> hi" in result.stdout and f"<{nick}> bye now" in result.stdout, (flags, result.stdout)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(5)
        finish(process)
