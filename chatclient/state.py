"""What the client knows, and what each incoming payload means to a person.

Pure: `ClientState.apply(payload)` updates nick, room, users, round-trip
time and sequence counters, and returns the display `Line`s to show.
Rendering (colours, escapes) is `chatclient.render`'s job. Imports only
`chatclient.plainwords` (errors in words), `chatclient.lines` (the `Line`
record), `lanchat.wire` (for `SeqTracker`) and `lanchat.protocol` (the nick limit).

Teacher controls (docs/protocol.md, "Extension: operators and access"):
the state knows the operators of the room, whether this client is one,
and whether it is muted, its room locked or slow; moderation events arrive
as `notice`s with an `event` field, and the ones that concern this person
are explained in plain words (what happened, what they can still do).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from chatclient import plainwords
from chatclient.lines import STATS_LABELS, Line, _burst_line, _date, _is_word_char
from lanchat.i18n import N_, _
from lanchat.protocol import MAX_NICK
from lanchat.reasons import left_reason
from lanchat.wire import SeqTracker

__all__ = ["MUTE_ENDED", "ClientState", "SeqTracker", "alternative_nick"]

MUTE_ENDED = N_("your mute has ended: the room sees what you write again.")
_REMEMBERED_MESSAGES = 1000  # message ids kept to skip history already shown


def _list(value: Any) -> list[Any]:
    """A payload's list field, or an empty list when a server sent something else."""
    return value if isinstance(value, list) else []


def alternative_nick(nick: str, number: int) -> str:
    """`alice` -> `alice_2` (cut to fit 24 characters) when `alice` is taken."""
    suffix = f"_{number}"
    return nick[: MAX_NICK - len(suffix)] + suffix


