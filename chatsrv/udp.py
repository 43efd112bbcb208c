"""UDP adapter: a `UDPServer` whose handler feeds the same ChatService as TCP.

Owns datagrams only: the table of registered peers (by address and port),
address validation with the `challenge` cookie, the 3x anti-amplification
rule for unproven addresses, oversized-datagram detection, non-blocking
sends, peer expiry, and the optional fault injector. All chat rules (rooms,
nicks, `seq`, client-seq counters, a repeated `hello`) live in
`chatsrv.service`; cookie and fault logic are pure (`chatsrv.cookies`,
`chatsrv.faults`).

One thread handles every datagram, in arrival order (docs/protocol.md §2: "the
server handles one peer's datagrams in the order they arrive"). That is why
this is a plain `UDPServer`, not a `ThreadingUDPServer`: a thread per
datagram would let the scheduler run a peer's second datagram before its
first (its `say`s could overtake each other, a `bye` could beat the `say`
before it), and a flood of datagrams would start a flood of threads (a
thread bomb, docs/testing.md #4). Handling one datagram is short (decode, one
lock, non-blocking sends), so one thread keeps up.

The handler is a plain `BaseRequestHandler`: `DatagramRequestHandler.finish()`
always sends a reply datagram, even an empty one, which would answer every
forged packet.

A `discover` probe from an unregistered address is answered through the
`discovery` callable the app passes in (built by `chatsrv.discovery`).

A registered peer is more than its address: its `welcome` carries a random
per-session `token` (docs/protocol.md §8), and every later datagram from that
address must carry it (`carries_token`). Anyone can forge a source address,
but only whoever receives at that address learns the token. A datagram
without it is dropped before the service sees it: no reply (so a forged
datagram never gets one larger than itself), no effect, not even on the
peer's silence timer; it is counted in the peer's `stats` (`bad_token`) and
logged at most once per `UNPROVEN_LOG_INTERVAL` per peer. The one exception
is a `hello` repeated because its `welcome` (and so the token) was lost: its
valid `cookie` for this very address proves the same thing.

Imports: wire, messages, session (Outbox protocol), service, cookies, faults.
"""

from __future__ import annotations

import collections
import hmac
import logging
import re
import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any

from chatsrv.cookies import CookieMaker
from chatsrv.faults import FaultInjector, Impairment, Path, Release
from chatsrv.messages import Hello, parse_message
from chatsrv.mistakes import MistakeLog, excerpt, left_out_note, one_line
from chatsrv.service import ChatService
from chatsrv.session import Session
from lanchat import platforms
from lanchat.i18n import N_
from lanchat.reasons import say
from lanchat.wire import DEFAULT_MAX_DATAGRAM, ProtocolError, decode_payload, encode_payload, with_seq

log = logging.getLogger("chatsrv.udp")

AMPLIFICATION_LIMIT = 3  # docs/protocol.md §2: never more than 3x the bytes received from an unproven address
RECEIVE_BUFFER = 1 << 20  # room for bursts of small datagrams (the kernel caps it at rmem_max)
UNPROVEN_LOG_INTERVAL = 10.0  # seconds between two log lines about one peer's dropped datagrams

# `"token": "…"` and `"cookie": "…"` as they appear in a datagram's bytes. A
# JSON string cannot hold a bare quote, so these match only real keys, never
# text inside a string. Looking in the bytes, before decoding, keeps a forged
# datagram cheap to drop, and lets a datagram of the real member that fails
# to decode (it carries the token) still get its `bad_request`.
_TOKEN_FIELD = re.compile(rb'"token"\s*:\s*"([A-Za-z0-9_-]{1,64})"')
_COOKIE_FIELD = re.compile(rb'"cookie"\s*:\s*"([A-Za-z0-9_-]{1,64})"')


# Message bodies as `%d` templates for their seq, made once per body and shared by every member it goes to.
_seq_templates: dict[bytes, bytes] = {}
_SEQ_TEMPLATES_KEPT = 1024  # more than one flush hands out: a new flush's bodies are made again at worst


