"""Teacher controls on a real server: password, allow/deny, operator secret, moderation.

Every scenario runs with TCP members, with UDP members, and in a mixed room
(the teacher over UDP, bob over TCP, carol over UDP, dave over TCP): the
rules live in the service, so both transports must behave the same.

Loopback only: 127.0.0.0/8 gives each test client its own source address
(bind to 127.0.0.2, 127.0.0.3 ...), which is what address rules and bans see.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatsrv.app import Server
from tests.helpers import Client, UDPClient, wait_until
from tests.integration.test_cli import client as chatclient_process
from tests.integration.test_cli import finish, read_until, start_server

OP_SECRET = "teach-op-123"
PASSWORD = "class101"
AnyClient = Client | UDPClient
TRANSPORTS = ["tcp", "udp", "mixed"]
MIXED = {"teacher": "udp", "bob": "tcp", "carol": "udp", "dave": "tcp"}


def transport_of(setup: str, nick: str) -> str:
    """The transport `nick` uses in a test set up as "tcp", "udp" or "mixed"."""
    return MIXED.get(nick, "tcp") if setup == "mixed" else setup


@pytest.fixture
def open_client() -> Iterator[Callable[..., AnyClient]]:
    """Open raw TCP or UDP clients from any 127.x source; all closed at teardown."""
    opened: list[AnyClient] = []

    def connect(server: Server, source: str = "127.0.0.1", transport: str = "tcp") -> AnyClient:
        if transport == "udp":
            assert server.udp is not None
            client: AnyClient = UDPClient(server.udp.port, source=source)
        else:
            client = Client(server.port, source=source)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


def hello(client: AnyClient, nick: str, **fields: Any) -> dict[str, Any]:
    """Say hello (over UDP with the cookie round-trip); the server's answer to it."""
    payload = {"type": "hello", "nick": nick, **fields}
    client.send(payload)
    answer = client.recv()
    if isinstance(client, UDPClient) and answer["type"] == "challenge":
        client.send({**payload, "cookie": answer["cookie"]})
        answer = client.recv()
    return answer


