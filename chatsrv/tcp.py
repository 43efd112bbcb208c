"""TCP adapter: a `ThreadingTCPServer` whose handler feeds the ChatService.

Owns connections only: socket options, reading and framing (via
`lanchat.wire.FrameDecoder`), the hello timeout, each connection's life
(`setup`: admit it; `handle`: read batches; `finish`: leave and hang up), and
the bookkeeping that lets the server shut down without the known
socketserver hang (docs/testing.md #1). Sending is `chatsrv.outbox`'s,
pausing senders `chatsrv.backpressure`'s; all chat rules live in
`chatsrv.service`.

Imports: wire, session, service, outbox, backpressure.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from typing import Any

from chatsrv.backpressure import Backpressure
from chatsrv.outbox import CLOSE_GRACE, DEFAULT_OUTBOX_LIMIT, TCPOutbox, WriteCombiner
from chatsrv.service import ChatService
from chatsrv.session import Session
from lanchat.wire import DEFAULT_MAX_FRAME, FrameDecoder, ProtocolError, encode_payload

log = logging.getLogger("chatsrv.tcp")

# Python allocates the whole buffer before a recv blocks, so an idle member
# holds RECV_SIZE while it waits: small. A recv that filled it means more is
# waiting (a flood, a paste): the next one reads BURST_RECV_SIZE, which made
# batches 4x larger and fan-out about 30 % faster here. Far larger was slower.
RECV_SIZE = 8192
BURST_RECV_SIZE = 32768
DEFAULT_SEND_BUFFER = 1 << 20  # kernel send buffer per member (see configure_socket)
BURST_HOLD = 0.1  # seconds a burst's joins and leaves may wait to reach a room as one payload


def next_recv_size(received: int, asked: int) -> int:
    """After a full recv read big (more is waiting); after a short one, small again."""
    return BURST_RECV_SIZE if received >= asked else RECV_SIZE


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


class ChatRequestHandler(socketserver.BaseRequestHandler):
    """One TCP connection: admitted in `setup`, read in `handle`, ended in `finish`.

    socketserver calls the three in order, `finish` also when `handle`
    raises (the exception then goes to the server's `handle_error`).
    """

    server: ChatTCPServer
    request: socket.socket
    outbox: TCPOutbox
    session: Session | None  # None: the service refused the connection

    def setup(self) -> None:
        """Configure the socket and ask the service to admit the connection; a refusal is told, then sent."""
        server = self.server
        configure_socket(self.request, server.send_buffer)
        self.outbox = TCPOutbox(self.request, server.combiner, server.outbox_limit, server.backpressure)
        try:
            self.session = server.service.connect(self.outbox, self.client_address, "tcp", server.max_frame)
        except ProtocolError as error:
            self.session = None
            log.info("refused %s: %s", _peer(self.client_address), error.message)
            self.outbox.put([encode_payload(error.payload())], 1)
            self.outbox.close()
            self.outbox.flush()

    def handle(self) -> None:
        """Read until the peer or the service ends the session: frames to the service, one batch per recv."""
        session = self.session
        if session is None:
            return
        server = self.server
        service = server.service
        sock = self.request
        decoder = FrameDecoder(server.max_frame)
        sock.settimeout(server.hello_timeout or None)
        waiting_for_hello = True
        size = RECV_SIZE
        while not session.closed:
            try:
                data = sock.recv(size)
            except TimeoutError:
                if session.joined:
                    continue
                service.reject(
                    session,
                    ProtocolError("timeout", f"no hello within {server.hello_timeout:g} seconds", fatal=True),
                )
                return
            except OSError:
                return
            if not data:
                return
            size = next_recv_size(len(data), size)
            frames = decoder.feed(data)
            if frames:
                service.receive(session, frames)
                server.backpressure.wait()
            if decoder.error is not None:
                service.reject(session, decoder.error)
                return
            if waiting_for_hello and session.joined:
                waiting_for_hello = False
                sock.settimeout(None)  # from now on keepalive watches the peer

    def finish(self) -> None:
        """The member leaves (`lost`, unless it already left), the socket is cut, the writer joined."""
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

    allow_reuse_address = True
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
    ) -> None:
        self.address_family = family
        self.service = service
        self.max_frame = max_frame
        self.outbox_limit = outbox_limit
        self.hello_timeout = hello_timeout
        self.max_connections = max_connections
        self.send_buffer = send_buffer
        self.backpressure = Backpressure()
        self.combiner = WriteCombiner()  # every outbox's flush sends through it
        self._live: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()  # handler threads still running, under _live_lock
        self._live_lock = threading.Lock()
        # Joins and leaves of a burst reach a room together every BURST_HOLD seconds (chatsrv.fanout);
        # service_actions below is the timer that sends them when nobody else does.
        service.fanout.hold_seconds = BURST_HOLD
        self._next_release = 0.0  # monotonic time of the next release_due (accept thread only)
        super().__init__(address, ChatRequestHandler)

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
