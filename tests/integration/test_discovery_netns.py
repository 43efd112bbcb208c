"""Discovery by real broadcast, on a private LAN: two network namespaces joined by a veth pair.

chatsrv runs in one namespace on its default port, chatclient in the other;
the client can only reach the server through the broadcast address of the
veth link (10.99.0.255), so finding it proves broadcast discovery works.
Nothing is ever broadcast from the machine's own namespace. Needs root and
`ip` (iproute2); skips with a one-line reason otherwise. The namespaces
(and the veth pair with them) are always removed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.integration.test_cli import ENV, ROOT

SERVER_ADDRESS = "10.99.0.1"
CLIENT_ADDRESS = "10.99.0.2"


def missing_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs ip (Debian: apt-get install -y iproute2)"
    return None


MISSING = missing_prerequisites()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"netns discovery: {MISSING}")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@dataclass
class Lan:
    """Two namespaces on one /24 link, and the processes started inside them (ended at teardown)."""

    server_ns: str
    client_ns: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def command(self, namespace: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", namespace, sys.executable, *args]

    def start_server(self, *flags: str) -> None:
        """chatsrv in the server namespace, on every address, default port; returns once it listens."""
        process = subprocess.Popen(
            self.command(self.server_ns, "-m", "chatsrv", "--log-level", "warning", "--db", ":memory:", *flags),
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        assert process.stdout is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if "Ctrl-C stops the server" in line:  # the last start-up line: both sockets are bound
                return
            if not line and process.poll() is not None:
                break
        raise AssertionError(
            f"chatsrv did not start in {self.server_ns}: {process.stderr.read() if process.stderr else ''}"
        )

    def client(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """chatclient in the client namespace (the only place a test broadcasts from)."""
        return subprocess.run(
            self.command(self.client_ns, "-m", "chatclient", *args),
            cwd=ROOT,
            env=ENV,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )


def namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    tag = f"ld{os.getpid()}{secrets.token_hex(2)}"  # unique per run; interface names stay under 16 bytes
    network = Lan(f"{tag}s", f"{tag}c")
    created: list[str] = []
    try:
        try:
            for namespace in (network.server_ns, network.client_ns):
                ip("netns", "add", namespace)
                created.append(namespace)
            ip("link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b")
            ip("link", "set", f"{tag}a", "netns", network.server_ns)
            ip("link", "set", f"{tag}b", "netns", network.client_ns)
            for namespace, device, address in (
                (network.server_ns, f"{tag}a", SERVER_ADDRESS),
                (network.client_ns, f"{tag}b", CLIENT_ADDRESS),
            ):
                ip("-n", namespace, "addr", "add", f"{address}/24", "brd", "+", "dev", device)
                ip("-n", namespace, "link", "set", device, "up")
                ip("-n", namespace, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as error:
            pytest.skip(f"netns discovery: cannot build the namespaces ({(error.stderr or '').strip() or error})")
        yield network
    finally:
        for process in network.processes:
            if process.poll() is None:
                process.kill()  # our own chatsrv, by PID
            process.wait(5)
            for stream in (process.stdout, process.stderr):
                if stream:
                    stream.close()
        for namespace in created:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10, check=False)
        assert not set(created) & set(namespaces()), "a test namespace was left behind"


@pytest.fixture(scope="module")
def lan_with_server(lan: Lan) -> Lan:
    lan.start_server("--name", "Room 101")
    return lan


@pytest.mark.timeout(30)
def test_discover_finds_the_server_by_broadcast(lan_with_server: Lan) -> None:
    """chatclient --discover in the other namespace finds the server through the link's broadcast address."""
    result = lan_with_server.client("--discover")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "1 lanchat server answered:",
        f'  1. "Room 101" at {SERVER_ADDRESS} port 9009: 0 users',
        f"     chatclient --host {SERVER_ADDRESS} --port 9009",
    ]


@pytest.mark.timeout(30)
def test_chatclient_with_no_arguments_joins_the_only_server(lan_with_server: Lan) -> None:
    """Plain `chatclient`, no flags at all, over a pipe: it finds the one server on the LAN, joins and chats."""
    result = lan_with_server.client(stdin="hi\n")
    assert result.returncode == 0, result.stderr
    assert f'chatclient: joining "Room 101" at {SERVER_ADDRESS} port 9009' in result.stderr
    assert re.search(r"you are \S+ in lobby on Room 101", result.stdout), result.stdout
    assert re.search(r"<\S+> hi$", result.stdout, re.MULTILINE), result.stdout