def session_over(client: AnyClient, server: Server, last: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """What the server sent until it ended the session, ending with a payload `last` accepts.

    TCP: the server closes the connection. UDP has nothing to close: the
    server forgets the peer, so later datagrams from it are a stranger's.
    """
    if isinstance(client, Client):
        received = client.wait_closed()
    else:
        received = [client.recv()]
        while not last(received[-1]):
            received.append(client.recv())
        assert server.udp is not None
        wait_until(lambda: server.udp.peer(client.address) is None)  # type: ignore[union-attr]
    assert received and last(received[-1]), received
    return received


def is_error(code: str) -> Callable[[dict[str, Any]], bool]:
    return lambda payload: payload.get("type") == "error" and payload.get("code") == code


def barrier(*clients: AnyClient) -> list[list[dict[str, Any]]]:
    """Everything each client received until now: a ping's pong marks the end.

    The server handles one member's payloads in order and queues an action's
    results before answering anything sent later, so whatever an earlier
    action sent a client arrives before that client's pong (over UDP on
    loopback nothing is lost or reordered).
    """
    got = []
    for number, client in enumerate(clients):
        client.send({"type": "ping", "id": f"barrier{number}"})
        seen = []
        while True:
            payload = client.recv()
            if payload.get("type") == "pong" and payload.get("id") == f"barrier{number}":
                break
            seen.append(payload)
        got.append(seen)
    return got


# --- password ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_password_missing_wrong_right(make_server, open_client, transport: str) -> None:
    """Without or with a wrong password: auth_failed and the session ends; with the right one: welcome."""
    server = make_server("--password", PASSWORD)
    for given in ({}, {"password": "class102"}):
        refused = open_client(server, "127.0.0.2", transport)
        error = hello(refused, "amy", **given)
        assert error["type"] == "error" and error["code"] == "auth_failed"
        if isinstance(refused, Client):
            refused.wait_closed()
        else:  # the error goes out first, then the peer is forgotten
            address = refused.address
            wait_until(lambda address=address: server.udp.peer(address) is None)
    right = open_client(server, "127.0.0.2", transport)
    assert hello(right, "amy", password=PASSWORD)["type"] == "welcome"


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_repeated_wrong_passwords_make_that_address_wait(make_server, open_client, transport: str) -> None:
    """After three wrong passwords from one address even the right one is refused for a while; others get in."""
    server = make_server("--password", PASSWORD)
    for attempt in range(3):
        guesser = open_client(server, "127.0.0.3", transport)
        assert hello(guesser, f"g{attempt}", password=f"guess{attempt}")["message"] == "wrong password"
    late = open_client(server, "127.0.0.3", transport)
    refused = hello(late, "late", password=PASSWORD)
    assert refused["code"] == "auth_failed" and "try again in" in refused["message"]
    other = open_client(server, "127.0.0.4", transport)
    assert hello(other, "other", password=PASSWORD)["type"] == "welcome"


# --- allow / deny --------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_allow_and_deny_by_source_address(make_server, open_client, transport: str) -> None:
    """--allow 127.0.0.0/30 --deny 127.0.0.2: .1 and .3 get in; .2 (denied) and .5 (not allowed) are refused."""
    server = make_server("--allow", "127.0.0.0/30", "--deny", "127.0.0.2")
    for source, admitted in (("127.0.0.1", True), ("127.0.0.2", False), ("127.0.0.3", True), ("127.0.0.5", False)):
        client = open_client(server, source, transport)
        nick = f"n{source.rsplit('.', 1)[1]}"
        if admitted:
            assert hello(client, nick)["type"] == "welcome"
        elif isinstance(client, Client):
            # Refused on connect, before any hello: the error is waiting for it.
            [error] = client.wait_closed()
            assert error["code"] == "not_allowed" and source in error["message"]
        else:
            # UDP: only the stateless challenge comes before the address is checked.
            error = hello(client, nick)
            assert error["code"] == "not_allowed" and source in error["message"]
            assert server.udp is not None and server.udp.peer(client.address) is None


# --- operators ------------------------------------------------------------------------


@pytest.fixture(params=TRANSPORTS)
def classroom(request, make_server, open_client) -> dict[str, Any]:
    """Known op secret: teacher (operator, .1), bob (.2), carol (.3) in lobby, dave (.4) in other."""
    server = make_server("--rate", "0", "--op-secret", OP_SECRET)
    people: dict[str, Any] = {"server": server, "setup": request.param}
    for nick, source, room in (
        ("teacher", "127.0.0.1", None),
        ("bob", "127.0.0.2", None),
        ("carol", "127.0.0.3", None),
        ("dave", "127.0.0.4", "other"),
    ):
        client = open_client(server, source, transport_of(request.param, nick))
        client.join(nick, room)
        people[nick] = client
    people["teacher"].send({"type": "op", "secret": OP_SECRET})
    people["teacher"].expect("notice", event="op")
    barrier(people["bob"], people["carol"], people["dave"])
    return people


def test_op_secret_brute_force_is_cut_off(classroom) -> None:
    """Five wrong operator secrets end the session; the room sees bob leave."""
    bob = classroom["bob"]
    for attempt in range(4):
        bob.send({"type": "op", "secret": f"guess{attempt}"})
        assert bob.expect("error")["code"] == "not_allowed"
    bob.send({"type": "op", "secret": "guess4"})
    rest = session_over(bob, classroom["server"], is_error("not_allowed"))
    assert [p["code"] for p in rest if p["type"] == "error"] == ["not_allowed"]
    classroom["carol"].expect("left", nick="bob", reason="error")


def is_kicked(payload: dict[str, Any]) -> bool:
    return payload.get("type") == "left" and payload.get("reason") == "kicked"


def test_teacher_mutes_locks_kicks_and_announces(classroom, open_client) -> None:
    """The whole lesson: each action reaches the right people and has its effect; a kicked member may rejoin."""
    teacher, bob, carol, dave = (classroom[n] for n in ("teacher", "bob", "carol", "dave"))

    teacher.send({"type": "mute", "nick": "bob", "minutes": 5})
    assert bob.expect("notice")["event"] == "mute"
    bob.send({"type": "say", "text": "can you hear me"})
    assert bob.expect("error")["code"] == "not_allowed"
    teacher.send({"type": "unmute", "nick": "bob"})
    assert bob.expect("notice")["event"] == "unmute"
    teacher_saw, carol_saw, dave_saw = barrier(teacher, carol, dave)
    assert [p["event"] for p in teacher_saw] == ["mute", "unmute"]
    assert carol_saw == [] and dave_saw == []  # mutes are between the operator and the member

    teacher.send({"type": "lock"})
    bob.expect("notice", event="lock")
    bob.send({"type": "say", "text": "let me talk"})
    assert bob.expect("error")["code"] == "not_allowed"
    teacher.send({"type": "say", "text": "operators may"})
    assert bob.expect("message")["text"] == "operators may"
    teacher.send({"type": "unlock"})
    bob.expect("notice", event="unlock")
    _, carol_saw, dave_saw = barrier(teacher, carol, dave)
    assert [p.get("event", p["type"]) for p in carol_saw] == ["lock", "message", "unlock"] and dave_saw == []

    teacher.send({"type": "slow", "seconds": 60})
    bob.expect("notice", event="slow")
    bob.send({"type": "say", "text": "first"})
    bob.send({"type": "say", "text": "second"})
    assert bob.expect("error")["code"] == "rate_limited"
    teacher.send({"type": "slow", "seconds": 0})
    teacher.send({"type": "topic", "text": "Sockets"})
    _, carol_saw, dave_saw = barrier(teacher, carol, dave)
    assert [p.get("text") for p in carol_saw if p["type"] == "message"] == ["first"] and dave_saw == []
    assert [p["event"] for p in carol_saw if p["type"] == "notice"] == ["slow", "slow", "topic"]

    teacher.send({"type": "announce", "text": "Break time"})
    for member in (teacher, bob, carol, dave):
        assert member.expect("notice", event="announce")["text"] == "Break time"

    teacher.send({"type": "kick", "nick": "carol", "reason": "phone out"})
    rest = session_over(carol, classroom["server"], is_kicked)
    assert rest[-1] == {**rest[-1], "nick": "carol", "reason": "kicked", "by": "teacher", "message": "phone out"}
    assert bob.expect("left", nick="carol")["reason"] == "kicked"
    assert barrier(dave) == [[]]
    transport = transport_of(classroom["setup"], "carol")
    again = open_client(classroom["server"], "127.0.0.3", transport)
    welcome = again.join("carol")  # kicked, not banned: may rejoin
    assert welcome["transport"] == transport and welcome["topic"] == "Sockets"


def test_banned_address_cannot_reconnect_until_unbanned(classroom, open_client) -> None:
    """kick with ban ends bob's session and refuses his address; another address still joins; unban lets him back."""
    teacher, bob, server = classroom["teacher"], classroom["bob"], classroom["server"]
    transport = transport_of(classroom["setup"], "bob")
    teacher.send({"type": "kick", "nick": "bob", "ban": True})
    assert session_over(bob, server, is_kicked)[-1]["ban"] is True
    assert teacher.expect("notice", event="ban")["address"] == "127.0.0.2"
    for way in ("tcp", "udp"):  # a ban is for the address, whatever the transport
        refused = open_client(server, "127.0.0.2", way)
        error = refused.wait_closed()[0] if isinstance(refused, Client) else hello(refused, "bob")
        assert error["code"] == "not_allowed" and "banned" in error["message"]
    assert open_client(server, "127.0.0.9", transport).join("erin")["type"] == "welcome"
    teacher.send({"type": "unban", "address": "127.0.0.2"})
    teacher.expect("notice", event="unban")
    assert open_client(server, "127.0.0.2", transport).join("bob")["type"] == "welcome"


# --- the real commands ------------------------------------------------------------------


@pytest.fixture
def teacher_server() -> Iterator[tuple[Any, int, str]]:
    """`chatsrv --password class101` as a process; yields it, its port and the operator secret it printed."""
    process, port = start_server("--rate", "0", "--password", PASSWORD)
    try:
        line = read_until(process, r"operator secret: ")[-1]
        secret = re.search(r"operator secret: (\S+)", line).group(1)  # type: ignore[union-attr]
        yield process, port, secret
    finally:
        finish(process)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("bob_transport", ["tcp", "udp"])
def test_line_clients_with_password_op_mute_kick(teacher_server, bob_transport: str) -> None:
    """chatclient --password joins; the teacher ops and mutes, then kicks bob, whose client explains and exits 1."""
    _, port, secret = teacher_server
    assert len(secret) >= 16  # random, from secrets.token_urlsafe
    teacher = chatclient_process(port, "teacher", "--password", PASSWORD)
    bob = chatclient_process(port, "bob", "--password", PASSWORD, *(["--udp"] if bob_transport == "udp" else []))
    try:
        read_until(teacher, r"you are teacher in lobby")
        read_until(bob, r"you are bob in lobby")
        assert teacher.stdin and bob.stdin
        if bob_transport == "udp":  # only a UDP member's stats count gaps
            bob.stdin.write("/stats\n")
            bob.stdin.flush()
            read_until(bob, r"server's view: .*gaps 0")
        teacher.stdin.write(f"/op {secret}\n/mute bob 5\n")
        teacher.stdin.flush()
        read_until(teacher, r"you muted bob for 5 minute")
        read_until(bob, r"teacher is now an operator")
        read_until(bob, r"teacher muted you for 5 minute\(s\)\. You can still read the chat")
        bob.stdin.write("hello?\n/who\n")
        bob.stdin.flush()
        read_until(bob, r"! not_allowed: you are muted by teacher")
        read_until(bob, r"in lobby: bob, @teacher \(2\)")
        teacher.stdin.write("/kick bob enough for today\n")
        teacher.stdin.flush()
        read_until(bob, r"teacher kicked you out of the chat: enough for today\. You may join again")
        assert bob.wait(5) == 1
        assert bob.stderr and "an operator ended your session" in bob.stderr.read()
        read_until(teacher, r"bob was kicked by teacher: enough for today")
    finally:
        finish(teacher, bob)


def test_line_client_without_password_exits_1_with_a_hint(teacher_server) -> None:
    """Without --password the client shows auth_failed, says what to add, and exits 1."""
    _, port, _ = teacher_server
    guest = chatclient_process(port, "guest")
    try:
        out, err = guest.communicate(timeout=10)
        assert guest.returncode == 1
        assert "auth_failed: this server needs a password" in out
        assert "add --password SECRET" in err and "Traceback" not in err
    finally:
        finish(guest)


def test_motd_from_a_file_and_op_secret_flag(tmp_path) -> None:
    """--motd @FILE shows the file's text in welcome; --op-secret is the secret printed and accepted."""
    motd = tmp_path / "motd.txt"
    motd.write_text("Welcome to 7B\nBe kind.\n", encoding="utf-8")
    process, port = start_server("--motd", f"@{motd}", "--op-secret", "chalk-42")
    try:
        assert read_until(process, r"operator secret: ")[-1].startswith("operator secret: chalk-42 ")
        with Client(port) as teacher:
            assert teacher.join("teacher")["motd"] == "Welcome to 7B\nBe kind."
            teacher.send({"type": "op", "secret": "chalk-42"})
            assert teacher.expect("notice")["event"] == "op"
    finally:
        finish(process)


