"""The UDP session token (docs/protocol.md §8): a registered peer's datagrams must carry it.

No sockets: the token check on raw bytes, and the datagram handler driven
with a fake server around a real ChatService (a fake clock, fake sends).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from chatsrv.cookies import CookieMaker
from chatsrv.service import ChatService
from chatsrv.session import Session
from chatsrv.udp import (
    UNPROVEN_LOG_INTERVAL,
    ChatDatagramHandler,
    ChatUDPServer,
    UDPOutbox,
    carries_token,
    new_token,
    seq_template,
)
from lanchat.wire import DEFAULT_MAX_DATAGRAM, decode_payload, encode_payload, with_seq

NOW = 1_700_000_000.0
TEACHER = ("127.0.0.1", 40000)
TOKEN = "abcDEF0123456789_-xyzQ"


def test_a_new_token_is_22_characters_json_never_escapes() -> None:
    """Tokens are random, URL-safe base64 of 128 bits, and differ each time."""
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert len(token) == 22 and json.dumps(token) == f'"{token}"'


@pytest.mark.parametrize(
    "data",
    [
        b'{"type":"say","text":"hi","token":"%s"}' % TOKEN.encode(),
        b'{"type": "say", "token" : "%s", "text": "hi"}' % TOKEN.encode(),
        b'{"token":"nope","token":"%s"}' % TOKEN.encode(),  # any real field with the token proves it
        b'{not json "token":"%s"' % TOKEN.encode(),  # the member's broken payload still gets its bad_request
    ],
)
def test_datagrams_carrying_the_token(data: bytes) -> None:
    """The field `"token": "<token>"` anywhere in the datagram's bytes, with or without blanks, proves it."""
    assert carries_token(data, TOKEN.encode())


@pytest.mark.parametrize(
    "data",
    [
        b'{"type":"say","text":"hi"}',
        b'{"type":"say","text":"hi","token":"%s"}' % TOKEN[:-1].encode(),  # a prefix is not the token
        b'{"type":"say","text":"hi","token":"%sA"}' % TOKEN.encode(),  # nor is a longer string
        b'{"type":"say","text":"hi","token":"%s"}' % TOKEN.lower().encode(),
        b'{"type":"say","text":"\\"token\\":\\"%s\\""}' % TOKEN.encode(),  # inside a string: not a field
        b'{"type":"say","text":"%s"}' % TOKEN.encode(),
        b'{"type":"say","token":null}',
        b"",
    ],
)
def test_datagrams_without_the_token(data: bytes) -> None:
    """Without the exact token as a field's value, a datagram proves nothing."""
    assert not carries_token(data, TOKEN.encode())


class RecordingSocket:
    """The server socket's sendto as UDPOutbox.put uses it; a datagram to REFUSED fails like a full buffer."""

    def __init__(self, sent: list[tuple[bytes, Any]]) -> None:
        self.sent = sent

    def sendto(self, body: bytes, flags: int, address: Any) -> int:
        if address == REFUSED:
            raise BlockingIOError("the send buffer is full")
        self.sent.append((body, address))
        return len(body)


REFUSED = ("127.0.0.9", 9)


class FakeServer:
    """What ChatDatagramHandler and UDPOutbox use of ChatUDPServer, with sends recorded."""

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.max_datagram = DEFAULT_MAX_DATAGRAM
        self.cookies = CookieMaker(secret=b"k" * 32)
        self.delay_line = None
        self.peers: dict[Any, Session] = {}
        self.sent: list[tuple[bytes, Any]] = []
        self.socket = RecordingSocket(self.sent)
        self.send_errors = 0

    def peer(self, address: Any) -> Session | None:
        return self.peers.get(address)

    def forget(self, address: Any, outbox: UDPOutbox) -> None:
        self.peers.pop(address, None)

    def send_datagram(self, body: bytes, address: Any, counters: dict[str, int] | None) -> None:
        self.sent.append((body, address))

    def send_failed(self, error: OSError, size: int, address: Any, counters: dict[str, int] | None) -> None:
        ChatUDPServer.send_failed(self, error, size, address, counters)  # type: ignore[arg-type]

    def datagram(self, payload: dict[str, Any] | bytes, address: Any = TEACHER) -> list[dict[str, Any]]:
        """Handle one datagram from `address`; returns the payloads sent back to that address."""
        before = len(self.sent)
        data = payload if isinstance(payload, bytes) else encode_payload(payload)
        ChatDatagramHandler((data, None), address, self)  # type: ignore[arg-type]
        return [decode_payload(body) for body, to in self.sent[before:] if to == address]


@pytest.fixture
def udp() -> tuple[FakeServer, Session, UDPOutbox]:
    """A fake UDP server with the teacher registered as a peer and joined in lobby."""
    service = ChatService(clock=lambda: NOW, rate=0, store=None)
    server = FakeServer(service)
    outbox = UDPOutbox(server, TEACHER)  # type: ignore[arg-type]
    session = service.connect(outbox, TEACHER, "udp", DEFAULT_MAX_DATAGRAM)
    outbox.attach(session)
    server.peers[TEACHER] = session
    service.receive(session, [encode_payload({"type": "hello", "nick": "teacher"})])
    return server, session, outbox


def test_the_welcome_carries_the_token(udp: tuple[FakeServer, Session, UDPOutbox]) -> None:
    """The UDP welcome tells the member its token."""
    server, _, outbox = udp
    welcome = decode_payload(server.sent[0][0])
    assert welcome["type"] == "welcome" and welcome["token"] == outbox.token


