"""Teacher controls on a real server: password, allow/deny, operator secret, moderation.

Loopback only: 127.0.0.0/8 gives each test client its own source address
(bind to 127.0.0.2, 127.0.0.3 ...), which is what address rules and bans see.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatsrv.app import Server
from tests.helpers import Client
from tests.integration.test_cli import client as chatclient_process
from tests.integration.test_cli import read_until, run_briefly, start_server

OP_SECRET = "teach-op-123"
PASSWORD = "class101"


@pytest.fixture
def open_client() -> Iterator[Callable[..., Client]]:
    """Open raw TCP clients (any port, any 127.x source); all closed at teardown."""
    opened: list[Client] = []

    def connect(server: Server, source: str = "127.0.0.1") -> Client:
        client = Client(server.port, source=source)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


def hello(client: Client, nick: str, **fields: Any) -> dict[str, Any]:
    client.send({"type": "hello", "nick": nick, **fields})
    return client.recv()


def barrier(*clients: Client) -> list[list[dict[str, Any]]]:
    """Everything each client received until now: a ping's pong marks the end.

    The server handles one member's payloads in order and queues an action's
    results before answering anything sent later, so whatever an earlier
    action sent a client arrives before that client's pong.
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


def test_password_missing_wrong_right(make_server, open_client) -> None:
    """Without or with a wrong password: auth_failed and closed; with the right one: welcome."""
    server = make_server("--password", PASSWORD)
    missing = open_client(server, "127.0.0.2")
    error = hello(missing, "amy")
    assert error["type"] == "error" and error["code"] == "auth_failed"
    missing.wait_closed()
    wrong = open_client(server, "127.0.0.2")
    assert hello(wrong, "amy", password="class102")["code"] == "auth_failed"
    wrong.wait_closed()
    right = open_client(server, "127.0.0.2")
    assert hello(right, "amy", password=PASSWORD)["type"] == "welcome"


def test_repeated_wrong_passwords_make_that_address_wait(make_server, open_client) -> None:
    """After three wrong passwords from one address even the right one is refused for a while; others get in."""
    server = make_server("--password", PASSWORD)
    for attempt in range(3):
        guesser = open_client(server, "127.0.0.3")
        assert hello(guesser, f"g{attempt}", password=f"guess{attempt}")["message"] == "wrong password"
        guesser.wait_closed()
    late = open_client(server, "127.0.0.3")
    refused = hello(late, "late", password=PASSWORD)
    assert refused["code"] == "auth_failed" and "try again in" in refused["message"]
    late.wait_closed()
    other = open_client(server, "127.0.0.4")
    assert hello(other, "other", password=PASSWORD)["type"] == "welcome"


# --- allow / deny --------------------------------------------------------------------


def test_allow_and_deny_by_source_address(make_server, open_client) -> None:
    """--allow 127.0.0.0/30 --deny 127.0.0.2: .1 and .3 get in; .2 (denied) and .5 (not allowed) are refused first thing."""
    server = make_server("--allow", "127.0.0.0/30", "--deny", "127.0.0.2")
    for source, admitted in (("127.0.0.1", True), ("127.0.0.2", False), ("127.0.0.3", True), ("127.0.0.5", False)):
        client = open_client(server, source)
        if admitted:
            assert hello(client, f"n{source.rsplit('.', 1)[1]}")["type"] == "welcome"
        else:
            # Refused on connect, before any hello: the error is waiting for it.
            [error] = client.wait_closed()
            assert error["type"] == "error" and error["code"] == "not_allowed" and source in error["message"]


# --- operators ------------------------------------------------------------------------


@pytest.fixture
def classroom(make_server, open_client) -> dict[str, Any]:
    """A server with a known op secret: teacher (operator, .1), bob (.2), carol (.3) in lobby, dave (.4) in other."""
    server = make_server("--rate", "0", "--op-secret", OP_SECRET)
    people: dict[str, Any] = {"server": server}
    for nick, source, room in (
        ("teacher", "127.0.0.1", None),
        ("bob", "127.0.0.2", None),
        ("carol", "127.0.0.3", None),
        ("dave", "127.0.0.4", "other"),
    ):
        client = open_client(server, source)
        client.join(nick, room)
        people[nick] = client
    people["teacher"].send({"type": "op", "secret": OP_SECRET})
    people["teacher"].expect("notice", event="op")
    barrier(people["bob"], people["carol"], people["dave"])
    return people


