"""Admitting connections: the address rules, the limits, and the budget for new sessions (docs/protocol.md §7.1).

Owns `Admission`, the part of `ChatService` (chatsrv.service) that adapters
call when a connection or UDP peer arrives (`connect`), the per-address
budget for new sessions that keeps a reconnect storm from flooding rooms
with joined/left lines, and the console lines for refused connections (a
few per address). A mixin: `ChatService` creates the state it uses
(annotated below) in its `__init__`; nothing here is used on its own.

Imports: access, mistakes, ratelimit, session, rooms (and lanchat.wire).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

from chatsrv.access import Access, address_key
from chatsrv.mistakes import MAX_ADDRESSES, MistakeLog, left_out_note
from chatsrv.ratelimit import TokenBucket
from chatsrv.rooms import Registry
from chatsrv.session import Outbox, Session
from lanchat.reasons import say
from lanchat.wire import ProtocolError

log = logging.getLogger("chatsrv")

# New sessions one address may open at once before --session-rate applies: a
# student's client reconnecting a few times, or a class behind one address
# arriving, fits; a script's join/leave storm does not (docs/protocol.md §7.1).
SESSION_BURST = 10


class Admission:
    """Who may connect, and how fast one address may open new sessions; mixed into ChatService."""

    registry: Registry
    access: Access
    sessions: set[Session]
    max_clients: int
    max_per_ip: int
    rate: float
    burst: int
    session_rate: float
    session_burst: int
    _per_host: collections.Counter[Any]
    _session_budgets: dict[str, TokenBucket]
    _refusal_lines: MistakeLog
    clock: Callable[[], float]

    def connect(self, outbox: Outbox, address: Any, transport: str, max_frame: int) -> Session:
        """Admit a new connection or peer; raises `not_allowed` for a denied or
        banned address (checked first), `server_full` when at a limit."""
        with self.registry.lock:
            self.access.check_address(address)
            if self.max_clients and len(self.sessions) >= self.max_clients:
                raise ProtocolError("server_full", say("server_full", limit=self.max_clients), fatal=True)
            host = address_key(address)  # an IPv6 /64 is one host (chatsrv.access)
            if self.max_per_ip and self._per_host[host] >= self.max_per_ip:
                raise ProtocolError(
                    "server_full", say("too_many_from", host=host, limit=self.max_per_ip), fatal=True
                )
            now = self.clock()
            self._spend_session_budget(host, now)
            session = Session(outbox, address, transport, max_frame, TokenBucket(self.rate, self.burst, now), now)
            self.sessions.add(session)
            self._per_host[host] += 1
            return session

    def log_refusal(self, address: Any, template: str, peer: str, reason: object) -> None:
        """An adapter's console line for a connection the service refused, a few per address.

        `template` is the adapter's %-template for the peer, the reason and
        the note on lines left out ("refused %s: %s%s", marked for
        translation where it is defined: the console shows it translated).

        A script reconnecting in a loop is refused thousands of times a
        minute; past BURST lines per interval the rest go to debug, and the
        next line says how many were left out (chatsrv.mistakes).
        """
        left_out = self._refusal_lines.report(address_key(address))
        if left_out is None:
            log.debug(template, peer, reason, "")
        else:
            log.info(template, peer, reason, left_out_note(left_out))

    def _spend_session_budget(self, host: str, now: float) -> None:
        """Raise a fatal `rate_limited` when `host` opened new sessions faster than its budget allows.

        Refused before `hello`, so a script that connects, says hello and bye
        in a loop cannot fill every room with joined/left lines, the log and
        the store. The table forgets the least recently used address past
        MAX_ADDRESSES (a forgotten address only gets a fresh burst).
        """
        if self.session_rate <= 0:
            return
        budget = self._session_budgets.pop(host, None) or TokenBucket(self.session_rate, self.session_burst, now)
        self._session_budgets[host] = budget  # re-inserted: the dict stays least recently used first
        while len(self._session_budgets) > MAX_ADDRESSES:
            del self._session_budgets[next(iter(self._session_budgets))]
        if not budget.allow(now):
            raise ProtocolError(
                "rate_limited",
                say("joins_too_fast", host=host, burst=self.session_burst, rate=self.session_rate),
                fatal=True,
            )
