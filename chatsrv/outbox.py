"""A TCP member's bounded outbox, and the write combiner that sends outboxes after a batch.

`TCPOutbox.put` (called by the fan-out under the service lock) only frames
and appends bytes, and marks the outbox in the server's `WriteCombiner`.
After the batch, with the lock released, the fan-out calls `flush`, and the
combiner sends each marked outbox with one non-blocking `send`: a healthy
reader costs no thread hand-off. What the kernel does not take is drained
by a writer thread, started only then, which coalesces everything queued
into each blocking `send`. Queued plus in-flight bytes are capped at
`limit`: beyond it `put` returns False and the service removes the member
as `slow`. No other member ever waits for this one; while it is still
draining past a soft limit, it makes senders pause instead
(`chatsrv.backpressure`).

An outbox is in exactly one `State`:

    OPEN --kernel refused bytes (writer starts)--> DRAINING
    OPEN <--------writer sent everything---------- DRAINING
    OPEN / DRAINING --put over the limit--> OVERFLOWED --close()--> CUT
    OPEN --close(), everything sent at once--> CUT
    OPEN --close(), bytes left (writer starts)--> CLOSING
    DRAINING --close()--> CLOSING --writer done, or CLOSE_GRACE over--> CUT
    any state --cut(), a send error, the peer gone, no thread for a writer--> CUT (final)

`put` appends in OPEN and DRAINING, is ignored in CLOSING and CUT (True),
and refused in OVERFLOWED (False). A writer thread runs only in DRAINING
and CLOSING (and in OVERFLOWED until the cut ends it).

Imports: wire (framing), tcpinfo (the default probe), backpressure.
"""

from __future__ import annotations

import collections
import enum
import socket
import threading
import time

from chatsrv.backpressure import Backpressure, Clock, PeerProgress
from chatsrv.tcpinfo import Probe, acknowledgements
from lanchat.wire import frames_with_seq

DEFAULT_OUTBOX_LIMIT = 1 << 20
CLOSE_GRACE = 1.0  # seconds a writer may keep flushing after close() before the socket is cut
SOFT_LIMIT_SHARE = 4  # the soft limit is a quarter of the outbox limit
IDLE_WAIT = 0.05  # seconds a handler waits at most for another thread's flush (WriteCombiner.wait_idle)
WRITE_SLICE = 64 * 1024  # the writer sends in slices, so pending_bytes (and lagging) follow the reader closely


class State(enum.Enum):
    """Where an outbox is in its life (see the diagram in the module docstring)."""

    OPEN = "open"  # takes puts; the combiner sends them without blocking
    DRAINING = "draining"  # takes puts; the kernel refused bytes and a writer thread sends the rest
    CLOSING = "closing"  # takes no puts; a writer sends what is left, for CLOSE_GRACE at most
    OVERFLOWED = "overflowed"  # a put went over the limit: puts refused, close() cuts at once
    CUT = "cut"  # the socket is shut down both ways; final


# Module names for the states: reading a member of an Enum class costs about
# 45 ns in CPython 3.11, a global about 10, and `put` runs once per member per batch.
OPEN, DRAINING, CLOSING, OVERFLOWED, CUT = State.OPEN, State.DRAINING, State.CLOSING, State.OVERFLOWED, State.CUT


class WriteCombiner:
    """Sends what batches queued, outside the service lock, combining concurrent batches.

    One thread at a time sends; a thread that finds another already sending
    leaves its outboxes to it and goes back to reading. Under light load
    the thread that handled a message sends it at once; under load (a join
    storm, a flood) the sending thread finds many batches queued per member
    and sends them with one `send` each.
    """

    def __init__(self) -> None:
        self._marked: collections.deque[TCPOutbox] = collections.deque()  # append/popleft are atomic: no lock
        self._flushing = threading.Lock()  # held by the one thread sending
        self._idle = threading.Event()  # clear while a thread sends
        self._idle.set()

    def wait_idle(self, timeout: float = IDLE_WAIT) -> None:
        """A handler about to run a batch waits here while another thread sends (at most `timeout`).

        Each `send` of a flush releases the GIL; a handler thread whose `recv`
        returned would take it there and run its whole batch before the
        flush's remaining members get their bytes. Waiting on an event instead
        leaves the GIL to the sender (measured: 3 to 5 thread switches per
        message down to about 1.3 with 5 senders; README, Performance).
        Concurrent batches still combine: the waiting ones queue for the
        service lock together and defer to each other (chatsrv.fanout).
        """
        if not self._idle.is_set():
            self._idle.wait(timeout)

    def mark(self, outbox: TCPOutbox) -> None:
        self._marked.append(outbox)

    def flush(self) -> None:
        marked = self._marked
        # Re-checked after every release: an outbox marked while the holder was
        # finishing is seen here, so nothing is ever left unsent.
        while marked:
            if not self._flushing.acquire(blocking=False):
                return  # the thread that holds it sends ours too
            self._idle.clear()
            try:
                while True:
                    try:
                        outbox = marked.popleft()
                    except IndexError:
                        break
                    outbox.send_queued()
            finally:
                self._idle.set()
                self._flushing.release()


