"""ChatRequestHandler through a socketpair: hello, say, bye through the real handler, no listening server.

How it reads: an idle handler waits in a one-byte MSG_PEEK, holding no 8 KiB buffer, and a flood is read big.

And the TCP server's `handle_error`: a handler that raises is one log record with the peer, not a bare traceback.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from chatsrv.backpressure import Backpressure
from chatsrv.outbox import WriteCombiner
from chatsrv.service import ChatService
from chatsrv.tcp import BURST_RECV_SIZE, RECV_SIZE, ChatRequestHandler, Newcomers, wait_and_read
from chatsrv.textdoor import DEFAULT_MAX_LINE, TextDoorHandler
from lanchat.wire import FrameDecoder, decode_payload, encode_frame, encode_payload
from tests.helpers import Client, wait_until
from tests.support.fakes import Clock, NullOutbox


@dataclass
class StubServer:
    """What ChatRequestHandler reads from its server (ChatTCPServer's attributes)."""

    service: ChatService
    max_frame: int = 65536
    outbox_limit: int = 1 << 20
    hello_timeout: float = 5.0
    send_buffer: int = 0
    backpressure: Backpressure = field(default_factory=Backpressure)
    combiner: WriteCombiner = field(default_factory=WriteCombiner)
    newcomers: Newcomers = field(default_factory=Newcomers)


class Peer:
    """The client's end of the pair: frames out, payloads in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(5)
        self.decoder = FrameDecoder(1 << 20)
        self.inbox: list[dict[str, Any]] = []

    def send(self, **payload: Any) -> None:
        self.sock.sendall(encode_frame(encode_payload(payload)))

    def next(self) -> dict[str, Any]:
        while not self.inbox:
            data = self.sock.recv(65536)
            assert data, "the handler hung up"
            self.inbox.extend(decode_payload(body) for body in self.decoder.feed(data))
        return self.inbox.pop(0)

    def until_closed(self) -> list[dict[str, Any]]:
        """Everything left until the handler hangs up."""
        rest = self.inbox
        self.inbox = []
        while data := self.sock.recv(65536):
            rest.extend(decode_payload(body) for body in self.decoder.feed(data))
        return rest


def run_handler(server: StubServer, sock: socket.socket, address: tuple[str, int]) -> threading.Thread:
    thread = threading.Thread(target=ChatRequestHandler, args=(sock, address, server), name="handler under test")
    thread.start()
    return thread


def test_hello_say_bye_through_the_real_handler() -> None:
    """setup admits the connection, handle reads batches, finish leaves and hangs up; the member is gone."""
    service = ChatService(clock=Clock(), rate=0, server_name="pair")
    server = StubServer(service)
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        handler = run_handler(server, server_side, ("127.0.0.1", 50000))
        peer = Peer(client_side)
        peer.send(type="hello", nick="ann")
        welcome = peer.next()
        assert (welcome["type"], welcome["nick"], welcome["transport"], welcome["seq"]) == ("welcome", "ann", "tcp", 1)
        peer.send(type="say", text="over a socketpair")
        message = peer.next()
        assert (message["type"], message["from"], message["text"]) == ("message", "ann", "over a socketpair")
        assert message["seq"] == 2
        peer.send(type="bye")
        assert peer.until_closed() == []  # a bye is answered by hanging up
        handler.join(5)
        assert not handler.is_alive()
    assert service.sessions == set() and service.registry.find("ann") is None


def test_a_refused_connection_is_told_why_then_closed() -> None:
    """setup: the service refuses (server full): the peer gets the error and EOF; handle and finish do nothing."""
    service = ChatService(clock=Clock(), rate=0, max_clients=1)
    service.connect(NullOutbox(), ("10.0.0.1", 1), "tcp", 65536)  # the one place is taken
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        handler = run_handler(StubServer(service), server_side, ("127.0.0.1", 50001))
        peer = Peer(client_side)
        error = peer.next()
        assert (error["type"], error["code"]) == ("error", "server_full")
        assert peer.until_closed() == []
        handler.join(5)
        assert not handler.is_alive()
    assert len(service.sessions) == 1


class RecordingSocket(socket.socket):
    """A real socket that records each recv's (size, flags) as the call begins (so a blocked recv shows too)."""

    def __init__(self, fileno: int) -> None:
        super().__init__(fileno=fileno)
        self.reads: list[tuple[int, int]] = []

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.reads.append((bufsize, flags))
        return super().recv(bufsize, flags)


PEEK = (1, socket.MSG_PEEK)


def test_an_idle_handler_waits_in_a_one_byte_peek_and_a_flood_is_read_big() -> None:
    """While nothing arrives the handler blocks in recv(1, MSG_PEEK), not with a RECV_SIZE buffer; a read that
    filled RECV_SIZE is followed at once by a BURST_RECV_SIZE read, and once the flood is over it peeks again."""
    service = ChatService(clock=Clock(), rate=0, server_name="pair")
    server_side, client_side = socket.socketpair()
    recording = RecordingSocket(server_side.detach())
    with recording, client_side:
        handler = run_handler(StubServer(service), recording, ("127.0.0.1", 50002))
        peer = Peer(client_side)
        peer.send(type="hello", nick="ann")
        assert peer.next()["type"] == "welcome"
        wait_until(lambda: len(recording.reads) == 3)
        assert recording.reads == [PEEK, (RECV_SIZE, 0), PEEK]  # blocked in the peek now
        says = ({"type": "say", "text": f"{n:04d}" + "x" * 996} for n in range(40))
        flood = b"".join(encode_frame(encode_payload(say)) for say in says)  # 40 KB at once
        peer.sock.sendall(flood)
        texts = [peer.next()["text"][:4] for _ in range(40)]
        assert texts == [f"{n:04d}" for n in range(40)]
        wait_until(lambda: recording.reads[-1] == PEEK and len(recording.reads) > 3)
        during = recording.reads[2:]
        assert during[:3] == [PEEK, (RECV_SIZE, 0), (BURST_RECV_SIZE, 0)]  # the first read filled its buffer
        for before, after in itertools.pairwise(during):
            if after == (RECV_SIZE, 0):
                assert before == PEEK  # a small read only ever follows the wait
        peer.send(type="bye")
        peer.until_closed()
        handler.join(5)
        assert not handler.is_alive()


@dataclass
class TextStubServer(StubServer):
    """What the text door's handler reads from its server besides ChatTCPServer's attributes."""

    max_line: int = DEFAULT_MAX_LINE


def test_an_idle_text_door_connection_waits_in_a_one_byte_peek() -> None:
    """The text door reads like the framed port: it waits for a line in recv(1, MSG_PEEK), then reads RECV_SIZE."""
    service = ChatService(clock=Clock(), rate=0, server_name="pair")
    server_side, client_side = socket.socketpair()
    recording = RecordingSocket(server_side.detach())
    with recording, client_side:
        handler = threading.Thread(
            target=TextDoorHandler, args=(recording, ("127.0.0.1", 50003), TextStubServer(service)), name="door"
        )
        handler.start()
        client_side.settimeout(5)
        client_side.sendall(b"ann\n")
        wait_until(lambda: service.registry.find("ann") is not None)
        wait_until(lambda: len(recording.reads) == 3)
        assert recording.reads == [PEEK, (RECV_SIZE, 0), PEEK]  # blocked in the peek now
        client_side.shutdown(socket.SHUT_WR)
        handler.join(5)
        assert not handler.is_alive()
    assert service.registry.find("ann") is None



def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "chatsrv.tcp" and record.levelno >= logging.ERROR]


