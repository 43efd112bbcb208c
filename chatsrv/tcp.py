"""TCP adapter: a `ThreadingTCPServer` whose handler feeds the ChatService.

Owns sockets only: reading, framing (via `lanchat.wire.FrameDecoder`), the
bounded per-member `TCPOutbox`, keepalive, the hello timeout, and the
bookkeeping that lets the server shut down without the known socketserver
hang (docs/testing.md #1). All chat rules live in `chatsrv.service`.

Imports: wire, session (Outbox protocol), service.
"""

from __future__ import annotations

import collections
import logging
import socket
import socketserver
import struct
import threading
import time
from typing import Any

from chatsrv.service import ChatService
from chatsrv.session import Session
from lanchat import platforms
from lanchat.wire import DEFAULT_MAX_FRAME, FrameDecoder, ProtocolError, encode_payload, frames_with_seq

log = logging.getLogger("chatsrv.tcp")

# Python allocates the whole buffer before a recv blocks, so an idle member
# holds RECV_SIZE while it waits: small. A recv that filled it means more is
# waiting (a flood, a paste): the next one reads BURST_RECV_SIZE, which made
# batches 4x larger and fan-out about 30 % faster here. Far larger was slower.
RECV_SIZE = 8192
BURST_RECV_SIZE = 32768
DEFAULT_OUTBOX_LIMIT = 1 << 20
DEFAULT_SEND_BUFFER = 1 << 20  # kernel send buffer per member (see configure_socket)
CLOSE_GRACE = 1.0  # seconds a writer may keep flushing after close() before the socket is cut
SOFT_LIMIT_SHARE = 4  # the soft limit is a quarter of the outbox limit
MAX_PAUSE = 0.5  # longest a sender's reading is paused for one batch
STALL = 0.05  # a lagging reader whose peer acknowledged under MIN_PROGRESS for this long pauses nobody
POLL = STALL / 4  # how often paused senders, and sends, look at a reader's acknowledgements
# Less than this acknowledged is no sign of reading: a peer that stopped still
# ACKs what its receive buffer takes, a delayed ACK 40 ms later, and answers
# window probes. On loopback a reading peer's window opens ~93 KiB at a time.
MIN_PROGRESS = 16 * 1024
WRITE_SLICE = 64 * 1024  # the writer sends in slices, so pending_bytes (and lagging) follow the reader closely


# Linux's struct tcp_info (linux/tcp.h) only ever grows at its end, so these
# offsets hold on every kernel since 4.1 (tcpi_bytes_acked).
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_INFO_SIZE = 128
_LAST_ACK_RECV = struct.Struct("=I")  # tcpi_last_ack_recv: ms since the last ACK arrived
_LAST_ACK_RECV_AT = 56
_BYTES_ACKED = struct.Struct("=Q")  # tcpi_bytes_acked: bytes of ours the peer has acknowledged
_BYTES_ACKED_AT = 120


def acknowledgements(sock: socket.socket) -> tuple[int, float] | None:
    """What the peer's TCP has acknowledged: (bytes in all, seconds since the last ACK).

    The kernel counts these itself, whatever this process sent or is still
    sending, so they measure the reader and nothing else. None where the
    kernel cannot tell (not Linux, an old kernel, or the socket is closed).
    """
    if _TCP_INFO is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_SIZE)
    except (OSError, ValueError):
        return None
    if len(info) < _TCP_INFO_SIZE:
        return None
    return _BYTES_ACKED.unpack_from(info, _BYTES_ACKED_AT)[0], _LAST_ACK_RECV.unpack_from(info, _LAST_ACK_RECV_AT)[0] / 1000