class TCPOutbox:
    """A member's bounded queue of outgoing bytes (see the module docstring)."""

    # What `put` turns payloads into: length-prefixed frames with seq spliced in
    # (docs/protocol.md §2). The text door (`chatsrv.textdoor`) replaces it with text lines.
    encode = staticmethod(frames_with_seq)

    def __init__(
        self,
        sock: socket.socket,
        combiner: WriteCombiner,
        limit: int = DEFAULT_OUTBOX_LIMIT,
        backpressure: Backpressure | None = None,
        *,
        probe: Probe = acknowledgements,
        clock: Clock = time.monotonic,
    ) -> None:
        # Set here and never changed: read without a lock.
        self.sock = sock
        self.combiner = combiner
        self.limit = limit
        self.soft_limit = limit // SOFT_LIMIT_SHARE if limit else 0
        self.backpressure = backpressure
        self.clock = clock
        # Every field below is owned by _lock.
        self._lock = threading.Lock()
        self._state = OPEN
        self._progress = PeerProgress(sock, probe, clock())
        self._chunks: list[bytes] = []
        self._pending_bytes = 0  # queued + being written
        self._marked = False  # waiting in the combiner's queue (OPEN only); flush reads it without the lock
        self._writer: threading.Thread | None = None  # join() reads it without the lock
        self._is_lagging = False  # what Backpressure was last told to look at; it reads it without the lock
        self._grace: threading.Timer | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def is_lagging(self) -> bool:
        return self._is_lagging

    def put(self, bodies: list[bytes], first_seq: int) -> bool:
        data = self.encode(bodies, first_seq)
        with self._lock:
            state = self._state
            if state is not OPEN and state is not DRAINING:
                return state is not OVERFLOWED  # ignored once closing or cut; refused once overflowed
            if self.limit and self._pending_bytes + len(data) > self.limit:
                self._state = OVERFLOWED
                return False
            self._chunks.append(data)
            self._pending_bytes += len(data)
            mark = state is OPEN and not self._marked
            if mark:
                self._marked = True
            changed = self._lag_change()
        if mark:
            self.combiner.mark(self)
        self._tell_backpressure(changed)
        return True

    def flush(self) -> None:
        """After a batch, outside the service lock: the combiner sends what is marked.

        Read without the lock: the thread that marked this outbox (in `put`)
        sees its own mark here unless a combiner already sent it; after the
        first flush of a batch has sent everyone, the others cost one read.
        """
        if self._marked:
            self.combiner.flush()

    def progress(self, now: float) -> float:
        """Backpressure: look at the peer's acknowledgements; when it last took MIN_PROGRESS."""
        with self._lock:
            return self._progress.look(now)

    def _lag_change(self) -> bool:
        """Under the lock: bring `is_lagging` up to date; True when it changed.

        Lagging means the kernel would not take more (a writer thread is
        waiting on the socket) and more than the soft limit is queued. Bytes
        that merely wait for the combiner's next send are not lagging.
        """
        lagging = self._writer is not None and self._state is not CUT and 0 < self.soft_limit < self._pending_bytes
        changed = lagging != self._is_lagging
        self._is_lagging = lagging
        return changed

    def _sent(self, sent: int, behind: bool) -> None:
        """Under the lock: the kernel took `sent` bytes; `behind` if it would not take all."""
        self._pending_bytes -= sent
        now = self.clock()
        progress = self._progress
        if behind or now >= progress.due:  # the common case (kept up, looked at lately) costs nothing more
            progress.sent(now, behind)

    def _tell_backpressure(self, changed: bool) -> None:
        if changed and self.backpressure is not None:
            self.backpressure.update(self)

    def send_queued(self) -> None:
        """Combiner (and close): send what is queued without blocking; a writer thread takes the rest."""
        with self._lock:
            self._marked = False
            state = self._state
            if self._writer is not None or not (state is OPEN or state is CLOSING):
                return
            no_thread = False
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
                    if state is OPEN:
                        self._state = DRAINING
                    writer = threading.Thread(target=self._drain, name="tcp-writer", daemon=True)
                    try:
                        writer.start()  # it waits for this lock
                        self._writer = writer
                    except RuntimeError:  # no thread to be had: cut this member, not leave it without a writer
                        no_thread = True
            hang_up = (state is CLOSING and self._writer is None) or no_thread
            changed = self._lag_change()
        self._tell_backpressure(changed)
        if hang_up:
            self.cut()

    def _drain(self) -> None:
        """Writer thread: send queued bytes until the queue is empty, then exit."""
        hang_up = False
        while True:
            with self._lock:
                if not self._chunks:
                    self._writer = None
                    if self._state is DRAINING:
                        self._state = OPEN
                    hang_up = self._state is CLOSING
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
                hang_up = True
                break
        with self._lock:
            changed = self._lag_change()  # the writer is gone: not lagging
        self._tell_backpressure(changed)
        if hang_up:
            self.cut()

    def close(self) -> None:
        """Stop accepting payloads; send what is queued (briefly), then hang up."""
        with self._lock:
            state = self._state
            if state is CLOSING or state is CUT:
                return
            if state is not OVERFLOWED:
                self._state = CLOSING
        if state is OVERFLOWED:
            self.cut()  # a reader that stopped reading gets nothing more
            return
        self.send_queued()  # the last payloads (an error, a notice) go now; cuts when all is sent
        with self._lock:
            if self._writer is None or self._state is CUT:
                return
            # The writer flushes the rest, but a reader that never reads would
            # keep it in send: cut it off after a grace period.
            self._grace = threading.Timer(CLOSE_GRACE, self.cut)
            self._grace.daemon = True
            self._grace.start()

    def cut(self) -> None:
        """Shut the socket down both ways now; wakes a blocked recv or send."""
        with self._lock:
            if self._state is CUT:
                return
            self._state = CUT
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