def seq_template(body: bytes) -> bytes:
    """`body` (an `encode_payload` object without `seq`) as a template: `seq_template(b) % n == with_seq(b, n)`."""
    template = body[:-1].replace(b"%", b"%%") + b',"seq":%d}'
    if len(_seq_templates) >= _SEQ_TEMPLATES_KEPT:
        _seq_templates.clear()
    _seq_templates[body] = template
    return template


def new_token() -> str:
    """A fresh per-session token: 128 random bits, 22 characters that JSON never escapes."""
    return secrets.token_urlsafe(16)


def carries_token(data: bytes, token: bytes) -> bool:
    """True when the datagram carries the field `"token": "<token>"` (compared in constant time)."""
    return any(hmac.compare_digest(found, token) for found in _TOKEN_FIELD.findall(data))


class UDPOutbox:
    """One registered peer's sender: one datagram per payload, and it never blocks.

    UDP has no backpressure and no connection to close, so `put` always
    succeeds (a UDP member can never be "slow"); a send the kernel refuses
    is counted in `send_errors` and dropped, which for UDP is just one more
    lost datagram. `close` forgets the peer.
    """

    def __init__(self, server: ChatUDPServer, address: Any) -> None:
        self.server = server
        self.address = address
        self.token = new_token()
        self._token_bytes = self.token.encode("ascii")
        # `bad_token` changes only in the udp-serve thread; `send_errors` in whichever thread sends.
        self.counters = {"send_errors": 0, "bad_token": 0}
        self._unlogged = 0  # dropped datagrams not yet in a log line
        self._next_log = 0.0  # monotonic time the next log line about them may be written
        self.delay_line = server.delay_line
        self._sendto = server.socket.sendto
        # The injector hands this outbox back with each datagram that is due.
        self.path: Path | None = self.delay_line.injector.open_path(self) if self.delay_line else None

    def attach(self, session: Session) -> None:
        """Put the token (and the impairment) in the peer's `welcome`, its counters in its `stats`."""
        welcome: dict[str, Any] = {"token": self.token}
        if self.path is not None:
            welcome["impairment"] = self.server.impairment.as_dict()
            session.extra["stats"] = collections.ChainMap(self.counters, self.path.counters)
        else:
            session.extra["stats"] = self.counters
        session.extra["welcome"] = welcome

    def proven_by(self, data: bytes, now: float) -> bool:
        """Whether a datagram from this peer's address really comes from the peer.

        It must carry the session's token; a `hello` whose welcome was lost
        cannot know it yet, and its valid cookie for this address proves the same.
        """
        if carries_token(data, self._token_bytes):
            return True
        cookie = _COOKIE_FIELD.search(data)
        return cookie is not None and self.server.cookies.check(cookie.group(1).decode("ascii"), self.address, now)

    def drop_unproven(self, session: Session) -> None:
        """Count a datagram without the token, and log it at most once per interval."""
        self.counters["bad_token"] += 1
        self._unlogged += 1
        now = time.monotonic()
        if now >= self._next_log:
            log.warning(
                "%s: dropped %d datagram(s) from its address without its token (a forged source address?)",
                session.describe(),
                self._unlogged,
            )
            self._unlogged = 0
            self._next_log = now + UNPROVEN_LOG_INTERVAL

    def put(self, bodies: list[bytes], first_seq: int) -> bool:
        if self.delay_line is not None and self.path is not None:
            self.delay_line.submit(self.path, [with_seq(body, seq) for seq, body in enumerate(bodies, first_seq)])
            return True
        # The hot path of UDP fan-out: per member and message one `%` on a template made once per message
        # (seq_template) and one sendto, bound here, with no other call or allocation.
        sendto = self._sendto
        address = self.address
        seq = first_seq
        for body in bodies:
            try:
                sendto((_seq_templates.get(body) or seq_template(body)) % seq, socket.MSG_DONTWAIT, address)
            except OSError as error:  # EAGAIN, ENOBUFS, EMSGSIZE, ECONNREFUSED, a closed socket ...
                self.server.send_failed(error, len(body), address, self.counters)
            seq += 1
        return True

    def flush(self) -> None:
        """Nothing to do: `put` already sent each datagram without blocking."""

    def close(self) -> None:
        self.server.forget(self.address, self)
        if self.delay_line is not None and self.path is not None:
            self.delay_line.close_path(self.path)


