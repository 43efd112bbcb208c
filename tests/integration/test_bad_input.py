"""Bad input the TCP server must survive: the offender gets its error (or is closed),
everyone else is undisturbed, and a new client can still join."""

from __future__ import annotations

import socket
import struct

import pytest

from lanchat.wire import encode_frame, encode_payload
from tests.helpers import Client, wait_until


@pytest.fixture
def room(clients):
    """Two members already chatting, to prove they are undisturbed afterwards."""
    alice, bob = clients(), clients()
    alice.join("alice")
    bob.join("bob")
    alice.expect("joined", nick="bob")
    return alice, bob


def still_fine(clients, alice: Client, bob: Client, text: str = "still here") -> None:
    """The room still works and a newcomer can join."""
    newcomer = clients()
    newcomer.join(f"new{abs(hash(text)) % 1000}")
    alice.send({"type": "say", "text": text})
    for member in (alice, bob, newcomer):
        assert member.expect("message")["text"] == text


def offender_closed_with(client: Client, code: str) -> None:
    received = client.wait_closed()
    assert [p["code"] for p in received if p["type"] == "error"] == [code], received


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", "frame_too_large"),
        (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "frame_too_large"),
        (b"\xff\xff\xff\xff" + b"x" * 1000, "frame_too_large"),
        (b"\x00\x00\x00\x00", "bad_request"),
    ],
    ids=["http", "ssh-banner", "4GiB-header", "zero-length"],
)
def test_broken_framing_is_fatal_for_the_offender_only(room, clients, data: bytes, code: str) -> None:
    """Not-the-protocol bytes and broken headers get their error, then the connection closes."""
    alice, bob = room
    offender = clients()
    offender.send_raw(data)
    offender_closed_with(offender, code)
    still_fine(clients, alice, bob)


def test_zero_bytes_garbage(room, clients) -> None:
    """A stream of zero bytes is a zero-length frame: bad_request and close."""
    alice, bob = room
    offender = clients()
    offender.send_raw(b"\x00" * 64)
    offender_closed_with(offender, "bad_request")
    still_fine(clients, alice, bob)


def test_frame_sent_a_byte_at_a_time(room, clients) -> None:
    """A frame dribbled one byte per send still works."""
    alice, bob = room
    slowpoke = clients()
    slowpoke.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in encode_frame(encode_payload({"type": "hello", "nick": "dribble"})):
        slowpoke.send_raw(bytes([byte]))
    assert slowpoke.expect("welcome")["nick"] == "dribble"
    still_fine(clients, alice, bob)


def test_twenty_frames_in_one_send(room) -> None:
    """Twenty frames in a single send are all handled, in order."""
    alice, bob = room
    alice.send_raw(b"".join(encode_frame(encode_payload({"type": "say", "text": f"m{n}"})) for n in range(20)))
    assert [bob.expect("message")["text"] for _ in range(20)] == [f"m{n}" for n in range(20)]


@pytest.mark.parametrize(
    "body",
    [
        b"\xc3\x28 invalid utf-8",
        b"[1,2,3]",
        b'"a string"',
        b"[" * 5000 + b"]" * 5000,
        b'{"type":"teleport"}',
        b'{"type":"say","text":42}',
    ],
    ids=["bad-utf8", "list", "string", "nested-5000", "unknown-type", "mistyped-field"],
)
def test_bad_payload_is_recoverable(room, clients, body: bytes) -> None:
    """Bad payloads inside intact frames get bad_request; the sender stays connected."""
    alice, bob = room
    alice.send_raw(encode_frame(body))
    error = alice.expect("error")
    assert error["code"] == "bad_request"
    alice.send({"type": "ping", "id": "alive"})
    assert alice.expect("pong")["id"] == "alive"
    still_fine(clients, alice, bob)


@pytest.mark.parametrize(
    ("nick", "code"),
    [("has space", "nick_invalid"), ("esc\x1b", "nick_invalid"), ("n" * 25, "nick_invalid"), ("ALICE", "nick_taken")],
)
def test_bad_nicks(room, clients, nick: str, code: str) -> None:
    """Spaces, escapes, 25 characters, a taken nick in another case: the error, and the connection stays."""
    alice, bob = room
    newcomer = clients()
    newcomer.send({"type": "hello", "nick": nick})
    assert newcomer.expect("error")["code"] == code
    assert newcomer.join("fine")["nick"] == "fine"
    still_fine(clients, alice, bob)


@pytest.mark.parametrize("text", ["\x1b[2J\x1b[Hfake", "ding\x07"], ids=["escape", "bell"])
def test_control_characters_in_text(room, clients, text: str) -> None:
    """Text with an escape sequence or a bell is text_invalid and never reaches the others."""
    alice, bob = room
    alice.send({"type": "say", "text": text})
    assert alice.expect("error")["code"] == "text_invalid"
    still_fine(clients, alice, bob, "after the attempt")


def test_rst_disconnect(room, clients) -> None:
    """A client that vanishes with a RST is removed as lost."""
    alice, bob = room
    rude = clients()
    rude.join("rude")
    alice.expect("joined", nick="rude")
    rude.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    rude.sock.close()
    assert alice.expect("left", nick="rude")["reason"] == "lost"
    still_fine(clients, alice, bob)


