"""Token bucket rate limiter, given the time by its caller.

A leaf module: no clock, no threads, no other lanchat imports, so the
service can be tested with a fake clock.
"""

from __future__ import annotations


class TokenBucket:
    """Allows `burst` events at once and `rate` events per second on average.

    A `rate` of 0 disables the limit (every event is allowed).
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._tokens = self.burst
        self._last = now

    def allow(self, now: float) -> bool:
        """Take one token if there is one; True when the event may proceed."""
        if self.rate <= 0:
            return True
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
