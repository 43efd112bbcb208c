"""Fault injection for teaching: loss, duplication, reordering and delay of UDP datagrams.

A class cannot always see what UDP does on a quiet LAN, and netem needs root
(and is missing on some kernels). So the server can impair the datagrams it
sends to its UDP peers itself (`--udp-loss`, `--udp-dup`, `--udp-reorder`,
`--udp-delay MS[:JITTER]`, `--seed`). Every decision about a datagram is a
hash of the seed, the member and the datagram's `seq` (docs/protocol.md §3),
never a draw from a shared random stream: so the same seed loses, copies and
holds back the same `seq`s of the same member whatever the timing, however
the threads interleave and whoever joins first. The member is named by the
nick of its `welcome` (seq 1 of every UDP peer, docs/protocol.md §3), so a
bot called u1 loses the same messages in every run of a lab.

The injector also counts, per peer, what it did (`injected_lost`,
`injected_duplicates`, `injected_reordered`). Reordering is counted when it
really happens, at release time, with the same rule a receiver's SeqTracker
uses (docs/protocol.md §3: a datagram that goes out after a later one), so on
loopback the client's counters equal the server's injected ones and,
on a real network, the difference is what the network did.

Pure: no sockets, no threads, no clock (`now` is passed in). The UDP adapter
(`chatsrv.udp`) sends what this module says is due and runs the timer.
Imports only the standard library.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from lanchat.i18n import _

__all__ = ["REORDER_HOLD", "FaultInjector", "Impairment", "Path", "fate_numbers", "parse_delay"]

REORDER_HOLD = 0.5  # seconds a datagram picked for reordering waits for a successor to overtake it

_SEQ_AT_END = re.compile(rb',"seq":(\d+)\}\Z')  # every server payload ends with its seq (wire.with_seq)
_TWO_TO_64 = float(1 << 64)


def fate_numbers(seed: int, member: str, seq: int) -> tuple[float, float, float, float]:
    """Four numbers in [0, 1) for one datagram: loss, duplication, reordering and jitter draws.

    A keyed hash, not a random stream: the answer for (seed, member, seq)
    never depends on what was asked before, which is what makes a run
    repeatable when timing differs. BLAKE2b is in every Python and its
    output is the same on every machine (unlike `hash()`).
    """
    digest = hashlib.blake2b(f"{seed}\x00{member}\x00{seq}".encode(), digest_size=32).digest()
    numbers = [int.from_bytes(digest[start : start + 8], "big") / _TWO_TO_64 for start in range(0, 32, 8)]
    return numbers[0], numbers[1], numbers[2], numbers[3]


def _member_name(first_datagram: bytes) -> str | None:
    """The nick in a peer's first datagram, its `welcome`; None when it is something else."""
    try:
        payload = json.loads(first_datagram)
    except ValueError:
        return None
    if isinstance(payload, dict) and payload.get("type") == "welcome" and isinstance(payload.get("nick"), str):
        return str(payload["nick"])
    return None


def parse_delay(text: str) -> tuple[float, float]:
    """`"50"` -> (50.0, 0.0); `"50:10"` -> (50.0, 10.0): delay and jitter in milliseconds.

    Raises ValueError with a sentence a person understands.
    """
    delay_text, colon, jitter_text = text.partition(":")
    try:
        delay = float(delay_text)
        jitter = float(jitter_text) if colon else 0.0
    except ValueError:
        raise ValueError(
            _("expected MS or MS:JITTER in milliseconds, like 50 or 50:10, not {text!r}").format(text=text)
        ) from None
    if not (0 <= delay <= 10_000) or not (0 <= jitter <= 10_000):
        raise ValueError(_("delay and jitter must be 0 to 10000 ms, not {text!r}").format(text=text))
    return delay, jitter


@dataclass(frozen=True)
class Impairment:
    """What to do to outgoing datagrams; percentages 0-100, times in milliseconds."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    seed: int = 0

    @property
    def active(self) -> bool:
        return any((self.loss, self.duplicate, self.reorder, self.delay, self.jitter))

    @property
    def needs_timer(self) -> bool:
        """True when datagrams can be held back, so something must release them later."""
        return any((self.reorder, self.delay, self.jitter))

    def as_dict(self) -> dict[str, Any]:
        """The optional `impairment` field of a UDP `welcome` (docs/protocol.md)."""
        return {
            "loss": self.loss,
            "duplicate": self.duplicate,
            "reorder": self.reorder,
            "delay_ms": self.delay,
            "jitter_ms": self.jitter,
            "seed": self.seed,
        }

    def describe(self) -> str:
        """One line for people: `loss 10%, duplicate 0%, reorder 0%, delay 50±10 ms, seed 1`."""
        delay = f"{self.delay:g}±{self.jitter:g} ms" if self.jitter else f"{self.delay:g} ms"
        return (
            f"loss {self.loss:g}%, duplicate {self.duplicate:g}%, reorder {self.reorder:g}%, "
            f"delay {delay}, seed {self.seed}"
        )


class _Scheduled:
    """A datagram waiting in the injector until `due`; equal dues leave in `order` (first in, first out)."""

    __slots__ = ("cancelled", "copy", "data", "due", "index", "natural_due", "order", "path")

    def __init__(self, due: float, order: int, path: Path, index: int, data: bytes, copy: bool) -> None:
        self.due = due
        self.natural_due = due  # when it would go without a reordering hold
        self.order = order
        self.path = path
        self.index = index
        self.data = data
        self.copy = copy
        self.cancelled = False

    def __lt__(self, other: _Scheduled) -> bool:
        return (self.due, self.order) < (other.due, other.order)


@dataclass(eq=False)
class Path:
    """One peer's impaired path: its counters and what the injector holds for it."""

    destination: Any
    member: str | None = None  # who, for the fate hash: the welcome's nick, else "peer N" (N: order opened)
    number: int = 0
    counters: dict[str, int] = field(
        default_factory=lambda: {"injected_lost": 0, "injected_duplicates": 0, "injected_reordered": 0}
    )
    submitted: int = 0  # datagrams handed to the injector (1, 2, 3 ... like the peer's seq)
    highest_released: int = 0
    held: list[_Scheduled] = field(default_factory=list)  # picked for reordering: original (+ copy)
    closed: bool = False


