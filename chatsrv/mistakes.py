"""Students' framing mistakes on the teacher's console: one readable line each, a few per address.

A student whose own client frames wrongly (a native-order `struct.pack('i')`
header, `nc` typing text at the TCP port, a bare `hello` datagram) should
show up on the teacher's console as one line naming the address, so the
teacher can walk over and help. A broken client repeats its mistake in a
loop, so each address (the host, not the port: a student's reconnects get new
ports) gets at most BURST lines per `interval` (a student who fixes one
mistake and meets the next still sees both); the next line it gets after a
pause says how many were left out.

Pure apart from the lock: the clock is injected; adapters call `report` from
any thread (one TCP handler thread per connection, the UDP thread). The lock
guards the table of addresses. Imports nothing from chatsrv or lanchat.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

DEFAULT_INTERVAL = 10.0  # the window in which one address gets at most BURST lines
BURST = 3
MAX_ADDRESSES = 1024  # addresses remembered at once: a flood of forged sources cannot grow the table
EXCERPT_BYTES = 48


def excerpt(data: bytes, limit: int = EXCERPT_BYTES) -> str:
    r"""The first bytes of `data` as Python writes bytes (`b'hell'`, `b'!\x00\x00\x00'`), the form the
    tutorials print, then `…` when cut and the length."""
    more = "…" if len(data) > limit else ""
    return f"{data[:limit]!r}{more} ({len(data)} bytes)"


class MistakeLog:
    """Decides which mistakes get a console line: at most BURST per host per `interval`."""

    def __init__(self, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        # host -> (when its window began, lines shown in it, mistakes left out since the last line)
        self._last: dict[Any, tuple[float, int, int]] = {}

    def report(self, host: Any) -> int | None:
        """A mistake from `host`: None to leave it out, else how many were left out before it."""
        now = self.clock()
        with self._lock:
            began, shown, left_out = self._last.get(host, (now, 0, 0))
            if now - began >= self.interval:
                began, shown = now, 0
            if shown >= BURST:
                self._last[host] = (began, shown, left_out + 1)
                return None
            if host not in self._last and len(self._last) >= MAX_ADDRESSES:
                self._forget_old(now)
                if len(self._last) >= MAX_ADDRESSES:
                    return None  # a flood of addresses: the console would not be readable anyway
            self._last[host] = (began, shown + 1, 0)
            return left_out

    def _forget_old(self, now: float) -> None:
        for host, (began, _, _) in list(self._last.items()):
            if now - began >= self.interval:
                del self._last[host]


def one_line(text: str) -> str:
    r"""`text` as one printable console line: runs of whitespace become one space, controls become \xNN."""
    return "".join(
        char if char.isprintable() else repr(char)[1:-1] if ord(char) < 0x100 else f"\\u{ord(char):04x}"
        for char in " ".join(text.split())
    )


def left_out_note(left_out: int) -> str:
    """`` (and 3 more like it since the last line)`` for a line that had company, else empty."""
    return f" (and {left_out} more from this address since the last line)" if left_out else ""
