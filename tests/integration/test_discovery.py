"""LAN discovery on loopback: real servers answer `discover` probes; chatclient finds, lists and joins them.

Only unicast probes to 127.0.0.1 here (--discover-addr): broadcasts are tried
in network namespaces only (test_discovery_netns.py).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from chatclient.discovery import PROBE_SIZE, probe
from chatsrv.app import Server
from chatsrv.discovery import MAX_REPLY
from lanchat.wire import decode_payload, encode_payload
from tests.conftest import ServerFactory
from tests.helpers import Client, UDPClient
from tests.integration.test_cli import ENV, ROOT

WAIT = "0.4"  # --discover-wait for loopback, where answers take well under a millisecond


def padded(kind: str, size: int) -> bytes:
    """A payload of type `kind` padded to exactly `size` bytes (at least the bare payload)."""
    bare = encode_payload({"type": kind, "pad": ""})
    return encode_payload({"type": kind, "pad": "." * max(0, size - len(bare))})


@pytest.fixture
def prober(server: Server) -> Iterator[UDPClient]:
    assert server.udp is not None
    client = UDPClient(server.udp.port)
    yield client
    client.close()


def answers_to(client: UDPClient, data: bytes) -> list[bytes]:
    """Send `data`, then a padded `ping` that is sure to get `not_joined`; return what came before that.

    One thread handles a server's datagrams in arrival order (docs/protocol.md §2),
    so once the ping's answer is here, any answer to `data` is here too:
    "no answer" is proved without waiting for a timeout.
    """
    client.send_raw(data)
    client.send_raw(padded("ping", 200))
    before: list[bytes] = []
    for _ in range(10):
        datagram = client.recv_datagram()
        assert datagram is not None, "the server did not answer the marker ping"
        if decode_payload(datagram).get("code") == "not_joined":
            return before
        before.append(datagram)
    raise AssertionError(f"no not_joined after {before}")


def test_probe_to_loopback_is_answered(make_server: ServerFactory) -> None:
    """A padded `discover` to 127.0.0.1 gets one `server_info` with the name, both ports, version and no hello
    needed."""
    server = make_server("--name", "Room 101", "--udp-port", "0")
    assert server.udp is not None
    client = UDPClient(server.udp.port)
    try:
        replies = answers_to(client, probe())
    finally:
        client.close()
    assert len(replies) == 1
    answer = decode_payload(replies[0])
    assert answer["type"] == "server_info" and answer["seq"] == 0
    assert (answer["name"], answer["tcp_port"], answer["udp_port"]) == ("Room 101", server.port, server.udp.port)
    assert answer["version"] and answer["users"] == 0 and answer["password_required"] is False
    assert server.udp.peer_count() == 0  # a probe registers nobody


def _fill_rooms(server: Server, count: int) -> list[Client]:
    """`count` users, each alone in a room with a long name, so the full reply is over MAX_REPLY."""
    clients = []
    for number in range(count):
        client = Client(server.port)
        clients.append(client)
        client.join(f"secretnick{number:02d}", f"a-long-room-name-number-{number:02d}")
    return clients


@pytest.mark.parametrize("size", [len(b'{"type":"discover"}'), 40, 80, 120, 200, 300, PROBE_SIZE, 1000, 3000])
def test_reply_is_at_most_three_times_the_probe(make_server: ServerFactory, size: int) -> None:
    """For every probe size, an unpadded 19-byte one included, the reply is at most 3x the probe's bytes (or absent)."""
    server = make_server("--max-per-ip", "0", "--rate", "0")
    assert server.udp is not None
    clients = _fill_rooms(server, 30)
    prober = UDPClient(server.udp.port)
    try:
        data = encode_payload({"type": "discover"}) if size == 19 else padded("discover", size)
        assert len(data) == size
        replies = answers_to(prober, data)
    finally:
        prober.close()
        for client in clients:
            client.close()
    assert len(replies) <= 1
    for reply in replies:
        assert len(reply) <= 3 * size and len(reply) <= MAX_REPLY
        assert decode_payload(reply)["type"] == "server_info"
    if size == 19:
        assert replies == []  # the bare reply alone is bigger than 57 bytes: silence, not amplification
    if size == PROBE_SIZE:
        answer = decode_payload(replies[0])
        assert answer["room_count"] == 30 and 0 < len(answer["rooms"]) < 30  # cut to fit, busiest first


