"""TCP adapter: a `ThreadingTCPServer` whose handler feeds the ChatService.

Owns connections only: socket options, reading and framing (via
`lanchat.wire.FrameDecoder`), the hello deadline and the cap on connections
that have not said hello yet (`Newcomers`), each connection's life
(`setup`: admit it; `handle`: read batches; `finish`: leave and hang up), and
the bookkeeping that lets the server shut down without the known
socketserver hang (docs/testing.md #1). Sending is `chatsrv.outbox`'s,
pausing senders `chatsrv.backpressure`'s; all chat rules live in
`chatsrv.service`.

Imports: wire, access (address keys), session, service, outbox, backpressure.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from chatsrv.access import address_key
from chatsrv.backpressure import Backpressure
from chatsrv.mistakes import MistakeLog, excerpt, left_out_note, one_line
from chatsrv.outbox import CLOSE_GRACE, DEFAULT_OUTBOX_LIMIT, TCPOutbox, WriteCombiner
from chatsrv.service import ChatService
from chatsrv.session import Session
from lanchat import platforms
from lanchat.i18n import N_
from lanchat.reasons import say
from lanchat.wire import DEFAULT_MAX_FRAME, FrameDecoder, ProtocolError, encode_payload

log = logging.getLogger("chatsrv.tcp")

# Python allocates the whole buffer before a recv blocks, so a member waiting
# in recv(RECV_SIZE) holds 8 KiB: 40 MB for 5,000 idle members. So a handler
# waits in recv(1, MSG_PEEK) (`wait_and_read`; MSG_PEEK exists on Linux, macOS
# and Windows), which holds one byte, and reads RECV_SIZE only once data is
# there. A recv that filled its buffer means more is waiting (a flood, a
# paste): the next one reads BURST_RECV_SIZE at once, without the peek, which
# made batches 4x larger and fan-out about 30 % faster here. Far larger was slower.
RECV_SIZE = 8192
BURST_RECV_SIZE = 32768
DEFAULT_SEND_BUFFER = 1 << 20  # kernel send buffer per member (see configure_socket)
BURST_HOLD = 0.1  # seconds a burst's joins and leaves may wait to reach a room as one payload


def next_recv_size(received: int, asked: int) -> int:
    """After a full recv read big (more is waiting); after a short one, small again."""
    return BURST_RECV_SIZE if received >= asked else RECV_SIZE


def wait_and_read(sock: socket.socket, size: int, when_ready: Callable[[], None] | None = None) -> bytes:
    """One read of at most `size` bytes (b"" at the end); while idle, waits holding no buffer (see RECV_SIZE).

    After a full read (`size` above RECV_SIZE) data is most likely waiting: no peek then.
    `when_ready` is called once data is there, before it is read: the TCP
    server waits there while another thread sends (`WriteCombiner.wait_idle`),
    as the read's system call would otherwise hand the GIL back and forth
    with that thread's sends once more.
    """
    if size <= RECV_SIZE and not sock.recv(1, socket.MSG_PEEK):
        return b""
    if when_ready is not None:
        when_ready()
    return sock.recv(size)


def configure_socket(sock: socket.socket, send_buffer: int = DEFAULT_SEND_BUFFER) -> None:
    """Low latency, a fixed send buffer, and TCP keepalive so dead peers are noticed.

    Left to autotune, Linux grows each send buffer to about 4 MB: a member
    that stops reading would silently hold 4 MB of kernel memory and the
    outbox limit would only start counting after that. A fixed size (1 MiB
    by default, which Linux doubles; far above a LAN's bandwidth-delay
    product) keeps `--outbox` meaningful; 0 leaves it to the kernel.
    A socket that is not TCP (a test's `socketpair`) is left as it is.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 5)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class Ticket:
    """One connection's place among the newcomers; `session` is set once the service admitted it."""

    __slots__ = ("key", "session")

    def __init__(self, key: str) -> None:
        self.key = key
        self.session: Session | None = None


class Newcomers:
    """Connections that have not said hello yet: counted per address (an IPv6 /64) and in total.

    Such a connection costs a thread and a socket and tells the server nothing,
    so a script opening many of them (and dripping a byte now and then) could
    use up `--max-clients` without ever joining. The cap is kept well below
    it: a connection normally leaves this state within milliseconds (its
    `hello` is its first frame), so honest members never meet it. 0 turns a
    cap off. Thread-safe: handler threads take and give back their ticket.

    A connection stops counting as soon as its session has joined (the
    service sets `joined` under its lock, before the welcome leaves), even if
    its handler thread has not given the ticket back yet: so a client that
    got its welcome and opens the next connection at once never finds its
    own first connection still counted.
    """

    def __init__(self, total: int = 0, per_address: int = 0) -> None:
        self.total = total
        self.per_address = per_address
        self._tickets: set[Ticket] = set()
        self._by_key: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, address: Any) -> Ticket:
        """A ticket for a new connection from `address`; `server_full` when at a cap."""
        key = address_key(address)
        with self._lock:
            if self._at_cap(key):
                self._forget_joined()
            if self.per_address and self._by_key[key] >= self.per_address:
                raise ProtocolError(
                    "server_full", say("too_many_waiting_from", host=key, limit=self.per_address), fatal=True
                )
            if self.total and len(self._tickets) >= self.total:
                raise ProtocolError("server_full", say("too_many_waiting", limit=self.total), fatal=True)
            ticket = Ticket(key)
            self._tickets.add(ticket)
            self._by_key[key] += 1
        return ticket

    def give_back(self, ticket: Ticket) -> None:
        """The connection said hello or ended: its place is free again (giving back twice is harmless)."""
        with self._lock:
            self._remove(ticket)

    def count(self, address: Any | None = None) -> int:
        """How many wait now: in total, or from `address`'s key."""
        with self._lock:
            self._forget_joined()
            return len(self._tickets) if address is None else self._by_key.get(address_key(address), 0)

    def _at_cap(self, key: str) -> bool:
        return bool(
            (self.per_address and self._by_key[key] >= self.per_address)
            or (self.total and len(self._tickets) >= self.total)
        )

    def _forget_joined(self) -> None:
        """Under the lock: drop the tickets of sessions that have joined meanwhile."""
        for ticket in [t for t in self._tickets if t.session is not None and t.session.joined]:
            self._remove(ticket)

    def _remove(self, ticket: Ticket) -> None:
        if ticket in self._tickets:
            self._tickets.remove(ticket)
            self._by_key[ticket.key] -= 1
            if self._by_key[ticket.key] <= 0:
                del self._by_key[ticket.key]


