"""Operator commands: `op`, `kick`, `unban`, `mute`, `unmute`, `lock`,
`unlock`, `slow`, `announce`, `topic` (docs/protocol.md, "Extension:
operators and access").

`OperatorDesk` adds one handler per message type to the service's table,
so `ChatService.receive` dispatches them like `say` or `join`: same batch,
same lock, same rate limit. It uses the service's public `queue`,
`broadcast` and `drop` and keeps its decisions in `Moderation` (pure state)
and `Access` (addresses and bans). Nothing here runs for an ordinary
message.

Who hears what (tested in tests/unit/test_operators.py):
- `op`: the new operator's room (a `notice`, event `op`); a wrong secret
  only its sender (`error` `not_allowed`).
- `kick`: the target's room and the target itself (`left`, reason
  `kicked`, with `by` and `message`); the operator gets a confirming
  `notice` unless it is in that room and saw the `left`.
- `mute` / `unmute`: the target and the operator, nobody else.
- `lock`, `unlock`, `slow`, `topic`: the operator's room; `lock` and
  `unlock` with `all`: every member in every room.
- `announce`: every member in every room.
Everything an operator does, and every refused attempt, is written to the
`chatsrv.audit` log with who did it, to whom, and from which address.
What shapes the lesson (announcements, topics, mutes, locks, slow mode,
kicks and bans) is also recorded in the store for transcripts, and after
every command that changes moderation the service saves it
(`save_moderation`), so a restart keeps it.

Imports: access, messages, moderation, rooms, session, store, wire. The service
imports this module, so what this module needs from the service is
written down as the `ServiceCore` protocol instead of imported.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

from chatsrv.access import Access, host_address, secrets_match
from chatsrv.messages import Announce, Kick, Lock, Mute, Op, Slow, Topic, Unban, Unlock, Unmute
from chatsrv.moderation import Moderation, Refusal, minutes_left
from chatsrv.rooms import Registry, Room, name_key
from chatsrv.session import Session
from chatsrv.store import Event, Store
from lanchat.i18n import N_, LogText
from lanchat.reasons import VOCABULARY, Said, Scalar, say
from lanchat.wire import ProtocolError, encode_payload

audit = logging.getLogger("chatsrv.audit")

Handler = Callable[[Session, Any, float], None]


class ServiceCore(Protocol):
    """The parts of ChatService an operator command uses (its state, and queueing inside a batch)."""

    registry: Registry
    sessions: set[Session]
    moderation: Moderation
    access: Access
    store: Store

    def save_moderation(self) -> None: ...

    def queue(self, session: Session, body: bytes) -> None: ...

    def broadcast(self, room: Room, payload: dict[str, Any] | bytes, exclude: Session | None = None) -> bytes: ...

    def drop(self, session: Session, reason: str, details: dict[str, Any] | None = None) -> None: ...


def _who(session: Session) -> str:
    """`nick [tcp 127.0.0.1:50312]`: who did something, and from where."""
    return session.describe()


# Parts of audit lines, marked here (Babel does not look inside a log call's other arguments).
_KICK_REASON = N_(" reason=%r")
_MORE_CONNECTIONS = N_(" (and %d more connection(s) from %s)")
_NOT_BANNED = N_(" (was not banned)")
# What was wrong with an /op, for the audit line (the sentence's start, without the tries); %s: its facts.
_OP_PROBLEMS = {
    "op_secret_wrong": N_("wrong operator secret"),
    "op_secret_none": N_("this server has no operator secret"),
    "op_secret_wait": N_("too many wrong secrets from %s: try again in %s s"),
}


def _duration(minutes: float | None) -> str:
    return f"for {minutes:g} minute(s)" if minutes else "until an operator unmutes them"


class OperatorDesk:
    """The operator commands of one ChatService."""

    def __init__(self, service: ServiceCore, op_secret: str | None) -> None:
        self.service = service
        self.moderation = service.moderation
        self.access = service.access
        self.op_secret = op_secret or None

    def handlers(self) -> dict[type, Handler]:
        changing: dict[type, Handler] = {
            Kick: self.kick,
            Unban: self.unban,
            Mute: self.mute,
            Unmute: self.unmute,
            Lock: self.lock,
            Unlock: self.unlock,
            Slow: self.slow,
            Topic: self.topic,
        }
        table = {kind: self._saving(handler) for kind, handler in changing.items()}
        table.update({Op: self.op, Announce: self.announce})
        return table

    def _saving(self, handler: Handler) -> Handler:
        """`handler`, then the moderation state saved for the next start (only when it did not refuse)."""

        def run(session: Session, message: Any, now: float) -> None:
            handler(session, message, now)
            self.service.save_moderation()

        return run

    def _record(self, kind: str, now: float, session: Session, room: Room | None, **fields: Any) -> None:
        """The event in the store, for transcripts (`to`, `text`, `reason` as in `Event`)."""
        self.service.store.add(Event(kind, now, session.nick or "", room.name if room else None, **fields))

    # --- helpers ----------------------------------------------------------

    @staticmethod
    def _notice(event: str | None, text: str | Said, now: float, **fields: Any) -> bytes:
        """A `notice` a plain client shows as text; `event` and fields let a smart one update its state."""
        payload: dict[str, Any] = {"type": "notice", **(text.fields() if isinstance(text, Said) else {"text": text})}
        if event is not None:
            payload["event"] = event
        payload.update({name: value for name, value in fields.items() if value is not None})
        payload["ts"] = now
        return encode_payload(payload)

    def _require_operator(self, session: Session, command: str) -> None:
        """Refuse unless `session` is an operator; `command` is a key of lanchat.reasons' `action` words."""
        if not self.moderation.is_operator(session):
            action = VOCABULARY["action"][command]
            audit.info("audit: refused %s by %s: not an operator", LogText(action), _who(session))
            raise Refusal(
                "not_allowed",
                say("op_required", action=command),
                LogText(N_("%s tried to %s but is not an operator"), session.nick, LogText(action)),
                audited=True,
            )

    def _member(self, nick: str) -> Session:
        target = self.service.registry.find(nick)
        if target is None:
            raise ProtocolError("no_such_user", say("no_such_user", nick=nick))
        return target

    def _room_of(self, session: Session) -> Room:
        room = self.service.registry.room_of(session)
        assert room is not None  # only joined members get here
        return room

    # --- op ---------------------------------------------------------------

    def op(self, session: Session, message: Op, now: float) -> None:
        """Become an operator with the secret the server printed at start."""
        service = self.service
        if self.moderation.is_operator(session):
            service.queue(session, self._notice(None, say("already_operator"), now))
            return
        host = str(host_address(session.address) or session.address)
        wait = self.access.failures.wait_left(host, now)
        facts: dict[str, Scalar]
        if wait > 0:
            problem, facts = "op_secret_wait", {"host": host, "seconds": math.ceil(wait)}
        elif self.op_secret is None:
            problem, facts = "op_secret_none", {}
        elif secrets_match(message.secret, self.op_secret):
            self.moderation.grant(session)
            self.access.failures.succeeded(host)
            room = self._room_of(session)
            audit.info("audit: op: %s is now an operator (room %s)", _who(session), room.name)
            service.broadcast(
                room,
                {
                    "type": "notice",
                    **say("now_operator", nick=session.nick or "").fields(),
                    "event": "op",
                    "nick": session.nick,
                    "room": room.name,
                    "ts": now,
                },
            )
            return
        else:
            self.access.failures.failed(host, now)
            problem, facts = "op_secret_wrong", {}
        left = self.moderation.wrong_secret(session)
        if left == 0:
            said = say(problem + "_closing", tries=self.moderation.max_op_tries, **facts)
        else:
            said = say(problem, left=left, **facts)
        # The log says what was wrong, without the tries.
        what = LogText(_OP_PROBLEMS[problem], *facts.values())
        audit.warning("audit: op refused for %s: %s (%d tries left)", _who(session), what, left)
        summary = LogText(N_("%s was refused as operator: %s"), session.nick, what)  # the audit line above says it
        raise Refusal("not_allowed", said, summary, fatal=left == 0, audited=True)

    # --- members ----------------------------------------------------------

    def kick(self, session: Session, kick: Kick, now: float) -> None:
        """Remove a member (who may rejoin), or with `ban` also keep its address out."""
        action = "ban" if kick.ban else "kick"
        self._require_operator(session, action)
        target = self._member(kick.nick)
        if self.moderation.is_operator(target):
            raise ProtocolError("not_allowed", say("op_not_kickable", nick=target.nick or ""))
        service = self.service
        details: dict[str, Any] = {"by": session.nick}
        if kick.reason:
            details["message"] = kick.reason
        leaving = [target]
        ip = host_address(target.address)
        if kick.ban:
            if ip is None:
                raise ProtocolError("not_allowed", say("ban_no_address", nick=target.nick or ""))
            if any(host_address(operator.address) == ip for operator in self.moderation.operators):
                raise ProtocolError("not_allowed", say("ban_operator_address", address=str(ip)))
            self.access.ban(ip)
            details["ban"] = True
            # A ban is for the address: its other connections go too.
            leaving += [
                other for other in service.sessions if other is not target and host_address(other.address) == ip
            ]
        target_room = service.registry.room_of(target)
        saw_it = target_room is not None and target_room is service.registry.room_of(session)
        # One template per action, each marked for translation (the teacher's console translates it).
        template = N_("audit: kick by %s -> %s%s%s") if action == "kick" else N_("audit: ban by %s -> %s%s%s")
        audit.info(
            template,
            _who(session),
            _who(target),
            LogText(_KICK_REASON, kick.reason) if kick.reason else "",
            LogText(_MORE_CONNECTIONS, len(leaving) - 1, ip) if len(leaving) > 1 else "",
        )
        self._record(action, now, session, target_room, to=target.nick, text=kick.reason)
        for member in leaving:
            service.drop(member, "kicked", details)
        if kick.ban:
            text = say("you_banned", nick=target.nick or "", address=str(ip))
            service.queue(session, self._notice("ban", text, now, nick=target.nick, address=str(ip)))
        elif not saw_it:
            told = say("you_kicked", nick=target.nick or "")
            service.queue(session, self._notice("kick", told, now, nick=target.nick))

    def unban(self, session: Session, unban: Unban, now: float) -> None:
        self._require_operator(session, "unban")
        ip = host_address(unban.address)
        assert ip is not None  # the parser checked it
        found = self.access.unban(ip)
        audit.info("audit: unban by %s -> %s%s", _who(session), ip, "" if found else LogText(_NOT_BANNED))
        text = say("unbanned" if found else "not_banned", address=str(ip))
        self.service.queue(session, self._notice("unban" if found else None, text, now, address=str(ip)))

    def mute(self, session: Session, mute: Mute, now: float) -> None:
        """Silence a member in every room, for some minutes or until unmuted."""
        self._require_operator(session, "mute")
        target = self._member(mute.nick)
        if self.moderation.is_operator(target):
            raise ProtocolError("not_allowed", say("op_not_mutable", nick=target.nick or ""))
        assert target.nick is not None and session.nick is not None
        until = now + mute.minutes * 60 if mute.minutes else None
        self.moderation.mute(name_key(target.nick), session.nick, until)
        room = self.service.registry.room_of(target)
        self._record("mute", now, session, room, to=target.nick, reason=_duration(mute.minutes))
        if mute.minutes:
            audit.info("audit: mute by %s -> %s for %g minute(s)", _who(session), _who(target), mute.minutes)
        else:
            audit.info("audit: mute by %s -> %s until an operator unmutes them", _who(session), _who(target))
        timed = {"minutes": mute.minutes} if mute.minutes else {}
        told = say("muted_you_for" if timed else "muted_you", by=session.nick, **timed)
        fields = {"nick": target.nick, "by": session.nick, "minutes": mute.minutes}
        self.service.queue(target, self._notice("mute", told, now, **fields))
        done = say("you_muted_for" if timed else "you_muted", nick=target.nick, **timed)
        self.service.queue(session, self._notice("mute", done, now, **fields))

    def unmute(self, session: Session, unmute: Unmute, now: float) -> None:
        self._require_operator(session, "unmute")
        target = self.service.registry.find(unmute.nick)
        nick = target.nick if target is not None and target.nick else unmute.nick
        # A mute belongs to the nick, so it can be lifted while its owner is away.
        if not self.moderation.unmute(name_key(unmute.nick)):
            if target is None:
                raise ProtocolError("no_such_user", say("no_such_muted", nick=unmute.nick))
            self.service.queue(session, self._notice(None, say("not_muted", nick=nick), now))
            return
        audit.info("audit: unmute by %s -> %s", _who(session), _who(target) if target is not None else nick)
        self._record("unmute", now, session, self.service.registry.room_of(target) if target else None, to=nick)
        fields = {"nick": nick, "by": session.nick}
        if target is not None:
            told = say("unmuted_you", by=session.nick or "")
            self.service.queue(target, self._notice("unmute", told, now, **fields))
        self.service.queue(session, self._notice("unmute", say("you_unmuted", nick=nick), now, **fields))

    # --- rooms ------------------------------------------------------------

    def _tell_room(self, session: Session, event: str, key: str, now: float, **fields: Any) -> Room:
        """A notice to the operator's room: the sentence `key` (lanchat.reasons) with `by`, `room` and `fields`."""
        room = self._room_of(session)
        facts = {"by": session.nick or "", "room": room.name, **{k: v for k, v in fields.items() if v is not None}}
        payload: dict[str, Any] = {
            "type": "notice",
            **say(key, **facts).fields(),
            "event": event,
            "room": room.name,
            "by": session.nick,
        }
        payload.update({name: value for name, value in fields.items() if value is not None})
        payload["ts"] = now
        self.service.broadcast(room, payload)
        return room

    def _tell_everyone(self, session: Session, event: str, key: str, now: float) -> None:
        """A notice with `all` to every member in every room, and one transcript event per room with members."""
        body = self._notice(event, say(key, by=session.nick or ""), now, by=session.nick, all=True)
        for member in self.service.registry.members():
            self.service.queue(member, body)
        for room in list(self.service.registry.rooms.values()):
            if room.members:
                self._record(event, now, session, room, reason="every room")

    def lock(self, session: Session, message: Lock, now: float) -> None:
        """Only operators may speak in the operator's room until it is unlocked.

        With `all`: in every room, and only operators may change rooms.
        """
        self._require_operator(session, "lock_rooms" if message.all else "lock_room")
        assert session.nick is not None
        if message.all:
            self.moderation.set_lock_all(session.nick)
            audit.info("audit: lock by %s -> every room", _who(session))
            self._tell_everyone(session, "lock", "locked_all", now)
            return
        room = self._room_of(session)
        self.moderation.lock(room.key, session.nick)
        audit.info("audit: lock by %s -> room %s", _who(session), room.name)
        self._record("lock", now, session, room)
        self._tell_room(session, "lock", "locked_room", now)

    def unlock(self, session: Session, message: Unlock, now: float) -> None:
        self._require_operator(session, "unlock_rooms" if message.all else "unlock_room")
        if message.all:
            self.moderation.set_lock_all(None)
            for key in list(self.moderation.locked):
                self.moderation.unlock(key)
            audit.info("audit: unlock by %s -> every room", _who(session))
            self._tell_everyone(session, "unlock", "unlocked_all", now)
            return
        room = self._room_of(session)
        self.moderation.unlock(room.key)
        audit.info("audit: unlock by %s -> room %s", _who(session), room.name)
        self._record("unlock", now, session, room)
        self._tell_room(session, "unlock", "unlocked_room", now)

    def slow(self, session: Session, slow: Slow, now: float) -> None:
        """A least gap between one member's messages in the operator's room (0: off)."""
        self._require_operator(session, "slow")
        room = self._room_of(session)
        self.moderation.set_slow(room.key, slow.seconds)
        if slow.seconds > 0:
            audit.info("audit: slow by %s -> room %s: %g s", _who(session), room.name, slow.seconds)
        else:
            audit.info("audit: slow off by %s -> room %s", _who(session), room.name)
        self._record("slow", now, session, room, reason=f"{slow.seconds:g} s" if slow.seconds > 0 else "off")
        self._tell_room(session, "slow", "slow_on" if slow.seconds > 0 else "slow_off", now, seconds=slow.seconds)

    def topic(self, session: Session, topic: Topic, now: float) -> None:
        """Set (or with no text clear) the topic shown in `welcome` and to the room."""
        self._require_operator(session, "topic")
        room = self._room_of(session)
        room.topic = topic.text
        audit.info("audit: topic by %s -> room %s: %r", _who(session), room.name, topic.text)
        self._record("topic", now, session, room, text=topic.text)
        self._tell_room(session, "topic", "topic_cleared" if topic.text is None else "topic_set", now, topic=topic.text)

    def announce(self, session: Session, announce: Announce, now: float) -> None:
        """A notice to every member in every room, encoded once."""
        self._require_operator(session, "announce")
        audit.info("audit: announce by %s -> everyone: %r", _who(session), announce.text)
        body = self._notice("announce", announce.text, now, **{"from": session.nick})
        for member in self.service.registry.members():
            self.service.queue(member, body)
        for room in list(self.service.registry.rooms.values()):
            if room.members:
                self._record("announce", now, session, room, text=announce.text)

    # --- what the service shows about moderation ---------------------------

    def room_fields(self, room: Room) -> dict[str, Any]:
        """`operators`, `locked` and `slow` of a room, for `welcome` and `users`."""
        fields: dict[str, Any] = {}
        operators = sorted(
            (s.nick for s in self.moderation.operators if s.room_key == room.key and s.nick), key=str.casefold
        )
        if operators:
            fields["operators"] = operators
        if room.key in self.moderation.locked or self.moderation.lock_all is not None:
            fields["locked"] = True
        seconds = self.moderation.slow.get(room.key)
        if seconds:
            fields["slow"] = seconds
        return fields

    def welcome_fields(self, session: Session, room: Room, now: float) -> dict[str, Any]:
        """The room's state, plus `muted` when the newcomer's nick is muted."""
        fields = self.room_fields(room)
        if self.moderation.mutes and session.nick:
            mute = self.moderation.mute_of(name_key(session.nick), now)
            if mute is not None:
                fields["muted"] = {"by": mute.by}
                if mute.until is not None:
                    fields["muted"]["minutes"] = minutes_left(mute.until, now)
                    fields["muted"]["seconds"] = max(1, math.ceil(mute.until - now))  # for a countdown
        return fields