def test_a_handler_that_raises_is_one_log_record_with_the_peer(
    make_server: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A bug in a handler: one chatsrv.tcp log record with the peer, nothing bare on stderr; serving goes on."""
    server = make_server("--rate", "0")

    def broken(session: Any, bodies: Any) -> None:
        raise RuntimeError("a bug in receive")

    real_receive = server.service.receive
    server.service.receive = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="chatsrv.tcp"):
        with Client(server.port) as client:
            port = client.sock.getsockname()[1]
            client.send({"type": "hello", "nick": "bug"})
            client.sock.settimeout(5)
            while client.sock.recv(65536):  # the handler ended: finish hung up
                pass
        server.service.receive = real_receive  # type: ignore[method-assign]
        wait_until(lambda: errors_logged(caplog))  # handle_error runs after finish hung up
    records = errors_logged(caplog)
    assert len(records) == 1 and f"127.0.0.1:{port}" in records[0].getMessage()
    assert records[0].exc_info is not None and "a bug in receive" in str(records[0].exc_info[1])
    assert "Traceback" not in capfd.readouterr().err  # socketserver's default handle_error prints one
    with Client(server.port) as other:  # the server goes on
        other.join("after")


class _BlockingOutbox:
    """An outbox whose send blocks until released: a flush in progress in another thread."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def send_queued(self) -> None:
        self.entered.set()
        self.release.wait(5)


def test_wait_idle_waits_while_another_thread_flushes() -> None:
    """WriteCombiner.wait_idle returns at once when nobody sends, and not before a flush in progress ends."""
    combiner = WriteCombiner()
    combiner.wait_idle(timeout=5)  # idle: returns at once (a hang would fail the test by its timeout)
    outbox = _BlockingOutbox()
    combiner.mark(outbox)  # type: ignore[arg-type]
    flusher = threading.Thread(target=combiner.flush, name="flusher")
    flusher.start()
    assert outbox.entered.wait(5)
    order: list[str] = []

    def wait() -> None:
        combiner.wait_idle(timeout=5)
        order.append("waited")
    waiter = threading.Thread(target=wait, name="waiter")
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and order == []  # still waiting: the flush has not ended
    order.append("flushed")
    outbox.release.set()
    flusher.join(5)
    waiter.join(5)
    assert order == ["flushed", "waited"]


def test_the_handler_waits_for_a_flush_in_progress_before_its_batch() -> None:
    """handle calls wait_idle before every batch it gives the service (thread hand-offs: README, Performance)."""
    calls: list[str] = []

    class Recording(WriteCombiner):
        def wait_idle(self, timeout: float = 0.05) -> None:
            calls.append("wait_idle")
            super().wait_idle(timeout)

    service = ChatService(clock=Clock(), rate=0, server_name="pair")
    receive = service.receive

    def recording_receive(*args: Any) -> Any:
        calls.append("receive")
        return receive(*args)
    service.receive = recording_receive  # type: ignore[method-assign,assignment]
    server = StubServer(service, combiner=Recording())
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        handler = run_handler(server, server_side, ("127.0.0.1", 50002))
        peer = Peer(client_side)
        peer.send(type="hello", nick="ann")
        assert peer.next()["type"] == "welcome"
        peer.send(type="bye")
        peer.until_closed()
        handler.join(5)
    # Once when the hello is there (before reading it), once before its batch; the same for the bye.
    assert calls[:6] == ["wait_idle", "wait_idle", "receive", "wait_idle", "wait_idle", "receive"]


class ScriptedRecv:
    """Answers recv from a script and records each call: ("peek", size) or ("recv", size)."""

    def __init__(self, data: bytes, calls: list[tuple[str, int]]) -> None:
        self.data = data
        self.calls = calls

    def recv(self, size: int, flags: int = 0) -> bytes:
        self.calls.append(("peek" if flags & socket.MSG_PEEK else "recv", size))
        return self.data[:size]


@pytest.mark.parametrize(
    ("data", "size", "expected"),
    [
        (b"hello", RECV_SIZE, [("peek", 1), ("ready", 0), ("recv", RECV_SIZE)]),  # idle: wait, then get ready
        (b"hello", BURST_RECV_SIZE, [("ready", 0), ("recv", BURST_RECV_SIZE)]),  # after a full read: no peek
        (b"", RECV_SIZE, [("peek", 1)]),  # the peer hung up: nothing to get ready for
    ],
)
def test_wait_and_read_gets_ready_once_data_is_there_before_reading_it(
    data: bytes, size: int, expected: list[tuple[str, int]]
) -> None:
    """`when_ready` (the server's wait_idle) runs between the peek and the read: a read's system call during
    another thread's flush would take the GIL from its sends once more."""
    calls: list[tuple[str, int]] = []
    sock = ScriptedRecv(data, calls)
    assert wait_and_read(sock, size, lambda: calls.append(("ready", 0))) == data[:size]  # type: ignore[arg-type]
    assert calls == expected
