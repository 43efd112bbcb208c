"""What the chat service does when a payload fails: the reply, the count, and the console line.

Owns `ErrorReplies`, the part of `ChatService` (chatsrv.service) that turns
a `ProtocolError` into an `error` payload for the member, counts errors in a
row (closing at `max_errors`), says on the console what was refused or
broken (a few lines per address, chatsrv.mistakes), and contains a bug in a
handler: one `internal_error` reply and one traceback per address per
window (docs/protocol.md §7.3). A mixin: `ChatService` creates the state it
uses (annotated below) in its `__init__`; nothing here is used on its own.

Imports: access, mistakes, moderation, session, fanout (and lanchat.wire).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chatsrv.access import address_key
from chatsrv.fanout import FanOut
from chatsrv.mistakes import MistakeLog, left_out_note
from chatsrv.moderation import Refusal
from chatsrv.session import Session
from lanchat.i18n import N_
from lanchat.reasons import say
from lanchat.wire import ProtocolError, encode_payload

log = logging.getLogger("chatsrv")

# Error codes that refuse what a person asked for (docs/protocol.md §6): logged as refusals. Every
# other code (bad_request, frame_too_large, not_joined, timeout, ...) is a protocol error of the program.
NICK_REFUSALS = frozenset({"nick_invalid", "nick_taken"})
REFUSALS = frozenset(
    {"auth_failed", "room_invalid", "text_invalid", "no_such_user", "not_allowed", "rate_limited", "server_full"}
)

# What a rule refused, and who (marked here: a log.log call is not extracted, and the console translates it).
REFUSAL_LINE = N_("%s (%s)")


def nick_taken(nick: str, held: str) -> ProtocolError:
    """The refusal of `nick`, held as `held` ("": unknown): a look-alike names the nick it looks like (§6)."""
    if held in ("", nick):
        return ProtocolError("nick_taken", say("nick_taken", nick=nick))
    return ProtocolError("nick_taken", say("nick_lookalike", nick=nick, held=held))

# One traceback per peer address per window: a payload that hits a bug again
# and again must not flood the log (docs/protocol.md §7.3, `internal_error`).
TRACEBACK_WINDOW = 60.0
MAX_TRACKED_HOSTS = 1024  # addresses remembered for the traceback window before old ones are forgotten


class ErrorReplies:
    """Error replies, errors in a row, and their console lines; mixed into ChatService."""

    fanout: FanOut
    max_errors: int
    drop: Callable[..., None]
    _error_lines: MistakeLog
    _traceback_logged: dict[Any, float]
    _tracebacks_quiet: dict[Any, int]

    def _fail(self, session: Session, error: ProtocolError, logged: bool = False) -> None:
        if error.code != "not_allowed":
            # Being refused by a rule (muted, locked room) is not abuse; it is
            # not counted towards max_errors. Guessing the operator secret is
            # limited on its own (operators.py).
            session.errors_in_a_row += 1
        if isinstance(error, Refusal):
            # A rule was applied: not a protocol error. Once on the console: the audit log may have said it.
            log.log(logging.DEBUG if error.audited else logging.INFO, REFUSAL_LINE, error.summary, session.describe())
        elif error.code in NICK_REFUSALS:
            log.info("%s: nick refused: %s", session.describe(), error.said or error.message)
        elif error.code in REFUSALS:
            log.info("refused %s: %s", session.describe(), error.said or error.message)
        else:
            self._log_protocol_error(session, error, logged)
        if session.closed:
            return
        self.fanout.queue(session, encode_payload(error.payload()))
        if error.fatal or session.errors_in_a_row >= self.max_errors:
            if not error.fatal:
                log.warning("%s: %d errors in a row, closing", session.describe(), session.errors_in_a_row)
            self.drop(session, "error")

    def _log_protocol_error(self, session: Session, error: ProtocolError, logged: bool) -> None:
        """One console line per protocol error, at most a few per address per interval (chatsrv.mistakes).

        A script that repeats a bad frame in a loop, or reconnects to do it
        again, would otherwise write a line per frame: megabytes a minute.
        The next line after a pause says how many were left out.
        """
        if logged:
            log.debug("protocol error from %s: %s %s", session.describe(), error.code, error.message)
            return
        left_out = self._error_lines.report(_host(session))
        if left_out is None:
            log.debug("protocol error from %s: %s %s", session.describe(), error.code, error.message)
            return
        log.info(
            "protocol error from %s: %s %s%s", session.describe(), error.code, error.message, left_out_note(left_out)
        )

    def _internal_error(self, session: Session, now: float) -> None:
        """A handler raised: log it (once per window per address), answer `internal_error`, go on.

        Called from inside an `except` block, so the traceback is the one being handled.
        """
        host = _host(session)
        last = self._traceback_logged.get(host)
        if last is None or now - last >= TRACEBACK_WINDOW or now < last:
            quiet = self._tracebacks_quiet.pop(host, 0)
            more = f" ({quiet} more since the last report)" if quiet else ""
            log.exception("internal error handling a payload from %s%s", session.describe(), more)
            if len(self._traceback_logged) >= MAX_TRACKED_HOSTS:
                self._forget_old_tracebacks(now)
            self._traceback_logged[host] = now
        else:
            self._tracebacks_quiet[host] = self._tracebacks_quiet.get(host, 0) + 1
        # Counted like any other error, so a peer that keeps hitting the bug is closed at max_errors.
        session.errors_in_a_row += 1
        if session.closed:
            return
        error = ProtocolError("internal_error", say("internal_error"))
        self.fanout.queue(session, encode_payload(error.payload()))
        if session.errors_in_a_row >= self.max_errors:
            log.warning("%s: %d errors in a row, closing", session.describe(), session.errors_in_a_row)
            self.drop(session, "error")

    def _forget_old_tracebacks(self, now: float) -> None:
        for host, when in list(self._traceback_logged.items()):
            if now - when >= TRACEBACK_WINDOW or now < when:
                del self._traceback_logged[host]
                self._tracebacks_quiet.pop(host, None)


def _host(session: Session) -> str:
    return address_key(session.address)