@dataclass
class ClientState:
    nick: str
    room: str = "lobby"
    users: list[str] = field(default_factory=list)
    transport: str = "tcp"
    connected: bool = False  # what the server last said (welcome, or `left` about us); ChatSession.phase decides
    rtt: float | None = None  # seconds, from the last pong
    server_stats: dict[str, Any] = field(default_factory=dict)
    seq: SeqTracker = field(default_factory=SeqTracker)
    max_frame: int | None = None
    peer_timeout: float | None = None
    topic: str | None = None
    impairment: dict[str, Any] | None = None
    rooms: list[str] = field(default_factory=list)  # known room names, for Tab completion
    partners: list[str] = field(default_factory=list)  # whisper partners, for /msg completion
    _shown: deque[Any] = field(default_factory=lambda: deque(maxlen=_REMEMBERED_MESSAGES), repr=False)
    operators: list[str] = field(default_factory=list)  # operators in this room
    operator: bool = False  # this client is an operator
    muted: bool = False
    muted_until: float | None = None  # local time the mute ends; None: until unmuted
    locked: bool = False  # only operators may speak in this room
    slow: float | None = None  # seconds between one person's messages in this room
    ended: str | None = None  # why the server ended this session (kicked, banned), in plain words
    muted_by: str | None = None
    needs_password: bool = False  # the server answered auth_failed
    motd_shown: str | None = None  # the message of the day last shown
    codes: bool = False  # errors as `code: message [what to do]` (for scripts) rather than sentences for people
    joined_once: bool = False  # a welcome came on some connection: later refusals meet a reconnect
    password_given: bool = False  # the user gave a password (--password, LANCHAT_PASSWORD or typed)

    def is_operator(self, nick: str) -> bool:
        return nick.casefold() in (o.casefold() for o in self.operators)

    def label(self, nick: str) -> str:
        """A nick as user lists show it: operators marked with @ (as in IRC)."""
        return f"@{nick}" if self.is_operator(nick) else nick

    def mute_ended(self, now: float) -> bool:
        """Whether a timed mute has run out by `now` (on our clock); it is then cleared."""
        if self.muted and self.muted_until is not None and now >= self.muted_until:
            self.muted = False
            self.muted_until = None
            return True
        return False

    def mute_minutes_left(self, now: float) -> int:
        """Whole minutes left of a timed mute, rounded up (at least 1), as the server counts them."""
        return max(1, math.ceil(((self.muted_until or now) - now) / 60))

    def is_muted(self, now: float) -> bool:
        """Muted at `now`: a timed mute reads as over once its time is up, before anyone clears it
        (the session's mute clock does that, and says so: `mute_ended`)."""
        return self.muted and (self.muted_until is None or now < self.muted_until)

    def status_marks(self, now: float) -> list[str]:
        """Short words for a toolbar: operator, muted, locked, slow."""
        marks = []
        if self.operator:
            marks.append(_("operator"))
        if self.is_muted(now):
            if self.muted_until:
                marks.append(_("muted {minutes} min").format(minutes=self.mute_minutes_left(now)))
            else:
                marks.append(_("muted"))
        if self.locked:
            marks.append(_("room locked"))
        if self.slow:
            marks.append(_("slow {slow:g} s").format(slow=self.slow))
        return marks

    def mentions_me(self, text: str) -> bool:
        """Whether `text` names me as a word: "al" is not mentioned by "also"."""
        me, folded = self.nick.casefold(), text.casefold()
        start = folded.find(me)
        while me and start >= 0:
            end = start + len(me)
            before = folded[start - 1] if start else " "
            after = folded[end] if end < len(folded) else " "
            if not _is_word_char(before) and not _is_word_char(after):
                return True
            start = folded.find(me, start + 1)
        return False

    def new_connection(self) -> None:
        """Forget per-connection facts: a new connection counts seq from 1 again (§3)."""
        self.seq = SeqTracker()
        self.connected = False
        self.rtt = None
        self.forget_session_roles()

    def forget_session_roles(self) -> None:
        """The session is over: operator status ends with it (docs/protocol.md, operators), and
        the room's operators, lock and slow mode are no longer known; the next welcome says them again.
        A mute belongs to the nick and is shown until it ends or the next welcome says otherwise."""
        self.operator = False
        self.operators = []
        self.locked = False
        self.slow = None

    def completion_nicks(self) -> list[str]:
        """Nicks worth offering on Tab: the room's users, then whisper partners."""
        me = self.nick.casefold()
        seen: set[str] = set()
        out: list[str] = []
        for nick in [*self.users, *self.partners]:
            if nick.casefold() != me and nick.casefold() not in seen:
                seen.add(nick.casefold())
                out.append(nick)
        return out

    def _remember_room(self, room: str) -> None:
        if room and room.casefold() not in (r.casefold() for r in self.rooms):
            self.rooms.append(room)

    def _remember_partner(self, nick: str) -> None:
        self.partners = [n for n in self.partners if n.casefold() != nick.casefold()][-19:] + [nick]

    def apply(self, payload: dict[str, Any], now: float | None = None) -> list[Line]:
        """Update the state from one server payload; return what to display."""
        seq = payload.get("seq")
        if type(seq) is int and seq > 0:
            self.seq.add(seq)
        kind = payload.get("type")
        handler = getattr(self, f"_on_{kind}", None) if isinstance(kind, str) else None
        if handler is None:
            return []
        lines: list[Line] = handler(payload, now)
        return lines

    # --- one method per server payload type (docs/protocol.md §5) -------------

    def _on_welcome(self, p: dict[str, Any], now: float | None) -> list[Line]:
        self.nick = str(p.get("nick", self.nick))
        self.room = str(p.get("room", self.room))
        self.users = [str(u) for u in _list(p.get("users")) if isinstance(u, str)]
        self.transport = str(p.get("transport", self.transport))
        self.max_frame = p.get("max_frame") if isinstance(p.get("max_frame"), int) else None
        self.peer_timeout = p.get("peer_timeout") if isinstance(p.get("peer_timeout"), (int, float)) else None
        self.topic = p.get("topic") if isinstance(p.get("topic"), str) else None
        self.impairment = p.get("impairment") if isinstance(p.get("impairment"), dict) else None
        self.connected = True
        self.joined_once = True
        self._welcome_moderation(p, now)
        self._remember_room(self.room)
        # After a reconnect or a /join back, skip history we have already shown.
        old = [m for m in _list(p.get("history")) if isinstance(m, dict) and not self._seen_before(m)]
        lines = [self._message(m) for m in old]
        if lines:
            # Saved messages must not look like live chat: a divider with their date above, one below.
            first = old[0].get("ts")
            since = _(" since {date}").format(date=_date(first)) if isinstance(first, (int, float)) else ""
            lines.insert(
                0, Line("info", _("── earlier messages in {room}{since} ──").format(room=self.room, since=since), first)
            )
            lines.append(Line("info", _("── end of earlier messages ──"), p.get("ts")))
        server = p.get("server") if isinstance(p.get("server"), dict) else {}
        name = server.get("name", "server") if isinstance(server, dict) else "server"
        here = _(", ").join(self.label(u) for u in self.users)
        lines.append(
            Line(
                "info",
                _("you are {nick} in {room} on {name} ({count} here: {here})").format(
                    nick=self.nick, room=self.room, name=name, count=len(self.users), here=here
                ),
                p.get("ts"),
            )
        )
        motd = p.get("motd")
        if isinstance(motd, str) and motd != self.motd_shown:
            # The message of the day comes with every welcome (each /join); once is enough unless it changed.
            self.motd_shown = motd
            lines.append(Line("notice", _("motd: {motd}").format(motd=motd), p.get("ts")))
        if isinstance(p.get("topic"), str):
            lines.append(Line("notice", _("topic: {topic}").format(topic=p["topic"]), p.get("ts")))
        lines.extend(Line("notice", text, p.get("ts")) for text in self._room_rules(now))
        return lines

    # --- teacher controls (docs/protocol.md, "Extension: operators and access") ---

    def _welcome_moderation(self, p: dict[str, Any], now: float | None) -> None:
        operators = p.get("operators")
        self.operators = [str(o) for o in operators if isinstance(o, str)] if isinstance(operators, list) else []
        self.operator = self.is_operator(self.nick)
        self.locked = p.get("locked") is True
        slow = p.get("slow")
        self.slow = float(slow) if isinstance(slow, (int, float)) and slow > 0 else None
        muted = p.get("muted")
        self.muted = isinstance(muted, dict)
        self.muted_until = None
        if isinstance(muted, dict):
            self.muted_by = str(muted.get("by", _("an operator")))
            minutes, seconds = muted.get("minutes"), muted.get("seconds")
            if isinstance(seconds, (int, float)) and now is not None:
                self.muted_until = now + seconds  # exact: the bar counts down with the server's own clock
            elif isinstance(minutes, (int, float)) and now is not None:
                self.muted_until = now + minutes * 60

    def _room_rules(self, now: float | None) -> list[str]:
        """What is special about speaking here, in plain words."""
        rules = []
        if self.muted:
            how_long = _("until an operator unmutes you") if self.muted_until is None else _("for a while")
            if self.muted_until is not None and now is not None:
                how_long = _("for {minutes} more minute(s)").format(minutes=self.mute_minutes_left(now))
            rules.append(
                _("you are muted {how_long}: you can read the chat and whisper "
                "to an operator, but the room does not see what you write").format(how_long=how_long)
            )
        if self.locked and not self.operator:
            rules.append(
                _("{room} is locked: only operators may speak here until it is unlocked").format(room=self.room)
            )
        if self.slow:
            rules.append(_("slow mode: one message every {slow:g} s per person here").format(slow=self.slow))
        return rules

    def _moderation_event(self, event: str, p: dict[str, Any], now: float | None) -> str | None:
        """Update the state for one moderation notice; a plain-words text when it is about me."""
        nick = str(p.get("nick", ""))
        by = str(p.get("by", _("an operator")))
        about_me = nick.casefold() == self.nick.casefold()
        in_my_room = str(p.get("room", self.room)).casefold() == self.room.casefold()
        if event == "op":
            if in_my_room and not self.is_operator(nick):
                self.operators.append(nick)
            if about_me:
                self.operator = True
                return _("you are now an operator: /help lists the operator commands")
        elif event == "mute" and about_me:
            minutes = p.get("minutes")
            self.muted = True
            self.muted_by = by
            if isinstance(minutes, (int, float)) and now is not None:
                self.muted_until = now + minutes * 60
                how_long = _("for {minutes:g} minute(s)").format(minutes=minutes)
            else:
                self.muted_until = None
                how_long = _("until an operator unmutes you")
            return (
                _("{by} muted you {how_long}. You can still read the chat and whisper to an "
                "operator (/msg {by} ...), but the room does not see what you write.").format(by=by, how_long=how_long)
            )
        elif event == "unmute" and about_me:
            was_muted = self.muted
            self.muted = False
            self.muted_until = None
            if p.get("expired") is True or "by" not in p:
                # A timed mute ran out (docs/protocol.md, operators: the optional `expired`).
                # Our own clock may have said so already (`mute_ended`): then once is enough.
                return _(MUTE_ENDED) if was_muted else ""
            return _("{by} unmuted you: the room sees what you write again.").format(by=by)
        elif event in ("lock", "unlock") and p.get("all") is True:
            # Every room at once (no `room` in the notice): told to everyone alike, and the bar shows it.
            self.locked = event == "lock"
            if self.locked:
                return _(
                    "{by} locked every room: only operators may speak or change rooms until it is unlocked"
                ).format(by=by)
            return _("{by} unlocked every room: everyone may speak and change rooms again").format(by=by)
        elif event in ("lock", "unlock") and in_my_room:
            self.locked = event == "lock"
            if self.locked and not self.operator:
                return (
                    _("{by} locked {room}: only operators may speak here until it "
                    "is unlocked. You can still read, and whisper with /msg.").format(by=by, room=self.room)
                )
            if not self.locked:
                return _("{by} unlocked {room}: everyone may speak again.").format(by=by, room=self.room)
        elif event == "slow" and in_my_room:
            seconds = p.get("seconds")
            self.slow = float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else None
        elif event == "topic" and in_my_room:
            topic = p.get("topic")
            self.topic = topic if isinstance(topic, str) else None
        elif event == "announce":
            return _("announcement from {sender}: {text}").format(
                sender=p.get("from", _("an operator")), text=p.get("text", "")
            )
        return None

    def _message(self, p: dict[str, Any]) -> Line:
        sender = str(p.get("from", "?"))
        text = str(p.get("text", ""))
        own = sender.casefold() == self.nick.casefold()
        mention = not own and self.mentions_me(text)
        # Only the server's mark counts: a nick in our operator list says nothing about an old line.
        operator = p.get("operator") is True
        if p.get("action"):
            return Line("action", text, p.get("ts"), sender, mention=mention, operator=operator)
        return Line("own" if own else "message", text, p.get("ts"), sender, mention=mention, operator=operator)

    def _seen_before(self, p: dict[str, Any]) -> bool:
        key = (p.get("id"), p.get("ts"), p.get("from"))
        if key in self._shown:
            return True
        self._shown.append(key)
        return False

    def _on_message(self, p: dict[str, Any], now: float | None) -> list[Line]:
        self._seen_before(p)
        return [self._message(p)]

    def _on_whisper(self, p: dict[str, Any], now: float | None) -> list[Line]:
        sender, target = str(p.get("from", "?")), str(p.get("to", "?"))
        self._remember_partner(target if sender.casefold() == self.nick.casefold() else sender)
        if sender.casefold() == self.nick.casefold() and target.casefold() != self.nick.casefold():
            return [Line("whisper_out", str(p.get("text", "")), p.get("ts"), sender, target)]
        return [Line("whisper_in", str(p.get("text", "")), p.get("ts"), sender, target, mention=True)]

    def _on_joined(self, p: dict[str, Any], now: float | None) -> list[Line]:
        nick = str(p.get("nick", "?"))
        if nick not in self.users:
            self.users.append(nick)
        if p.get("operator") is True and not self.is_operator(nick):
            self.operators.append(nick)
        joined = _("{nick} joined {room}").format(nick=nick, room=p.get("room", self.room))
        return [Line("presence", joined, p.get("ts"), nick)]

    def _on_left(self, p: dict[str, Any], now: float | None) -> list[Line]:
        nick = str(p.get("nick", "?"))
        reason = p.get("reason", "")
        why = _(": {message}").format(message=p["message"]) if isinstance(p.get("message"), str) else ""
        by = str(p.get("by", _("an operator")))
        if nick.casefold() == self.nick.casefold():
            # The server sends this only when the session ends. The user list stays as last
            # seen (a reconnect's welcome replaces it; "0 users" would not be true either),
            # but what belonged to the session (operator, marks of the room) is over.
            self.connected = False
            self.forget_session_roles()
            if reason == "kicked":
                if p.get("ban") is True:
                    self.ended = (
                        _("{by} banned you from this server{why}. You cannot join "
                        "again until an operator lifts the ban.").format(by=by, why=why)
                    )
                else:
                    self.ended = _(
                        "{by} kicked you out of the chat{why}. You may join again: start chatclient once more."
                    ).format(by=by, why=why)
                return [Line("notice", self.ended, p.get("ts"))]
            return [
                Line(
                    "notice",
                    _("you left {room} ({reason})").format(
                        room=p.get("room", self.room), reason=left_reason(str(reason), _)
                    ),
                    p.get("ts"),
                )
            ]
        self.users = [u for u in self.users if u.casefold() != nick.casefold()]
        self.operators = [o for o in self.operators if o.casefold() != nick.casefold()]
        if reason == "kicked":
            return [
                Line(
                    "presence",
                    (
                        _("{nick} was banned by {by}{why}")
                        if p.get("ban") is True
                        else _("{nick} was kicked by {by}{why}")
                    ).format(nick=nick, by=by, why=why),
                    p.get("ts"),
                    nick,
                )
            ]
        if reason == "moved" and isinstance(p.get("to"), str):
            reason = _("moved to {room}").format(room=p["to"])  # where they went (docs/protocol.md §8)
        else:
            reason = left_reason(str(reason), _)
        return [Line("presence", _("{nick} left ({reason})").format(nick=nick, reason=reason), p.get("ts"), nick)]

    def _on_members(self, p: dict[str, Any], now: float | None) -> list[Line]:
        """A burst of joins and leaves (docs/protocol.md §13): applied in order, shown as one line per run.

        Consecutive plain joins (or leaves for one reason) become one line,
        "12 joined: a, b, c, and 9 more"; a run of one reads like the version
        1 notice, and kicks and anything about this client keep their own line.
        """
        room = p.get("room", self.room)
        ts = p.get("ts")
        changes = p.get("changes")
        lines: list[Line] = []
        run_key: tuple[str, str] | None = None
        run: list[str] = []

        def end_run() -> None:
            if run_key is not None and run:
                lines.append(_burst_line(run_key, run, room, ts))
            run.clear()

        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):
                continue
            if isinstance(change.get("joined"), str):
                nick = change["joined"]
                single = {"type": "joined", "nick": nick, "room": room, "ts": ts, "operator": change.get("operator")}
                self._on_joined(single, now)
                key = ("joined", "")
            elif isinstance(change.get("left"), str):
                nick = change["left"]
                single = {"type": "left", "nick": nick, "room": room, "ts": ts}
                single.update((name, value) for name, value in change.items() if name != "left")
                shown = self._on_left(single, now)
                if single.get("reason") == "kicked" or nick.casefold() == self.nick.casefold():
                    end_run()
                    run_key = None
                    lines.extend(shown)
                    continue
                reason = str(single.get("reason", ""))
                if reason == "moved" and single.get("to"):
                    # one run per destination, said as for a single `left`
                    reason = _("moved to {room}").format(room=single["to"])
                else:
                    reason = left_reason(reason, _)
                key = ("left", reason)
            else:
                continue
            if key != run_key:
                end_run()
                run_key = key
            run.append(nick)
        end_run()
        return lines

    def _on_renamed(self, p: dict[str, Any], now: float | None) -> list[Line]:
        old, new = str(p.get("old", "?")), str(p.get("new", "?"))
        self.users = [new if u == old else u for u in self.users]
        self.operators = [new if o == old else o for o in self.operators]
        if old.casefold() == self.nick.casefold():
            self.nick = new
            return [Line("presence", _("you are now known as {new}").format(new=new), p.get("ts"), new)]
        return [Line("presence", _("{old} is now known as {new}").format(old=old, new=new), p.get("ts"), new)]

    def _on_users(self, p: dict[str, Any], now: float | None) -> list[Line]:
        users = [str(u) for u in _list(p.get("users"))]
        operators = p.get("operators")
        marked = {str(o).casefold() for o in operators} if isinstance(operators, list) else set()
        if str(p.get("room", "")).casefold() == self.room.casefold():
            self.users = users
            self.operators = [u for u in users if u.casefold() in marked]
        listing = _(", ").join(f"@{u}" if u.casefold() in marked else u for u in users)
        return [
            Line(
                "info",
                _("in {room}: {users} ({count})").format(
                    room=p.get("room"), users=listing or _("nobody"), count=len(users)
                ),
                p.get("ts", now),
            )
        ]

    def _on_rooms(self, p: dict[str, Any], now: float | None) -> list[Line]:
        rooms = [r for r in p.get("rooms", []) if isinstance(r, dict)]
        for room in rooms:
            if isinstance(room.get("name"), str):
                self._remember_room(room["name"])
        # Rooms with no one in them but saved history come last (docs/protocol.md §5): shown apart, not as "(0)".
        listing = _(", ").join(f"{r.get('name')} ({r.get('users')})" for r in rooms if r.get("users") != 0)
        history_only = _(", ").join(str(r.get("name")) for r in rooms if r.get("users") == 0)
        if history_only:
            listing = f"{listing}; " if listing else ""
            listing += _("with history only: {rooms}").format(rooms=history_only)
        return [Line("info", _("rooms: {rooms}").format(rooms=listing or _("none")), now)]

    def _on_pong(self, p: dict[str, Any], now: float | None) -> list[Line]:
        sent = p.get("t")
        if isinstance(sent, (int, float)) and now is not None:
            self.rtt = max(0.0, now - sent)
        if p.get("id") == "user" and self.rtt is not None:
            return [Line("info", _("pong: round trip {ms:.1f} ms").format(ms=self.rtt * 1000), now)]
        return []

    def _on_stats(self, p: dict[str, Any], now: float | None) -> list[Line]:
        self.server_stats = {k: v for k, v in p.items() if k not in ("type", "seq")}
        server = _(", ").join(
            f"{_(STATS_LABELS[k]) if k in STATS_LABELS else k} {v}" for k, v in self.server_stats.items()
        )
        mine = self.seq
        # This answer is counted in our `received` (its seq was just added) but not in
        # the server's `sent`, which it reports as it was just before: compare like with like.
        received = mine.received - 1 if type(p.get("seq")) is int else mine.received
        lines = [
            Line("info", _("server's view: {server}").format(server=server), now),
            Line(
                "info",
                _(
                    "your view: received {received} before this answer, lost "
                    "{missing}, reordered {reordered}, duplicates {duplicates}"
                ).format(received=received, missing=mine.missing, reordered=mine.reordered, duplicates=mine.duplicates),
                now,
            ),
        ]
        sent = self.server_stats.get("sent")
        if type(sent) is int and sent != received + mine.missing:
            difference = sent - received - mine.missing
            lines.append(
                Line(
                    "info",
                    _("the server counts {sent} sent, you {counted} received or lost: ").format(
                        sent=sent, counted=received + mine.missing
                    )
                    + (
                        _("{difference} still on the way, or lost with no later message to show the gap").format(
                            difference=difference
                        )
                        if difference > 0
                        else _("you counted {extra} more than the server says it sent").format(extra=-difference)
                    ),
                    now,
                )
            )
        injected = [(name, self.server_stats.get(f"injected_{name}")) for name in ("lost", "duplicates", "reordered")]
        if all(isinstance(count, int) for _, count in injected):
            # The server's fault injection (--udp-loss ...): what is left over is the network's doing.
            caused = ", ".join(f"{name} {count}" for name, count in injected)
            lines.append(
                Line("info", _("of which the server's fault injection caused: {caused}").format(caused=caused), now)
            )
        return lines

    def _on_notice(self, p: dict[str, Any], now: float | None) -> list[Line]:
        event = p.get("event")
        told = self._moderation_event(event, p, now) if isinstance(event, str) else None
        if told == "":
            return []  # already said
        return [Line("notice", told if told is not None else plainwords.server_words(p, "text"), p.get("ts", now))]

    def _on_error(self, p: dict[str, Any], now: float | None) -> list[Line]:
        code, message = str(p.get("code", "error")), str(p.get("message", ""))
        if code == "auth_failed":
            self.needs_password = True
        todo = self._what_to_do(code, message)
        shown = plainwords.server_words(p, "message")  # in the chosen language when the server says its reason
        if self.codes:
            return [Line("error", plainwords.for_scripts(code, message, todo, shown), now)]
        return [Line("error", plainwords.explain(code, message, todo, shown), now)]

    def _what_to_do(self, code: str, message: str) -> str | None:
        """Advice that depends on where we are; None: the table's (chatclient.plainwords)."""
        if code in ("nick_invalid", "nick_taken") and not self.connected:
            if self.joined_once:
                return ""  # a reconnect: the session takes nick_2 itself, or ends and says why
            # Not in a room yet, so /nick cannot help: the terminal UI asks below, line mode needs --nick.
            return _("start chatclient again with another --nick") if self.codes else _("type another nick below")
        if code == "auth_failed" and not self.password_given and message.startswith("this server needs a password"):
            return _("give --password SECRET or set LANCHAT_PASSWORD")
        return None