class Backpressure:
    """IRC's soft SendQ: pause senders while a reader that is still draining lags.

    A bounded outbox alone is not enough once the server is fast: a flooding
    sender outruns healthy readers, which would then be dropped as slow. So
    while some member has more than the soft limit queued *and is still
    taking data*, handlers wait (at most MAX_PAUSE per batch) before reading
    their next batch. A member that takes nothing for STALL seconds no
    longer pauses anyone; it is dropped at the hard limit instead
    (docs/architecture.md, "Rules that keep it fast and safe").

    "Taking data" means the peer's TCP acknowledges bytes (the kernel's
    tcpi_bytes_acked), looked at every POLL while senders wait. Bytes the
    kernel merely accepted into a full socket buffer do not count, so a
    member that never reads stops pausing anyone after STALL, however large
    its buffers (the few KB it still ACKs are under MIN_PROGRESS), and one
    that reads slowly but steadily keeps pausing them.
    """

    def __init__(self, max_pause: float = MAX_PAUSE, stall: float = STALL, poll: float = POLL) -> None:
        self.max_pause = max_pause
        self.stall = stall
        self.poll = poll
        self._condition = threading.Condition()
        self._lagging: set[TCPOutbox] = set()

    @property
    def lagging_count(self) -> int:
        """Members lagging right now (each may pause senders while it drains)."""
        return len(self._lagging)

    def update(self, outbox: TCPOutbox) -> None:
        """Take in `outbox`'s lagging state as it is now.

        Called after every change, but outside the outbox's lock, so two
        calls may arrive in either order: reading the state here (not
        passing it along) makes the last call apply the last state.
        """
        with self._condition:
            if outbox.is_lagging:
                self._lagging.add(outbox)
            elif outbox in self._lagging:
                self._lagging.discard(outbox)
                self._condition.notify_all()

    def wait(self) -> None:
        """Called by a handler between batches: pause while a draining reader lags."""
        if not self._lagging:  # the common case costs one attribute read
            return
        deadline = time.monotonic() + self.max_pause
        with self._condition:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return
                draining = False
                for outbox in self._lagging:
                    outbox.check_progress(now)
                    draining = draining or now - outbox.last_progress < self.stall
                if not draining:
                    return
                self._condition.wait(min(deadline - now, self.poll))


class WriteCombiner:
    """Sends what batches queued, outside the service lock, combining concurrent batches.

    `TCPOutbox.put` only appends bytes and marks the outbox here. After each
    batch the service calls `flush` (a batch listener), with its lock
    released. One thread at a time flushes; a thread that finds another
    already flushing leaves its outboxes to it and goes back to reading.
    Under light load the thread that handled a message sends it at once;
    under load (a join storm, a flood) the flushing thread finds many
    batches queued per member and sends them with one `send` each.
    """

    def __init__(self) -> None:
        self._marked: collections.deque[TCPOutbox] = collections.deque()  # append/popleft are atomic
        self._flushing = threading.Lock()

    def mark(self, outbox: TCPOutbox) -> None:
        self._marked.append(outbox)

    def flush(self) -> None:
        marked = self._marked
        # Re-checked after every release: an outbox marked while the holder was
        # finishing is seen here, so nothing is ever left unsent.
        while marked:
            if not self._flushing.acquire(blocking=False):
                return  # the thread that holds it sends ours too
            try:
                while True:
                    try:
                        outbox = marked.popleft()
                    except IndexError:
                        break
                    outbox.send_queued()
            finally:
                self._flushing.release()