class DelayLine:
    """Runs the fault injector: sends what is due now, and holds the rest for a timer thread.

    The thread exists only when datagrams can be delayed or held back
    (`--udp-delay`, `--udp-reorder`); loss and duplication alone need none.
    Sends happen under the lock so the order the injector decided (and
    counted) is the order datagrams leave.
    """

    def __init__(self, injector: FaultInjector, server: ChatUDPServer) -> None:
        self.injector = injector
        self.server = server
        self._condition = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.injector.impairment.needs_timer and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="udp-delay", daemon=True)
            self._thread.start()

    def submit(self, path: Path, payloads: list[bytes]) -> None:
        with self._condition:
            now = time.monotonic()
            for body in payloads:
                self._send(self.injector.submit(path, body, now))
            self._condition.notify()

    def close_path(self, path: Path) -> None:
        with self._condition:
            self.injector.close_path(path)

    def _send(self, releases: list[Release]) -> None:
        for outbox, body in releases:
            self.server.send_datagram(body, outbox.address, outbox.counters)

    def _run(self) -> None:
        with self._condition:
            while not self._stopped:
                due = self.injector.next_due()
                now = time.monotonic()
                if due is not None and due <= now:
                    self._send(self.injector.release_due(now))
                    continue
                self._condition.wait(None if due is None else due - now)

    def stop(self) -> None:
        """Send everything still waiting (the shutdown notice, say), then end the thread."""
        with self._condition:
            self._stopped = True
            self._send(self.injector.drain())
            self._condition.notify()
        if self._thread is not None:
            self._thread.join(5)