def test_reply_reveals_no_nick(server: Server, prober: UDPClient) -> None:
    """Replies carry counts and room names, never nicks."""
    alice, bob = Client(server.port), Client(server.port)
    try:
        alice.join("alice_secret", "maths")
        bob.join("bob_secret", "maths")
        (reply,) = answers_to(prober, probe())
    finally:
        alice.close()
        bob.close()
    answer = decode_payload(reply)
    assert answer["users"] == 2 and answer["rooms"] == [{"name": "maths", "users": 2}]
    assert b"secret" not in reply


def test_password_server_reveals_no_rooms_and_no_password(make_server: ServerFactory) -> None:
    """With chatsrv --password the reply says a password is needed, and has no room names, nicks or password."""
    server = make_server("--password", "hunter2-pass")
    assert server.udp is not None
    alice = Client(server.port)
    prober = UDPClient(server.udp.port)
    try:
        alice.send({"type": "hello", "nick": "alice_secret", "room": "maths", "password": "hunter2-pass"})
        alice.expect("welcome")
        (reply,) = answers_to(prober, probe())
    finally:
        alice.close()
        prober.close()
    answer = decode_payload(reply)
    assert answer["password_required"] is True and "rooms" not in answer and answer["users"] == 1
    assert b"secret" not in reply and b"maths" not in reply and b"hunter2" not in reply


def test_refused_address_gets_no_answer(make_server: ServerFactory) -> None:
    """An address chatsrv --deny keeps out gets no server_info; an allowed one does."""
    server = make_server("--deny", "127.0.0.99/32")
    assert server.udp is not None
    refused, allowed = UDPClient(server.udp.port, source="127.0.0.99"), UDPClient(server.udp.port)
    try:
        assert answers_to(refused, probe()) == []
        assert len(answers_to(allowed, probe())) == 1
    finally:
        refused.close()
        allowed.close()


def test_no_discovery_gives_no_answer(make_server: ServerFactory) -> None:
    """With --no-discovery a probe gets nothing at all (not even an error), while chat over UDP still works."""
    server = make_server("--no-discovery")
    assert server.udp is not None
    prober = UDPClient(server.udp.port)
    try:
        assert answers_to(prober, probe()) == []
        prober.join("still_here")
    finally:
        prober.send({"type": "bye"})
        prober.close()


# --- chatclient -----------------------------------------------------------------------