class TCPOutbox:
    """A member's bounded queue of outgoing bytes.

    `put` (called under the service lock) only appends and marks the outbox
    in the `WriteCombiner`, which sends with a non-blocking `send` once the
    lock is released: a healthy reader costs no thread hand-off. What the
    kernel does not take is drained by a writer thread, started only then,
    which coalesces everything queued into each blocking `send`. Queued plus
    in-flight bytes are capped at `limit`: beyond it `put` returns False and
    the service removes the member as `slow`. No other member ever waits for
    this one; while it is still draining, past a soft limit, it makes
    senders pause instead (`Backpressure`).
    """

    def __init__(
        self,
        sock: socket.socket,
        combiner: WriteCombiner,
        limit: int = DEFAULT_OUTBOX_LIMIT,
        backpressure: Backpressure | None = None,
    ) -> None:
        self.sock = sock
        self.combiner = combiner
        self.limit = limit
        self.soft_limit = limit // SOFT_LIMIT_SHARE if limit else 0
        self.backpressure = backpressure
        self.last_progress = time.monotonic()
        self._acknowledged = acknowledgements(sock) is not None  # progress from the peer's ACKs
        self._counted = 0  # bytes the peer had acknowledged at the last progress counted
        self._last_look = self.last_progress
        self._is_lagging = False
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._pending_bytes = 0  # queued + being written
        self._marked = False  # waiting in the combiner
        self._writer: threading.Thread | None = None
        self._closing = False
        self._cut = False
        self._overflowed = False
        self._grace: threading.Timer | None = None

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def put(self, bodies: list[bytes], first_seq: int) -> bool:
        data = frames_with_seq(bodies, first_seq)
        with self._lock:
            if self._closing:
                return True
            if self.limit and self._pending_bytes + len(data) > self.limit:
                self._overflowed = True
                return False
            self._chunks.append(data)
            self._pending_bytes += len(data)
            mark = self._writer is None and not self._marked
            if mark:
                self._marked = True
            changed = self._lag_change()
        if mark:
            self.combiner.mark(self)
        self._tell_backpressure(changed)
        return True

    def _lag_change(self) -> bool:
        """Under the lock: bring `is_lagging` up to date; True when it changed.

        Lagging means the kernel would not take more (a writer thread is
        waiting on the socket) and more than the soft limit is queued. Bytes
        that merely wait for the combiner's next send are not lagging.
        """
        lagging = self._writer is not None and not self._cut and 0 < self.soft_limit < self._pending_bytes
        changed = lagging != self._is_lagging
        self._is_lagging = lagging
        return changed

    def _sent(self, sent: int, behind: bool) -> None:
        """Under the lock: the kernel took `sent` bytes; `behind` if it would not take all.

        The acknowledgements are looked at when the member falls behind, and
        otherwise at most every POLL: `last_progress` is then known to
        within POLL whenever the member starts lagging (one that stopped
        reading long before its buffers filled pauses nobody at all), and a
        member that keeps up costs one extra system call per POLL, not per
        send.
        """
        self._pending_bytes -= sent
        now = time.monotonic()
        if not self._acknowledged:  # no better sign than the kernel taking bytes
            self.last_progress = now
        elif behind or now - self._last_look >= POLL:
            self.check_progress(now)

    @property
    def is_lagging(self) -> bool:
        return self._is_lagging

    def _tell_backpressure(self, changed: bool) -> None:
        if changed and self.backpressure is not None:
            self.backpressure.update(self)

    def send_queued(self) -> None:
        """Combiner: send what is queued without blocking; a writer thread takes the rest."""
        with self._lock:
            self._marked = False
            if self._writer is not None or self._cut:
                return
            if self._chunks:
                data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
                self._chunks.clear()
                try:
                    sent = self.sock.send(data, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    self._pending_bytes = 0
                    return  # the connection is gone; the reader notices and disconnects
                self._sent(sent, behind=sent < len(data))
                if sent < len(data):
                    self._chunks.append(data[sent:])
                    self._writer = threading.Thread(target=self._drain, name="tcp-writer", daemon=True)
                    self._writer.start()
            hang_up = self._closing and self._writer is None
            changed = self._lag_change()
        self._tell_backpressure(changed)
        if hang_up:
            self.cut()

    def _drain(self) -> None:
        """Writer thread: send queued bytes until the queue is empty, then exit."""
        closing = False
        while True:
            with self._lock:
                if not self._chunks:
                    self._writer = None
                    closing = self._closing
                    break
                data = memoryview(b"".join(self._chunks))
                self._chunks.clear()
            try:
                while data:
                    sent = self.sock.send(data[:WRITE_SLICE])
                    data = data[sent:]
                    with self._lock:
                        self._sent(sent, behind=True)
                        changed = self._lag_change()
                    self._tell_backpressure(changed)
            except OSError:
                with self._lock:
                    self._chunks.clear()
                    self._pending_bytes = 0
                    self._writer = None
                closing = True
                break
        with self._lock:
            changed = self._lag_change()  # the writer is gone: not lagging
        self._tell_backpressure(changed)
        if closing:
            self.cut()

    def check_progress(self, now: float) -> None:
        """Backpressure: if the peer acknowledged MIN_PROGRESS more bytes since the last progress, note when."""
        if not self._acknowledged:
            return  # every send marks progress instead (_sent)
        self._last_look = now
        answer = acknowledgements(self.sock)
        if answer is None:
            return
        acked, quiet = answer
        if acked - self._counted >= MIN_PROGRESS:
            self._counted = acked
            # The newest ACK came `quiet` seconds ago; the one that took data
            # was that one or an earlier one: a stuck member shows its age.
            self.last_progress = max(self.last_progress, now - quiet)

    def close(self) -> None:
        """Stop accepting payloads; send what is queued (briefly), then hang up."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            overflowed = self._overflowed
        if overflowed:
            self.cut()  # a reader that stopped reading gets nothing more
            return
        self.send_queued()  # the last payloads (an error, a notice) go now; cuts when all is sent
        with self._lock:
            if self._writer is None or self._cut:
                return
            # The writer flushes the rest, but a reader that never reads would
            # keep it in send: cut it off after a grace period.
            self._grace = threading.Timer(CLOSE_GRACE, self.cut)
            self._grace.daemon = True
            self._grace.start()

    def cut(self) -> None:
        """Shut the socket down both ways now; wakes a blocked recv or send."""
        with self._lock:
            self._closing = True
            if self._cut:
                return
            self._cut = True
            grace, self._grace = self._grace, None
            changed = self._lag_change()  # a cut member pauses nobody
        self._tell_backpressure(changed)
        if grace is not None and grace is not threading.current_thread():
            grace.cancel()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def join(self, timeout: float) -> None:
        """Wait for the writer thread, if any, to finish."""
        writer = self._writer
        if writer is not None and writer is not threading.current_thread():
            writer.join(timeout)


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
    """
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 5)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class ChatRequestHandler(socketserver.BaseRequestHandler):
    """One TCP connection: read, split into frames, hand batches to the service."""

    server: ChatTCPServer
    request: socket.socket

    def handle(self) -> None:
        server = self.server
        service = server.service
        sock = self.request
        configure_socket(sock, server.send_buffer)
        outbox = TCPOutbox(sock, server.combiner, server.outbox_limit, server.backpressure)
        try:
            session = service.connect(outbox, self.client_address, "tcp", server.max_frame)
        except ProtocolError as error:
            log.info("refused %s:%s: %s", self.client_address[0], self.client_address[1], error.message)
            outbox.put([encode_payload(error.payload())], 1)
            outbox.close()
            server.combiner.flush()
            return
        try:
            self._serve(session, outbox)
        finally:
            service.disconnect(session, "lost")
            outbox.cut()
            outbox.join(CLOSE_GRACE + 1)

    def _serve(self, session: Session, outbox: TCPOutbox) -> None:
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


class ChatTCPServer(socketserver.ThreadingTCPServer):
    """Threading TCP server bound to one ChatService.

    `request_queue_size` is 128 (the default 5 stalls simultaneous connects,
    docs/testing.md #2). Live client sockets are tracked so `stop` can wake every
    handler blocked in `recv` before `server_close` joins the threads.
    """

    allow_reuse_address = platforms.ALLOW_REUSE_ADDRESS  # platform hook: not on Windows (lanchat.platforms)
    request_queue_size = 128
    daemon_threads = False  # socketserver joins only non-daemon handler threads in server_close()
    block_on_close = True

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
        self.combiner = WriteCombiner()
        service.batch_listeners.append(self.combiner.flush)
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()
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
        with self._live_lock:
            self._live.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._live_lock:
            self._live.discard(request)
        super().shutdown_request(request)

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