@pytest.mark.parametrize(
    "forged",
    [
        {"type": "bye"},
        {"type": "say", "text": "I am the teacher"},
        {"type": "nick", "nick": "nobody"},
        {"type": "who"},
        {"type": "hello", "nick": "teacher"},
        {"type": "bye", "token": "x" * 22},
    ],
)
def test_a_datagram_without_the_token_is_dropped_counted_and_unanswered(
    udp: tuple[FakeServer, Session, UDPOutbox], forged: dict[str, Any]
) -> None:
    """No reply, no effect (the member stays, nothing is said), not even on its silence timer; `bad_token` counts it."""
    server, session, outbox = udp
    session.last_seen = NOW - 10
    assert server.datagram(forged) == []
    assert session.joined and session.nick == "teacher" and session.last_seen == NOW - 10
    assert session.received == 1  # only the hello
    assert outbox.counters["bad_token"] == 1
    stats = server.datagram({"type": "stats", "token": outbox.token})
    assert stats[0]["bad_token"] == 1


def test_the_same_datagrams_with_the_token_take_effect(udp: tuple[FakeServer, Session, UDPOutbox]) -> None:
    """With its token, the member is heard: a say comes back as a message, a bye ends the session."""
    server, session, outbox = udp
    assert server.datagram({"type": "say", "text": "hi", "token": outbox.token})[0]["text"] == "hi"
    server.datagram({"type": "bye", "token": outbox.token})
    assert not session.joined and TEACHER not in server.peers
    assert outbox.counters["bad_token"] == 0


def test_an_oversized_datagram_without_the_token_gets_no_error(udp: tuple[FakeServer, Session, UDPOutbox]) -> None:
    """A too-large datagram from the member's address is answered only when it carries the token."""
    server, session, outbox = udp
    assert server.datagram(b"{" + b" " * (DEFAULT_MAX_DATAGRAM + 1) + b"}") == []
    assert session.errors_in_a_row == 0
    field = b'"token":"%s",' % outbox.token.encode()
    answer = server.datagram(b"{" + field + b" " * DEFAULT_MAX_DATAGRAM + b"}")
    assert answer[0]["code"] == "frame_too_large"


def test_a_repeated_hello_with_its_cookie_gets_the_lost_welcome(udp: tuple[FakeServer, Session, UDPOutbox]) -> None:
    """A hello whose welcome (and token) was lost is proven by its cookie for this address and port."""
    server, _, outbox = udp
    cookie = server.cookies.issue(TEACHER, NOW)
    again = server.datagram({"type": "hello", "nick": "teacher", "cookie": cookie})
    assert again[0]["type"] == "welcome" and again[0]["token"] == outbox.token
    other_port = server.cookies.issue((TEACHER[0], TEACHER[1] + 1), NOW)
    assert server.datagram({"type": "hello", "nick": "teacher", "cookie": other_port}) == []


def test_dropped_datagrams_are_logged_once_per_interval(
    udp: tuple[FakeServer, Session, UDPOutbox], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of forged datagrams makes one log line per interval per peer, saying how many were dropped."""
    server, _, outbox = udp
    clock = [1000.0]
    monkeypatch.setattr("chatsrv.udp.time.monotonic", lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="chatsrv.udp"):
        for _ in range(100):
            server.datagram({"type": "bye"})
        assert len(caplog.records) == 1 and "teacher" in caplog.text
        clock[0] += UNPROVEN_LOG_INTERVAL
        server.datagram({"type": "bye"})
    assert len(caplog.records) == 2
    assert "dropped 100 datagram(s)" in caplog.records[1].getMessage()
    assert outbox.counters["bad_token"] == 101


# --- helper Q: one template per message, one % per member ---------------------


@pytest.mark.parametrize("text", ["plain", "100% sure, %d %s %%", ""])
def test_a_message_template_stamps_the_same_datagram_as_with_seq(text: str) -> None:
    """Texts with % in them come out unchanged: the template escapes them, only the seq is filled in."""
    body = encode_payload({"type": "message", "text": text, "ts": 1.5})
    for seq in (1, 9, 10, 123456789):
        assert seq_template(body) % seq == with_seq(body, seq)


def test_each_member_gets_every_message_with_its_own_seqs(udp: tuple[FakeServer, Session, UDPOutbox]) -> None:
    """The same bodies go to two peers, numbered from each one's seq, byte for byte as with_seq makes them."""
    server, _, outbox = udp
    other = UDPOutbox(server, ("127.0.0.2", 4000))  # type: ignore[arg-type]
    bodies = [encode_payload({"type": "message", "text": f"50% of {n}"}) for n in range(3)]
    del server.sent[:]
    assert outbox.put(bodies, 7) and other.put(bodies, 1)
    assert server.sent == [(with_seq(body, 7 + n), TEACHER) for n, body in enumerate(bodies)] + [
        (with_seq(body, 1 + n), ("127.0.0.2", 4000)) for n, body in enumerate(bodies)
    ]


def test_a_refused_send_is_counted_and_the_rest_still_go(udp: tuple[FakeServer, Session, UDPOutbox]) -> None:
    """A full send buffer loses that datagram only: counted for the peer and the server, never raised."""
    server, _, _ = udp
    refused = UDPOutbox(server, REFUSED)  # type: ignore[arg-type]
    assert refused.put([encode_payload({"type": "message", "text": "x"})] * 2, 1)
    assert refused.counters["send_errors"] == 2 and server.send_errors == 2