def test_hello_timeout(make_server) -> None:
    """A client that never says hello gets error timeout and is closed."""
    server = make_server("--hello-timeout", "0.3")
    with Client(server.port) as silent:
        offender_closed_with(silent, "timeout")
    with Client(server.port) as fine:
        assert fine.join("fine")["nick"] == "fine"


def test_slow_consumer_removed_while_reader_gets_everything(make_server) -> None:
    """A member that never reads is removed with reason slow; a reading member receives every message."""
    server = make_server("--rate", "0", "--outbox", "65536")
    with Client(server.port) as reader, Client(server.port, rcvbuf=4096) as stuck, Client(server.port) as sender:
        reader.join("reader")
        stuck.join("stuck")
        sender.join("sender")
        text = "y" * 1000
        total = 3000  # about 3 MB: far beyond the stuck member's buffers and outbox
        # Batches stay below the reader's soft limit, so backpressure never waits on the reader.
        batch = b"".join(encode_frame(encode_payload({"type": "say", "text": text})) for _ in range(10))
        received = echoed = 0
        left = None
        for sent in range(10, total + 1, 10):
            sender.send_raw(batch)
            while received < sent:  # the reader keeps up: it has everything sent so far
                payload = reader.recv()
                if payload["type"] == "message":
                    received += 1
                elif payload["type"] == "left":
                    left = payload
            while echoed < sent:  # and so does the sender, with its own echoes
                echoed += sender.recv()["type"] == "message"
        if left is None:
            left = reader.expect("left", nick="stuck")
        assert left["nick"] == "stuck" and left["reason"] == "slow"
        assert received == total


def test_server_full(make_server) -> None:
    """Beyond --max-clients a newcomer gets server_full and is closed; after one leaves, joining works."""
    server = make_server("--max-clients", "2")
    # One after the other: with --max-clients 2, at most one connection may be waiting for its hello.
    with Client(server.port) as first:
        first.join("first")
        second = Client(server.port)
        second.join("second")
        with Client(server.port) as third:
            offender_closed_with(third, "server_full")
        first.send({"type": "bye"})
        first.wait_closed()
        wait_until(lambda: len(server.service.sessions) == 1)
        with Client(server.port) as fourth:
            assert fourth.join("fourth")["nick"] == "fourth"
        second.close()


def test_per_ip_limit(make_server) -> None:
    """Beyond --max-per-ip connections from one address get server_full."""
    server = make_server("--max-per-ip", "2")
    # One after the other: connections opened together reach the service in any order.
    with Client(server.port) as one:
        one.join("one")
        with Client(server.port) as two:
            two.join("two")
            with Client(server.port) as three:
                offender_closed_with(three, "server_full")
            with Client(server.port, source="127.0.0.2") as other_address:
                assert other_address.join("other")["nick"] == "other"


def test_shutdown_leaves_no_thread_or_socket(make_server) -> None:
    """After stop(), every client saw notice + left(shutdown) and was closed; no handler thread is left."""
    server = make_server()
    members = [Client(server.port) for _ in range(3)]
    idle = Client(server.port)  # connected, never said hello
    try:
        for number, member in enumerate(members):
            member.join(f"m{number}")
        server.stop()
        for member in members:
            kinds = [p["type"] for p in member.wait_closed()]
            assert kinds[-2:] == ["notice", "left"]
        idle.wait_closed()
        assert server.tcp.live_connections() == 0
        assert not [t for t in server.threads if t.is_alive()]
    finally:
        for client in members + [idle]:
            client.close()


def test_backpressure_keeps_a_slow_but_steady_reader(make_server) -> None:
    """A flood bigger than the outbox does not drop a reader that keeps draining: the sender is paused instead."""
    import threading
    import time as _time

    server = make_server("--rate", "0", "--outbox", "65536", "--send-buffer", "65536")
    with Client(server.port, rcvbuf=4096) as reader, Client(server.port) as sender:
        reader.join("reader")
        sender.join("sender")
        total = 1500  # ~1.5 MB: 20 times the outbox; the reader's small buffer holds ~20 KB
        flood = b"".join(
            encode_frame(encode_payload({"type": "say", "text": f"{n:05d}" + "z" * 1000})) for n in range(total)
        )
        flooder = threading.Thread(target=sender.send_raw, args=(flood,))
        echoes = threading.Thread(target=sender.wait_closed, kwargs={"timeout": 30})  # the sender reads its echoes
        flooder.start()
        echoes.start()
        texts: list[str] = []
        try:
            while len(texts) < total:
                payload = reader.recv(timeout=10)
                assert payload["type"] != "left", payload
                if payload["type"] == "message":
                    texts.append(payload["text"][:5])
                if len(texts) % 4 == 0:
                    _time.sleep(0.002)  # at most ~2 MB/s: far slower than the flood, but steady
        finally:
            flooder.join(20)
            sender.sock.shutdown(socket.SHUT_RDWR)
            echoes.join(20)
        assert texts == [f"{n:05d}" for n in range(total)]