class ChatDatagramHandler(socketserver.BaseRequestHandler):
    """One datagram: from a registered peer to the service, from anyone else to the gate."""

    server: ChatUDPServer
    request: tuple[bytes, socket.socket]

    def handle(self) -> None:
        data = self.request[0]
        server = self.server
        session = server.peer(self.client_address)
        if session is None:
            self._from_stranger(data)
            return
        outbox = session.outbox
        assert isinstance(outbox, UDPOutbox)
        if not outbox.proven_by(data, server.service.clock()):
            # Anyone can forge this address: no reply, no effect (docs/protocol.md §8).
            outbox.drop_unproven(session)
        elif len(data) > server.max_datagram:
            # recvfrom truncated it (max_packet_size is one above the limit, so we
            # can tell); docs/protocol.md §2: answer frame_too_large, the peer stays.
            session.last_seen = server.service.clock()
            server.service.reject(
                session, ProtocolError("frame_too_large", say("datagram_too_large", limit=server.max_datagram))
            )
        else:
            server.service.receive(session, [data])

    def _from_stranger(self, data: bytes) -> None:
        """An unregistered address: a challenge, a registration, or one small error at most."""
        server = self.server
        address = self.client_address
        if len(data) > server.max_datagram:
            server.reply_unproven(
                ProtocolError("frame_too_large", say("datagram_too_large", limit=server.max_datagram)).payload(),
                address,
                len(data),
            )
            return
        try:
            payload = decode_payload(data)
        except ProtocolError as error:
            self._log_not_lanchat(data, error)
            server.reply_unproven(error.payload(), address, len(data))
            return
        if payload.get("type") == "discover":
            # LAN discovery (docs/protocol.md, "Extension: discovery"): no hello needed.
            server.answer_discovery(address, len(data))
            return
        try:
            message = parse_message(payload)
        except ProtocolError as error:
            server.reply_unproven(error.payload(), address, len(data))
            return
        if not isinstance(message, Hello):
            server.reply_unproven({"type": "error", "code": "not_joined", "message": "hello first"}, address, len(data))
            return
        now = server.service.clock()
        if message.cookie is None or not server.cookies.check(message.cookie, address, now):
            # docs/protocol.md §2: no state, just a cookie bound to this address and port.
            challenge = {"type": "challenge", "cookie": server.cookies.issue(address, now)}
            server.reply_unproven(challenge, address, len(data))
            return
        self._register(data, payload)

    def _log_not_lanchat(self, data: bytes, error: ProtocolError) -> None:
        """A datagram that is no lanchat payload (a bare `hello`, GBK text): one console line, a few per address.

        Nothing more is sent than the 3x rule allows (docs/protocol.md §2); the
        line is for the teacher, who can walk over and help.
        """
        address = self.client_address
        left_out = self.server.mistakes.report(address[0])
        if left_out is not None:
            log.warning(
                "UDP datagram from %s:%s is not a lanchat payload (%s): %s; each datagram must be one JSON "
                'object in UTF-8, like {"type": "hello", "nick": "NAME"} (docs/protocol.md §1, §2)%s',
                address[0], address[1], one_line(error.message), excerpt(data), left_out_note(left_out),
            )

    def _register(self, data: bytes, payload: dict[str, Any]) -> None:
        """The address proved it receives: make it a peer and let the service answer the hello."""
        server = self.server
        address = self.client_address
        outbox = UDPOutbox(server, address)
        try:
            session = server.service.connect(outbox, address, "udp", server.max_datagram)
        except ProtocolError as error:
            server.service.log_refusal(
                address, N_("refused %s: %s%s"), f"{address[0]}:{address[1]}", error.said or error.message
            )
            server.send_datagram(with_seq(encode_payload(error.payload()), 0), address, None)
            outbox.close()
            return
        outbox.attach(session)
        server.remember(address, session)
        client_seq = payload.get("seq")
        if type(client_seq) is int and client_seq > 1:
            # The client's datagrams before this one were the handshake, not lost
            # payloads: count its gaps from the hello that registered it.
            session.client_seq.highest = client_seq - 1
        server.service.receive(session, [data])
        if not session.joined:
            # The hello was refused (nick taken, bad room ...): the error went out, forget the peer.
            server.service.disconnect(session, "error")