class ChatRequestHandler(socketserver.BaseRequestHandler):
    """One TCP connection: admitted in `setup`, read in `handle`, ended in `finish`.

    socketserver calls the three in order, `finish` also when `handle`
    raises (the exception then goes to the server's `handle_error`).
    """

    server: ChatTCPServer
    request: socket.socket
    outbox: TCPOutbox
    session: Session | None  # None: the service refused the connection
    ticket: Ticket | None  # this connection's place among the newcomers until its hello; None: none held
    accepted: float  # time.monotonic() when the connection was taken; the hello deadline counts from it
    outbox_class: type[TCPOutbox] = TCPOutbox  # how payloads become bytes on this port (the text door: lines)
    refused_line = N_("refused %s: %s%s")  # the console line for a refused connection: peer, reason, note

    def setup(self) -> None:
        """Configure the socket and ask the service to admit the connection; a refusal is told, then sent."""
        server = self.server
        self.accepted = time.monotonic()
        self.ticket = None
        configure_socket(self.request, server.send_buffer)
        self.outbox = self.outbox_class(self.request, server.combiner, server.outbox_limit, server.backpressure)
        try:
            self.ticket = server.newcomers.take(self.client_address)
            self.session = server.service.connect(self.outbox, self.client_address, "tcp", server.max_frame)
            self.ticket.session = self.session
        except ProtocolError as error:
            self.session = None
            self._no_longer_new()
            peer = _peer(self.client_address)
            server.service.log_refusal(self.client_address, self.refused_line, peer, error.said or error.message)
            self.outbox.put([encode_payload(error.payload())], 1)
            self.outbox.close()
            self.outbox.flush()
            return
        self.admitted(self.session)

    def admitted(self, session: Session) -> None:
        """The service took the connection (a hook: the text door greets here)."""

    def handle(self) -> None:
        """Read until the peer or the service ends the session: frames to the service, one batch per recv."""
        session = self.session
        if session is None:
            return
        server = self.server
        service = server.service
        sock = self.request
        decoder = FrameDecoder(server.max_frame)
        # The hello timeout is one deadline from accept, not a timeout per recv:
        # a byte now and then must not keep a connection that never joins open.
        deadline = self.accepted + server.hello_timeout if server.hello_timeout else None
        size = RECV_SIZE
        while not session.closed:
            if deadline is not None and self.ticket is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    service.reject(
                        session,
                        ProtocolError("timeout", say("no_hello", seconds=server.hello_timeout), fatal=True),
                    )
                    return
                sock.settimeout(left)
            try:
                # Wait for data (idle: a 1-byte peek, no buffer held), then let another thread's flush finish
                # before reading it: our recv would take the GIL from that flush's sends (README, Latency).
                data = wait_and_read(sock, size, server.combiner.wait_idle)
            except TimeoutError:
                continue  # the deadline check above ends it
            except OSError:
                return
            if not data:
                return
            size = next_recv_size(len(data), size)
            frames = decoder.feed(data)
            if frames:
                server.combiner.wait_idle()  # not while another thread sends: see WriteCombiner.wait_idle
                service.receive(session, frames)
                server.backpressure.wait()
            if decoder.error is not None:
                self.log_framing_mistake(decoder.error, data)
                service.reject(session, decoder.error, logged=True)
                return
            if self.ticket is not None and session.joined:
                self._no_longer_new()
                sock.settimeout(None)  # from now on keepalive watches the peer

    def _no_longer_new(self) -> None:
        if self.ticket is not None:
            self.server.newcomers.give_back(self.ticket)
            self.ticket = None

    def log_framing_mistake(self, error: ProtocolError, read: bytes) -> None:
        """A broken frame, most often a student's own client: one warning the teacher can act on, a few per address.

        `read` is the recv that broke it; a student's client usually sends a
        whole frame at once, so it begins with the bad header.
        """
        address = self.client_address
        host = address[0] if isinstance(address, tuple) else address
        left_out = self.server.mistakes.report(host)
        if left_out is not None:
            reason = one_line(error.message)
            log.warning(
                "framing mistake from %s: %s; the read began %s%s",
                _peer(address), reason, excerpt(read), left_out_note(left_out),
            )

    def finish(self) -> None:
        """The member leaves (`lost`, unless it already left), the socket is cut, the writer joined."""
        self._no_longer_new()
        if self.session is None:
            return  # refused: the outbox sends the error and hangs up by itself
        self.server.service.disconnect(self.session, "lost")
        self.outbox.cut()
        self.outbox.join(CLOSE_GRACE + 1)