def chatclient(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatclient", *args],
        cwd=ROOT,
        env=ENV,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def addresses(*servers: Server) -> list[str]:
    flags: list[str] = []
    for server in servers:
        assert server.udp is not None
        flags += ["--discover-addr", f"127.0.0.1:{server.udp.port}"]
    return flags


@pytest.fixture
def two_servers(make_server: ServerFactory) -> tuple[Server, Server]:
    return make_server("--name", "Room 101"), make_server("--name", "Room 102")


def test_client_lists_two_servers_on_two_ports(two_servers: tuple[Server, Server]) -> None:
    """chatclient --discover lists both servers with their names, addresses, ports and the command to join each."""
    first, second = two_servers
    result = chatclient("--discover", *addresses(first, second), "--discover-wait", WAIT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "2 lanchat servers answered:"
    listed = "\n".join(lines)
    for name, server in (("Room 101", first), ("Room 102", second)):
        assert f'"{name}" at 127.0.0.1 port {server.port}: 0 users' in listed
        assert f"chatclient --host 127.0.0.1 --port {server.port}" in listed


def test_client_without_host_joins_the_only_server(make_server: ServerFactory) -> None:
    """No --host and one server answers: chatclient says which and joins it (line mode over a pipe)."""
    server = make_server("--name", "Room 101")
    result = chatclient("--nick", "amy", *addresses(server), "--discover-wait", WAIT, stdin="hi from amy\n")
    assert result.returncode == 0, result.stderr
    assert f'chatclient: joining "Room 101" at 127.0.0.1 port {server.port}' in result.stderr
    assert "you are amy in lobby on Room 101" in result.stdout and "<amy> hi from amy" in result.stdout


def test_client_joins_the_udp_port_with_udp(make_server: ServerFactory) -> None:
    """With --udp the client joins the UDP port the answer gave, even when it differs from the TCP one."""
    server = make_server("--name", "Room 101", "--udp-port", "0")
    assert server.udp is not None and server.udp.port != server.port
    result = chatclient("--udp", "--nick", "uma", *addresses(server), "--discover-wait", WAIT)
    assert result.returncode == 0, result.stderr
    assert f'joining "Room 101" at 127.0.0.1 UDP port {server.udp.port}' in result.stderr
    assert "you are uma in lobby on Room 101" in result.stdout  # nothing listens on TCP at that port: it was UDP


def test_client_without_host_and_several_servers_lists_them_when_it_cannot_ask(
    two_servers: tuple[Server, Server],
) -> None:
    """Several answers and stdin is a pipe: exit 1 with both servers and their --host commands on stderr."""
    first, second = two_servers
    result = chatclient("--nick", "amy", *addresses(first, second), "--discover-wait", WAIT, stdin="hi\n")
    assert result.returncode == 1
    assert "2 servers answered; choose one with --host" in result.stderr
    assert f"chatclient --host 127.0.0.1 --port {first.port}" in result.stderr
    assert f"chatclient --host 127.0.0.1 --port {second.port}" in result.stderr
    assert result.stdout == ""


def test_client_finding_nothing_explains(make_server: ServerFactory) -> None:
    """Nobody answers (a --no-discovery server): exit 1, how to give the address, and why broadcasts may not arrive."""
    hidden = make_server("--no-discovery")
    for args in (("--discover",), ("--nick", "amy")):
        result = chatclient(*args, *addresses(hidden), "--discover-wait", WAIT)
        assert result.returncode == 1
        assert "chatclient: no lanchat server answered within 0.4 s" in result.stderr
        assert "chatclient --host ADDRESS" in result.stderr and "Wi-Fi" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--host", "127.0.0.1", "--discover"), "--host joins that address"),
        (("--discover-addr", "127.0.0.1:99999"), "not a port"),
        (("--discover-wait", "0"), "--discover-wait"),
    ],
)
def test_client_discovery_flag_problems_are_one_line(args: tuple[str, ...], words: str) -> None:
    """Conflicting or bad discovery flags: one line on stderr, exit 2."""
    result = chatclient(*args)
    assert result.returncode == 2 and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(30)
def test_client_in_a_terminal_asks_which_server(two_servers: tuple[Server, Server]) -> None:
    """In a terminal, several answers give a numbered prompt; typing 2 joins the second server."""
    pexpect: Any = pytest.importorskip("pexpect")
    first, second = two_servers
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chatclient", "--plain", "--nick", "pia", *addresses(first, second), "--discover-wait", WAIT],
        cwd=str(ROOT),
        env=ENV,
        dimensions=(24, 80),
        encoding="utf-8",
        timeout=10,
    )
    try:
        child.expect(r"join which one\? \[1-2, Enter: 1, q: quit\] ")
        assert '1. "Room 101"' in child.before and '2. "Room 102"' in child.before
        child.sendline("2")
        child.expect("you are pia in lobby on Room 102")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