class ChatUDPServer(socketserver.UDPServer):
    """UDP server bound to one ChatService, one thread for every datagram.

    `max_packet_size` is one byte above the datagram limit: `recvfrom`
    truncates silently, and a datagram that fills the buffer completely is
    therefore known to be over the limit (docs/architecture.md).
    """

    def __init__(
        self,
        address: tuple[Any, ...],
        service: ChatService,
        *,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
        impairment: Impairment | None = None,
        family: socket.AddressFamily = socket.AF_INET,
        cookies: CookieMaker | None = None,
        discovery: Callable[[Any, int], bytes | None] | None = None,
    ) -> None:
        self.address_family = family
        # Builds the reply to a `discover` probe from an address within a byte budget (chatsrv.discovery);
        # None: probes get no answer at all (--no-discovery).
        self.discovery = discovery
        self.service = service
        self.max_datagram = max_datagram
        # typeshed calls it a ClassVar, but socketserver reads it through self: per server is fine.
        self.max_packet_size = max_datagram + 1  # type: ignore[misc]
        self.impairment = impairment or Impairment()
        self.cookies = cookies or CookieMaker()
        self.send_errors = 0
        self.mistakes = MistakeLog()  # datagrams that are no lanchat payload, on the console a few per address
        self._peers: dict[Any, Session] = {}
        self._peers_lock = threading.Lock()
        # Expiry runs from service_actions (every poll_interval of serve_forever):
        # often enough to drop a silent peer within a quarter of peer_timeout.
        self.expiry_interval = min(1.0, max(0.05, service.peer_timeout / 4))
        self._next_expiry = 0.0
        super().__init__(address, ChatDatagramHandler)
        self.delay_line = DelayLine(FaultInjector(self.impairment), self) if self.impairment.active else None

    def server_bind(self) -> None:
        platforms.claim_address(self.socket)  # platform hook: SO_EXCLUSIVEADDRUSE on Windows
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError:
            pass
        super().server_bind()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    # --- peers -------------------------------------------------------------

    def peer(self, address: Any) -> Session | None:
        with self._peers_lock:
            return self._peers.get(address)

    def remember(self, address: Any, session: Session) -> None:
        with self._peers_lock:
            self._peers[address] = session

    def forget(self, address: Any, outbox: UDPOutbox) -> None:
        with self._peers_lock:
            session = self._peers.get(address)
            if session is not None and session.outbox is outbox:
                del self._peers[address]

    def peer_count(self) -> int:
        with self._peers_lock:
            return len(self._peers)

    # --- sending -------------------------------------------------------------

    def send_datagram(self, body: bytes, address: Any, counters: dict[str, int] | None) -> None:
        """Send one datagram without ever blocking; a refusal is counted, not raised."""
        try:
            self.socket.sendto(body, socket.MSG_DONTWAIT, address)
        except OSError as error:  # EAGAIN, ENOBUFS, EMSGSIZE, ECONNREFUSED, a closed socket ...
            self.send_failed(error, len(body), address, counters)

    def send_failed(self, error: OSError, size: int, address: Any, counters: dict[str, int] | None) -> None:
        """Count a send the kernel refused (for the server and the peer's `stats`)."""
        self.send_errors += 1
        if counters is not None:
            counters["send_errors"] += 1
        log.debug("send of %d bytes to %s:%s failed: %s", size, address[0], address[1], error)

    def reply_unproven(self, payload: dict[str, Any], address: Any, received: int) -> None:
        """Answer an unregistered address with `seq` 0, only if within 3x what it sent."""
        body = with_seq(encode_payload(payload), 0)
        if len(body) > AMPLIFICATION_LIMIT * received:
            log.debug("no %s to %s:%s: %d bytes > 3 x %d", payload["type"], address[0], address[1], len(body), received)
            return
        self.send_datagram(body, address, None)

    def answer_discovery(self, address: Any, received: int) -> None:
        """Answer a `discover` probe within 3x its size (docs/protocol.md §2), or stay silent."""
        if self.discovery is None:
            return  # silent, not an error: a server that hides must not be found by its errors
        budget = min(AMPLIFICATION_LIMIT * received, self.max_datagram)
        body = self.discovery(address, budget)
        if body is None or len(body) > budget:
            log.debug(
                "no server_info to %s:%s (%d-byte probe too small, address refused, or too many probes)",
                address[0],
                address[1],
                received,
            )
            return
        self.send_datagram(body, address, None)

    # --- socketserver hooks ----------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        if self.delay_line is not None:
            self.delay_line.start()
        super().serve_forever(poll_interval)

    def service_actions(self) -> None:
        """Called by serve_forever every poll_interval: drop peers silent for peer_timeout."""
        now = time.monotonic()
        if now < self._next_expiry:
            return
        self._next_expiry = now + self.expiry_interval
        for session in self.service.expire_idle():
            log.info("%s: silent for %g s, dropped", session.describe(), self.service.peer_timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # One bad datagram must never stop the server; one log record with the peer, like TCP's.
        log.exception("error handling a datagram from %s:%s", client_address[0], client_address[1])

    def stop(self) -> None:
        """Stop serving, flush the delay line, close the socket. Not from the serving thread."""
        self.shutdown()
        if self.delay_line is not None:
            self.delay_line.stop()
        self.server_close()
        if self.send_errors:
            log.info("udp: %d datagrams could not be sent", self.send_errors)
