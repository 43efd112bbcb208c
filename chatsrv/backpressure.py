"""Backpressure: pause senders while a member that is still reading lags behind.

Two pieces, both free of sockets of their own:
- `PeerProgress` dates a member's progress from the probe's answers
  (`chatsrv.tcpinfo`): when its peer last acknowledged MIN_PROGRESS more
  bytes. Its owner (a `chatsrv.outbox.TCPOutbox`) calls it under its own
  lock, so every field here has that one owner lock.
- `Backpressure` keeps the set of lagging members (`LaggingReader`, a small
  protocol tests can script) and makes handlers `wait` between batches while
  one of them is still taking data.

The clock is injected (`time.monotonic` by default); so is the probe.

Imports: tcpinfo (the probe's types) only.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable
from typing import Protocol

from chatsrv.tcpinfo import Probe

Clock = Callable[[], float]

MAX_PAUSE = 0.5  # longest a sender's reading is paused for one batch
STALL = 0.05  # a lagging reader whose peer acknowledged under MIN_PROGRESS for this long pauses nobody
POLL = STALL / 4  # how often paused senders, and sends of a lagging reader, look at its acknowledgements
# How often sends to a member that keeps up look: a look is a getsockopt that holds the GIL, and at
# 500 msg/s to 50 members, looking every POLL took 13 % of the server's Python time (py-spy --gil).
KEPT_UP_LOOK = STALL
# Less than this acknowledged is no sign of reading: a peer that stopped still
# ACKs what its receive buffer takes, a delayed ACK 40 ms later, and answers
# window probes. On loopback a reading peer's window opens ~93 KiB at a time.
MIN_PROGRESS = 16 * 1024


class LaggingReader(Protocol):
    """What `Backpressure` needs of a member (a `TCPOutbox`, or a scripted one in tests)."""

    @property
    def is_lagging(self) -> bool:
        """More than the soft limit queued while the kernel takes no more."""

    def progress(self, now: float) -> float:
        """Look at the peer (if it can be looked at) and return when it last took data."""


class PeerProgress:
    """When a member's peer last took data, from the kernel's acknowledgement count.

    Not locked itself: the owning outbox calls every method under its own
    lock (so `last`, `_counted` and `due` have exactly one owner lock).

    With a probe that answers, progress means the peer acknowledged
    MIN_PROGRESS more bytes, dated by its last ACK. With a probe that
    answers None at the start (no TCP_INFO here), every send the kernel
    takes counts as progress instead: the best sign left.
    """

    __slots__ = ("_acknowledged", "_counted", "_probe", "_sock", "due", "last")

    def __init__(self, sock: socket.socket, probe: Probe, now: float) -> None:
        self._sock = sock
        self._probe = probe
        self._acknowledged = probe(sock) is not None  # progress from the peer's ACKs
        self.last = now  # when the peer last made progress
        self._counted = 0  # bytes the peer had acknowledged at the last progress counted
        # When a send that the kernel took whole should look again (see `sent`);
        # without acknowledgements every send counts, so it is always due.
        self.due = now + POLL if self._acknowledged else -math.inf

    def sent(self, now: float, behind: bool) -> None:
        """The kernel took bytes; `behind` if it would not take all of them.

        The acknowledgements are looked at when the member falls behind, and
        otherwise at most every KEPT_UP_LOOK: a look dates progress by the
        peer's last ACK, not by the look, so `last` is known to within
        KEPT_UP_LOOK whenever the member starts lagging (one that stopped
        reading long before its buffers filled pauses nobody at all), and a
        member that keeps up costs one extra system call per KEPT_UP_LOOK,
        not per send. The caller may skip this call when neither `behind`
        nor `now >= due`.
        """
        if not self._acknowledged:  # no better sign than the kernel taking bytes
            self.last = now
        elif behind:
            self.look(now)
        elif now >= self.due:
            self.look(now)
            self.due = now + KEPT_UP_LOOK

    def look(self, now: float) -> float:
        """If the peer acknowledged MIN_PROGRESS more bytes since the last progress, note when; return `last`."""
        if not self._acknowledged:
            return self.last  # every send marks progress instead (`sent`)
        self.due = now + POLL
        answer = self._probe(self._sock)
        if answer is None:
            return self.last
        acked, quiet = answer
        if acked - self._counted >= MIN_PROGRESS:
            self._counted = acked
            # The newest ACK came `quiet` seconds ago; the one that took data
            # was that one or an earlier one: a stuck member shows its age.
            self.last = max(self.last, now - quiet)
        return self.last


class Backpressure:
    """IRC's soft SendQ: pause senders while a reader that is still draining lags.

    A bounded outbox alone is not enough once the server is fast: a flooding
    sender outruns healthy readers, which would then be dropped as slow. So
    while some member has more than the soft limit queued *and is still
    taking data*, handlers wait (at most MAX_PAUSE per batch) before reading
    their next batch. A member that takes nothing for STALL seconds no
    longer pauses anyone; it is dropped at the hard limit instead
    (docs/architecture.md, "Rules that keep it fast and safe").

    "Taking data" means the peer's TCP acknowledges bytes (`PeerProgress`),
    looked at every POLL while senders wait. Bytes the kernel merely
    accepted into a full socket buffer do not count, so a member that never
    reads stops pausing anyone after STALL, however large its buffers (the
    few KB it still ACKs are under MIN_PROGRESS), and one that reads slowly
    but steadily keeps pausing them.

    Lock order: `_condition`, then a member's own lock (inside `progress`);
    members call `update` with their lock released.
    """

    def __init__(
        self, max_pause: float = MAX_PAUSE, stall: float = STALL, poll: float = POLL, clock: Clock = time.monotonic
    ) -> None:
        self.max_pause = max_pause
        self.stall = stall
        self.poll = poll
        self.clock = clock
        self._condition = threading.Condition()
        self._lagging: set[LaggingReader] = set()  # owned by _condition

    @property
    def lagging_count(self) -> int:
        """Members lagging right now (each may pause senders while it drains)."""
        return len(self._lagging)

    def update(self, reader: LaggingReader) -> None:
        """Take in `reader`'s lagging state as it is now.

        Called after every change, but outside the reader's lock, so two
        calls may arrive in either order: reading the state here (not
        passing it along) makes the last call apply the last state.
        """
        with self._condition:
            if reader.is_lagging:
                self._lagging.add(reader)
            elif reader in self._lagging:
                self._lagging.discard(reader)
                self._condition.notify_all()

    def wait(self) -> None:
        """Called by a handler between batches: pause while a draining reader lags."""
        if not self._lagging:  # the common case costs one attribute read
            return
        clock = self.clock
        deadline = clock() + self.max_pause
        with self._condition:
            while True:
                now = clock()
                if now >= deadline:
                    return
                draining = False
                for reader in self._lagging:
                    draining = now - reader.progress(now) < self.stall or draining
                if not draining:
                    return
                self._condition.wait(min(deadline - now, self.poll))