@pytest.mark.timeout(30)
def test_terminal_ui_shows_a_pick_list(two_servers: tuple[Server, Server]) -> None:
    """In the terminal UI, several answers give a pick list; Down and Enter join the second server's chat."""
    from tests.integration.test_ui_terminal import Terminal

    first, second = two_servers
    terminal = Terminal("--nick", "pia", *addresses(first, second), "--discover-wait", WAIT)
    try:
        terminal.wait_for("Which one do you join?")
        assert '1. "Room 101" at 127.0.0.1' in terminal.text() and '2. "Room 102" at 127.0.0.1' in terminal.text()
        terminal.type("\x1b[B")
        terminal.wait_for(lambda: '>  2. "Room 102"' in terminal.text())
        terminal.type("\r")
        terminal.wait_for("you are pia in lobby on Room 102")
        terminal.type("/quit\r")
        assert terminal.wait_exit() == 0
    finally:
        terminal.close()


# --- the password and servers found by discovery ----------------------------------------


class Impostor:
    """A fake server on loopback: answers one discovery probe with a copied id, and listens on TCP for a password."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(5)
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(4)
        self.tcp.setblocking(False)
        self.thread = threading.Thread(target=self._answer, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.udp.getsockname()[1]}"

    def _answer(self) -> None:
        answer = {
            "type": "server_info",
            "id": "copied-id",
            "name": "Room 101",
            "tcp_port": self.tcp.getsockname()[1],
            "users": 3,
            "version": "0.1.0",
            "password_required": False,
        }
        for _ in range(2):  # the client probes twice; answer both, then stop
            try:
                _, source = self.udp.recvfrom(2048)
            except OSError:
                return
            self.udp.sendto(encode_payload(answer), source)

    def was_connected(self) -> bool:
        try:
            connection, _ = self.tcp.accept()
        except BlockingIOError:
            return False
        connection.close()
        return True

    def close(self) -> None:
        self.udp.close()
        self.thread.join(10)
        self.tcp.close()


def test_password_from_the_environment_is_not_sent_to_a_found_server_over_a_pipe() -> None:
    """LANCHAT_PASSWORD set and no --host: the only server found is not sent the password (nor connected to)."""
    impostor = Impostor()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "chatclient",
                "--nick",
                "amy",
                "--discover-addr",
                impostor.address,
                "--discover-wait",
                WAIT,
            ],
            cwd=ROOT,
            env={**ENV, "LANCHAT_PASSWORD": "class-secret"},
            input="hi\n",
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert result.returncode == 1
        assert "not sending the password (LANCHAT_PASSWORD) to a server found by discovery" in result.stderr
        assert f"chatclient --host 127.0.0.1 --port {impostor.tcp.getsockname()[1]}" in result.stderr
        assert not impostor.was_connected()
    finally:
        impostor.close()


@pytest.mark.timeout(30)
def test_in_a_terminal_the_password_goes_after_the_user_confirms_the_address(make_server: ServerFactory) -> None:
    """In a terminal, one server found and --password given: the client shows the address and joins only after y."""
    pexpect: Any = pytest.importorskip("pexpect")
    server = make_server("--name", "Room 101", "--password", "class-secret")
    for answer, joined in (("n", False), ("y", True)):
        child = pexpect.spawn(
            sys.executable,
            [
                "-m",
                "chatclient",
                "--plain",
                "--nick",
                "pia",
                "--password",
                "class-secret",
                *addresses(server),
                "--discover-wait",
                WAIT,
            ],
            cwd=str(ROOT),
            env=ENV,
            dimensions=(24, 80),
            encoding="utf-8",
            timeout=10,
        )
        try:
            child.expect(rf"send the password \(--password\) to 127.0.0.1 port {server.port}\?.*\[y/N\] ")
            child.sendline(answer)
            if joined:
                child.expect("you are pia in lobby on Room 101")
                child.sendeof()
            else:
                child.expect(
                    f"not joining. To join that server on purpose: chatclient --host 127.0.0.1 --port {server.port}"
                )
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == (0 if joined else 1)
