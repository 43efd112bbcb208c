"""What operators have decided: who is an operator, who is muted, which
rooms are locked or slow, and whether every room is locked (`/lock all`).

docs/protocol.md, "Extension: operators and access". Pure state: no
sockets, no clock (callers pass `now`), no threads; the service holds its
lock around every call. The checks raise a recoverable `Refusal` (a
`ProtocolError`) whose message explains the state in plain words to the
member, and whose `summary` says what happened for the server's log
("muted bob tried to speak"): a rule was applied, the protocol was kept.

A timed mute ends by itself: `end_mutes` (called by the service's tick)
takes the mutes that ran out, so the member can be told.

Kept off the hot path: `active` is False until an operator mutes someone,
locks a room or turns on slow mode, and the service looks at nothing else
here before a `say` while it is False.

Imports only lanchat.wire, lanchat.reasons and chatsrv.session (for the type).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chatsrv.session import Session
from lanchat.i18n import N_, LogText
from lanchat.reasons import Said, say
from lanchat.wire import ProtocolError

MAX_OP_TRIES = 5  # wrong operator secrets before the connection is closed


class Refusal(ProtocolError):
    """A rule said no (muted, locked, slow, not an operator); not a protocol error.

    `summary` is the line for the server's log, in the third person;
    `audited`: the audit log has told it already, so the service's own line
    drops to debug (one console line per refusal).
    """

    def __init__(
        self, code: str, message: str | Said, summary: LogText, *, fatal: bool = False, audited: bool = False
    ) -> None:
        super().__init__(code, message, fatal=fatal)
        self.summary = summary
        self.audited = audited


@dataclass(frozen=True)
class Mute:
    by: str  # the operator's nick
    until: float | None  # None: until someone unmutes


def minutes_left(until: float, now: float) -> int:
    """Whole minutes left (at least 1 while any time is left), for messages."""
    return max(1, math.ceil((until - now) / 60))


class Moderation:
    """Operators, mutes (by nick), and per-room lock and slow mode."""

    def __init__(self, max_op_tries: int = MAX_OP_TRIES) -> None:
        self.max_op_tries = max_op_tries
        self.operators: set[Session] = set()
        self.op_tries: dict[Session, int] = {}
        # A mute belongs to the nick (case-folded), so it outlasts a reconnect.
        self.mutes: dict[str, Mute] = {}
        self.locked: dict[str, str] = {}  # room key -> nick of the operator who locked it
        self.slow: dict[str, float] = {}  # room key -> least seconds between one member's messages
        self.last_said: dict[tuple[str, Session], float] = {}  # only for slow rooms
        self.lock_all: str | None = None  # nick of the operator who locked every room, or None
        self.active = False

    def _update(self) -> None:
        self.active = bool(self.mutes or self.locked or self.slow or self.lock_all)

    # --- operators --------------------------------------------------------

    def is_operator(self, session: Session) -> bool:
        return session in self.operators

    def grant(self, session: Session) -> None:
        self.operators.add(session)
        self.op_tries.pop(session, None)

    def wrong_secret(self, session: Session) -> int:
        """Count one wrong operator secret; returns how many tries are left."""
        tries = self.op_tries.get(session, 0) + 1
        self.op_tries[session] = tries
        return max(0, self.max_op_tries - tries)

    def forget(self, session: Session) -> None:
        """The member is gone: drop its operator status and slow-mode times."""
        self.operators.discard(session)
        self.op_tries.pop(session, None)
        if self.last_said:
            for key in [key for key in self.last_said if key[1] is session]:
                del self.last_said[key]

    # --- mutes ------------------------------------------------------------

    def mute(self, nick_key: str, by: str, until: float | None) -> None:
        self.mutes[nick_key] = Mute(by, until)
        self._update()

    def unmute(self, nick_key: str) -> bool:
        """Lift a mute; False when the nick was not muted."""
        found = self.mutes.pop(nick_key, None) is not None
        self._update()
        return found

    def mute_of(self, nick_key: str, now: float) -> Mute | None:
        """The mute in force for a nick (None once it has run out; `end_mutes` forgets it)."""
        mute = self.mutes.get(nick_key)
        if mute is not None and mute.until is not None and now >= mute.until:
            return None
        return mute

    def end_mutes(self, now: float) -> list[tuple[str, Mute]]:
        """Forget the timed mutes that have run out; returns them (nick key, mute) to tell their members."""
        ended = [(key, mute) for key, mute in self.mutes.items() if mute.until is not None and now >= mute.until]
        for key, _ in ended:
            del self.mutes[key]
        if ended:
            self._update()
        return ended

    def _mute_problem(self, session: Session, now: float, what: str) -> Said | None:
        """The refusal `what` (lanchat.reasons: muted_say, muted_whisper, muted_rename) if `session` is muted."""
        mute = self.mute_of((session.nick or "").casefold(), now)
        if mute is None:
            return None
        if mute.until is None:
            return say(what, by=mute.by)
        return say(what + "_for", by=mute.by, minutes=minutes_left(mute.until, now))

    # --- rooms ------------------------------------------------------------

    def lock(self, room_key: str, by: str) -> None:
        self.locked[room_key] = by
        self._update()

    def unlock(self, room_key: str) -> bool:
        found = self.locked.pop(room_key, None) is not None
        self._update()
        return found

    def set_lock_all(self, by: str | None) -> None:
        """Lock every room and stop room changes (`by`: the operator), or with None end that."""
        self.lock_all = by
        self._update()

    def set_slow(self, room_key: str, seconds: float) -> None:
        if seconds > 0:
            self.slow[room_key] = seconds
        else:
            self.slow.pop(room_key, None)
            for key in [key for key in self.last_said if key[0] == room_key]:
                del self.last_said[key]
        self._update()

    # --- checks (only called while `active`) -------------------------------

    def check_say(self, session: Session, room_key: str, now: float) -> None:
        """Raise unless `session` may speak in the room now; operators always may."""
        if session in self.operators:
            return
        nick = session.nick or "?"
        problem = self._mute_problem(session, now, "muted_say")
        if problem is not None:
            raise Refusal("not_allowed", problem, LogText(N_("muted %s tried to speak"), nick))
        if self.lock_all is not None:
            raise Refusal(
                "not_allowed",
                say("locked_all_say", by=self.lock_all),
                LogText(N_("%s tried to speak while every room is locked"), nick),
            )
        locker = self.locked.get(room_key)
        if locker is not None:
            raise Refusal(
                "not_allowed",
                say("locked_room_say", by=locker),
                LogText(N_("%s tried to speak in a locked room"), nick),
            )
        gap = self.slow.get(room_key)
        if gap is not None:
            last = self.last_said.get((room_key, session))
            if last is not None and now - last < gap:
                wait = math.ceil(gap - (now - last))
                raise Refusal(
                    "rate_limited",
                    say("slow_mode", gap=gap, wait=wait),
                    LogText(N_("%s tried to speak too soon in a slow room"), nick),
                )
            self.last_said[(room_key, session)] = now

    def check_whisper(self, session: Session, target: Session, now: float) -> None:
        """A muted member may still whisper, but only to operators (to ask to be unmuted)."""
        if session in self.operators or target in self.operators:
            return
        problem = self._mute_problem(session, now, "muted_whisper")
        if problem is not None:
            raise Refusal(
                "not_allowed",
                problem,
                LogText(N_("muted %s tried to whisper to %s"), session.nick, target.nick),
            )

    def check_rename(self, session: Session, now: float) -> None:
        """A muted member keeps its nick: the mute belongs to it, and renames reach the room."""
        problem = self._mute_problem(session, now, "muted_rename")
        if problem is not None and session not in self.operators:
            raise Refusal(
                "not_allowed",
                problem,
                LogText(N_("muted %s tried to change nick"), session.nick),
            )

    def check_join(self, session: Session, room_name: str) -> None:
        """While every room is locked only operators may change rooms."""
        if self.lock_all is not None and session not in self.operators:
            raise Refusal(
                "not_allowed",
                say("locked_all_join", by=self.lock_all),
                LogText(N_("%s tried to move to %s while every room is locked"), session.nick, room_name),
            )