Release = tuple[Any, bytes]  # (destination, datagram) to send now


class FaultInjector:
    """Decides the fate of every datagram sent to every peer, deterministically under a seed."""

    def __init__(self, impairment: Impairment, hold: float = REORDER_HOLD) -> None:
        self.impairment = impairment
        self.hold = hold
        self._order = itertools.count()
        self._paths_opened = itertools.count(1)
        self._queue: list[_Scheduled] = []

    def open_path(self, destination: Any, member: str | None = None) -> Path:
        """A path to one peer; `member` names it for the fate hash (default: the nick its welcome carries)."""
        return Path(destination, member=member, number=next(self._paths_opened))

    def close_path(self, path: Path) -> None:
        """Forget a peer: nothing new is taken for it; what is already on its way still goes.

        (The last payloads a peer gets, like the shutdown notice, are queued
        just before its outbox closes: they are in flight, not cancelled.)
        """
        path.closed = True

    def submit(self, path: Path, data: bytes, now: float) -> list[Release]:
        """Take one datagram for `path`; return what must be sent right now, in order."""
        settings = self.impairment
        path.submitted += 1
        index = path.submitted
        if path.member is None:
            path.member = _member_name(data) or f"peer {path.number}"
        found = _SEQ_AT_END.search(data)
        seq = int(found.group(1)) if found else index
        # The same four numbers whatever the settings, so changing one setting (say
        # --udp-dup) does not change which datagrams another (say --udp-loss) picks.
        draws = fate_numbers(settings.seed, path.member, seq)
        lose, duplicate, reorder, jitter = draws[0] * 100, draws[1] * 100, draws[2] * 100, draws[3] * 2 - 1
        if path.closed:
            return []
        if lose < settings.loss:
            path.counters["injected_lost"] += 1
            return []
        due = now + max(0.0, settings.delay + jitter * settings.jitter) / 1000.0
        entries = [_Scheduled(due, next(self._order), path, index, data, False)]
        if duplicate < settings.duplicate:
            path.counters["injected_duplicates"] += 1
            entries.append(_Scheduled(due, next(self._order), path, index, data, True))
        if reorder < settings.reorder and not path.held:
            # Hold it back until the next datagram to this peer has gone (or `hold` passed).
            for entry in entries:
                entry.due = max(entry.due, now + self.hold)
                heapq.heappush(self._queue, entry)
            path.held = entries
            return self.release_due(now)
        released_held = path.held
        path.held = []
        for entry in entries:
            heapq.heappush(self._queue, entry)
        for entry in released_held:
            # The held datagram now follows this one: the peer sees them swapped.
            entry.cancelled = True
            heapq.heappush(
                self._queue,
                _Scheduled(
                    max(entries[-1].due, entry.natural_due),
                    next(self._order),
                    path,
                    entry.index,
                    entry.data,
                    entry.copy,
                ),
            )
        return self.release_due(now)

    def next_due(self) -> float | None:
        """When the earliest waiting datagram is due (None when nothing waits)."""
        while self._queue and self._queue[0].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0].due if self._queue else None

    def release_due(self, now: float) -> list[Release]:
        """Every waiting datagram whose time has come, in the order to send them."""
        out: list[Release] = []
        queue = self._queue
        while queue and queue[0].due <= now:
            entry = heapq.heappop(queue)
            if entry.cancelled:
                continue
            self._account(entry)
            out.append((entry.path.destination, entry.data))
        return out

    def drain(self) -> list[Release]:
        """Everything still waiting, in order (used at shutdown so nothing is stranded)."""
        return self.release_due(float("inf"))

    def _account(self, entry: _Scheduled) -> None:
        path = entry.path
        if entry in path.held:
            path.held = []  # its hold ran out with no successor: sent in order after all
        if entry.copy:
            return
        if entry.index < path.highest_released:
            path.counters["injected_reordered"] += 1
        else:
            path.highest_released = entry.index