def _peer(address: Any) -> str:
    """`127.0.0.1:50312` for logs (any address form a test may pass)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


class ChatTCPServer(socketserver.ThreadingTCPServer):
    """Threading TCP server bound to one ChatService.

    `request_queue_size` is 128 (the default 5 stalls simultaneous connects,
    docs/testing.md #2). Live client sockets are tracked so `stop` can wake every
    handler blocked in `recv`, and live handler threads so `stop` can join them.

    Handler threads are daemon threads joined by `stop` from our own set, not
    socketserver's: for a non-daemon thread socketserver's list (on every
    accept) and threading's shutdown locks (on every thread start) each scan
    every live thread, so a class of N logging in at once cost N²/2 checks
    (measured: 5,000 joins took several seconds longer, all in the accept thread).
    """

    allow_reuse_address = platforms.ALLOW_REUSE_ADDRESS  # platform hook: not on Windows (lanchat.platforms)
    request_queue_size = 128
    daemon_threads = True  # joined by stop() from self._handlers (see above)
    block_on_close = False

    def __init__(
        self,
        address: tuple[Any, ...],
        service: ChatService,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        outbox_limit: int = DEFAULT_OUTBOX_LIMIT,
        hello_timeout: float = 20.0,
        family: socket.AddressFamily = socket.AF_INET,
        max_connections: int = 0,
        send_buffer: int = DEFAULT_SEND_BUFFER,
        max_waiting: int = 0,
        max_waiting_per_ip: int = 0,
    ) -> None:
        self.address_family = family
        self.service = service
        self.max_frame = max_frame
        self.outbox_limit = outbox_limit
        self.hello_timeout = hello_timeout
        self.max_connections = max_connections
        self.send_buffer = send_buffer
        self.newcomers = Newcomers(max_waiting, max_waiting_per_ip)  # connections that have not said hello
        self.backpressure = Backpressure()
        self.mistakes = MistakeLog()  # framing mistakes on the console, a few per address
        self.combiner = WriteCombiner()  # every outbox's flush sends through it
        self._live: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()  # handler threads still running, under _live_lock
        self._live_lock = threading.Lock()
        # Joins and leaves of a burst reach a room together every BURST_HOLD seconds (chatsrv.fanout);
        # service_actions below is the timer that sends them when nobody else does.
        service.fanout.hold_seconds = BURST_HOLD
        self._next_release = 0.0  # monotonic time of the next release_due (accept thread only)
        super().__init__(address, ChatRequestHandler)

    def server_bind(self) -> None:
        platforms.claim_address(self.socket)  # platform hook: SO_EXCLUSIVEADDRUSE on Windows
        super().server_bind()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def verify_request(self, request: Any, client_address: Any) -> bool:
        # At the open-file limit accept() fails and serve_forever spins (docs/testing.md #3):
        # refuse before that. The service's own `server_full` answers politely below it.
        return not self.max_connections or self.live_connections() < self.max_connections

    def process_request(self, request: Any, client_address: Any) -> None:
        """One daemon thread per connection, in our set before it starts (so `stop` cannot miss it)."""
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address), daemon=True)
        with self._live_lock:
            self._live.add(request)
            self._handlers.add(thread)
        try:
            thread.start()
        except BaseException:
            with self._live_lock:
                self._handlers.discard(thread)
            raise  # serve_forever reports it and closes the request

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._live_lock:
                self._handlers.discard(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        with self._live_lock:
            self._live.discard(request)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """serve_forever calls this after every accept and every poll_interval (chatsrv.app: 50 ms):
        held joins and leaves go out, at most every BURST_HOLD / 2 (not once per accept in a burst)."""
        now = time.monotonic()
        if now >= self._next_release:
            self._next_release = now + BURST_HOLD / 2
            self.service.fanout.release_due()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A bug in one connection's handler must never stop the server, nor print
        # a bare traceback on stderr: one log record with the peer, like UDP's.
        log.exception("error handling the connection from %s", _peer(client_address))

    def live_connections(self) -> int:
        with self._live_lock:
            return len(self._live)

    def stop(self) -> None:
        """Stop serving and close every connection; returns when all threads are gone.

        Call from a thread that is neither serving nor handling (never from a handler).
        """
        self.shutdown()
        with self._live_lock:
            live = list(self._live)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()
        with self._live_lock:
            handlers = list(self._handlers)  # no new ones: serving has stopped
        for thread in handlers:
            thread.join()