def test_op_secret_brute_force_is_cut_off(classroom) -> None:
    """Five wrong operator secrets close the connection; the room sees bob leave."""
    bob = classroom["bob"]
    for attempt in range(4):
        bob.send({"type": "op", "secret": f"guess{attempt}"})
        assert bob.expect("error")["code"] == "not_allowed"
    bob.send({"type": "op", "secret": "guess4"})
    rest = bob.wait_closed()
    assert [p["code"] for p in rest if p["type"] == "error"] == ["not_allowed"]
    classroom["carol"].expect("left", nick="bob", reason="error")


def test_teacher_mutes_locks_kicks_and_announces(classroom, open_client) -> None:
    """The whole lesson over TCP: each action reaches the right people and has its effect."""
    teacher, bob, carol, dave = (classroom[n] for n in ("teacher", "bob", "carol", "dave"))

    teacher.send({"type": "mute", "nick": "bob", "minutes": 5})
    assert bob.expect("notice")["event"] == "mute"
    bob.send({"type": "say", "text": "can you hear me"})
    assert bob.expect("error")["code"] == "not_allowed"
    teacher.send({"type": "unmute", "nick": "bob"})
    assert bob.expect("notice")["event"] == "unmute"
    _, carol_saw, dave_saw = barrier(teacher, carol, dave)
    assert carol_saw == [] and dave_saw == []  # mutes are between the operator and the member

    teacher.send({"type": "lock"})
    bob.expect("notice", event="lock")
    bob.send({"type": "say", "text": "let me talk"})
    assert bob.expect("error")["code"] == "not_allowed"
    teacher.send({"type": "unlock"})
    bob.expect("notice", event="unlock")
    _, carol_saw, dave_saw = barrier(teacher, carol, dave)
    assert [p["event"] for p in carol_saw] == ["lock", "unlock"] and dave_saw == []

    teacher.send({"type": "announce", "text": "Break time"})
    for member in (teacher, bob, carol, dave):
        assert member.expect("notice", event="announce")["text"] == "Break time"

    teacher.send({"type": "kick", "nick": "carol", "reason": "phone out"})
    rest = carol.wait_closed()
    assert rest[-1] == {
        **rest[-1],
        "type": "left",
        "nick": "carol",
        "reason": "kicked",
        "by": "teacher",
        "message": "phone out",
    }
    assert bob.expect("left", nick="carol")["reason"] == "kicked"
    assert barrier(dave) == [[]]
    again = open_client(classroom["server"], "127.0.0.3")
    assert again.join("carol")["type"] == "welcome"  # kicked, not banned: may rejoin


def test_banned_address_cannot_reconnect_until_unbanned(classroom, open_client) -> None:
    """kick with ban closes bob and refuses his address; another address still joins; unban lets him back."""
    teacher, bob = classroom["teacher"], classroom["bob"]
    teacher.send({"type": "kick", "nick": "bob", "ban": True})
    assert bob.wait_closed()[-1]["ban"] is True
    assert teacher.expect("notice", event="ban")["address"] == "127.0.0.2"
    refused = open_client(classroom["server"], "127.0.0.2")
    [error] = refused.wait_closed()
    assert error["code"] == "not_allowed" and "banned" in error["message"]
    assert open_client(classroom["server"], "127.0.0.9").join("erin")["type"] == "welcome"
    teacher.send({"type": "unban", "address": "127.0.0.2"})
    teacher.expect("notice", event="unban")
    assert open_client(classroom["server"], "127.0.0.2").join("bob")["type"] == "welcome"


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
        if process.poll() is None:
            process.kill()
        process.wait(5)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def _finish(*processes: Any) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(5)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream and not stream.closed:
                stream.close()


@pytest.mark.timeout(40)
def test_line_clients_with_password_op_mute_kick(teacher_server) -> None:
    """chatclient --password joins; the teacher ops and mutes, then kicks bob, whose client explains and exits 1."""
    _, port, secret = teacher_server
    assert len(secret) >= 16  # random, from secrets.token_urlsafe
    teacher = chatclient_process(port, "teacher", "--password", PASSWORD)
    bob = chatclient_process(port, "bob", "--password", PASSWORD)
    try:
        read_until(teacher, r"you are teacher in lobby")
        read_until(bob, r"you are bob in lobby")
        assert teacher.stdin and bob.stdin
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
        _finish(teacher, bob)


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
        _finish(guest)


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
        _finish(process)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--motd", "@/no/such/file"], "cannot read"),
        (["--allow", "10.0.0.300/8"], "not an address or network"),
        (["--deny", "everyone"], "not an address or network"),
        (["--password", ""], "--password"),
    ],
)
def test_bad_teacher_flags_exit_2_with_one_line(flags: list[str], words: str) -> None:
    """A bad --motd file, network or password: one clear line on stderr, exit 2."""
    result = run_briefly("-m", "chatsrv", *flags)
    assert result.returncode == 2 and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
