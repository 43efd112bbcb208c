"""Text door: plain text lines over TCP, for `nc` and `telnet` (docs/protocol.md §12).

A third framing beside the length prefix (TCP) and the datagram (UDP): a
line ends at a newline. Each line a person types becomes the payload a framed
client would send (`hello`, `say`, `join`, ...), handed to the same
`ChatService`; each payload the service sends becomes one or more readable
text lines. The door owns only that translation and its connections: the
chat rules, rate limits included, stay in `chatsrv.service`; sending,
slow-reader limits and shutdown are the TCP adapter's (`TextOutbox` is a
`TCPOutbox` that writes lines instead of frames, `TextDoorServer` a
`ChatTCPServer` with another handler).

Pure parts, tested without sockets: `LineSplitter` (bytes in, lines out,
bounded, telnet commands removed), `interpret` (a typed line to a payload or
a local answer) and `render_payload` (a payload to text lines, every
control character escaped).

Threads: one handler thread per connection, as in `chatsrv.tcp`; `TextOutbox.encode`
runs wherever the fan-out delivers (under the registry lock) and touches no state.

Imports: wire, display, ratelimit, session, service, outbox, tcp. Must not import udp or app.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chatsrv.outbox import TCPOutbox
from chatsrv.ratelimit import TokenBucket
from chatsrv.service import ChatService
from chatsrv.session import Session
from chatsrv.tcp import RECV_SIZE, ChatRequestHandler, ChatTCPServer, wait_and_read
from lanchat.display import safe_text
from lanchat.i18n import N_, _
from lanchat.reasons import left_reason, render, say
from lanchat.wire import ProtocolError, encode_payload

log = logging.getLogger("chatsrv.text")

# A line holds one message: 2000 characters of text (docs/protocol.md §6) are
# at most 8000 bytes of UTF-8, plus a command. Anything longer is refused and
# discarded up to its newline, never buffered whole.
DEFAULT_MAX_LINE = 8192
# A person types the nick by hand: more time than a program's hello gets.
TEXT_HELLO_TIMEOUT = 300.0
NEWLINE = "\r\n"  # what telnet needs; nc and terminals show it as a plain line end

DOOR = "door"  # the type of the door's own lines in its outbox; never sent by the service, never on the wire

GREETING = [
    N_("lanchat text door: one line in, one message out."),
    N_("Type your nick and press Enter (/help lists the commands; /join ROOM first picks a room)."),
]

# --- reading lines ----------------------------------------------------------

# Telnet (RFC 854): IAC starts a command; WILL/WONT/DO/DONT take one option byte,
# SB ... IAC SE is a subnegotiation; IAC IAC is a literal 0xFF, which UTF-8 never contains.
IAC, SB, SE = 255, 250, 240
WILL_WONT_DO_DONT = range(251, 255)
_LINE_END = re.compile(rb"[\r\n]")


@dataclass(frozen=True)
class Overlong:
    """A line passed the limit: it is refused and the rest of it, up to its newline, discarded."""

    limit: int


class LineSplitter:
    """Bytes from a socket to lines: sans-I/O, bounded, telnet commands dropped.

    A line ends at LF, CR LF, CR NUL (telnet's bare CR) or a lone CR. A line
    that grows past `max_line` bytes yields one `Overlong` at once, and the
    bytes after it are dropped until the line ends: memory stays below
    `max_line` whatever the peer sends.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        self._line = bytearray()
        self._discarding = False
        self._after_cr = False  # a CR ended the last line: a following LF or NUL belongs to it
        self._telnet = 0  # 0 data, 1 after IAC, 2 option byte due, 3 in SB, 4 IAC inside SB

    def feed(self, data: bytes) -> list[bytes | Overlong]:
        out: list[bytes | Overlong] = []
        data = self._without_telnet(data)
        start = 0
        if self._after_cr and data:
            self._after_cr = False
            if data[0] in (0, 10):
                start = 1
        while start < len(data):
            found = _LINE_END.search(data, start)
            end = len(data) if found is None else found.start()
            self._take(data[start:end], out)
            if found is None:
                break
            if self._discarding:
                self._discarding = False
            else:
                out.append(bytes(self._line))
            self._line.clear()
            start = end + 1
            if data[end] == 13:  # CR: swallow the LF or NUL that completes it
                if start < len(data):
                    if data[start] in (0, 10):
                        start += 1
                else:
                    self._after_cr = True
        return out

    def _take(self, piece: bytes, out: list[bytes | Overlong]) -> None:
        if self._discarding or not piece:
            return
        if len(self._line) + len(piece) > self.max_line:
            self._line.clear()
            self._discarding = True
            out.append(Overlong(self.max_line))
            return
        self._line += piece

    def _without_telnet(self, data: bytes) -> bytes:
        if self._telnet == 0 and IAC not in data:
            return data
        kept = bytearray()
        for byte in data:
            state = self._telnet
            if state == 0:
                if byte == IAC:
                    self._telnet = 1
                else:
                    kept.append(byte)
            elif state == 1:
                self._telnet = 2 if byte in WILL_WONT_DO_DONT else 3 if byte == SB else 0
            elif state == 2:
                self._telnet = 0
            elif state == 3:
                if byte == IAC:
                    self._telnet = 4
            else:  # IAC inside a subnegotiation: SE ends it
                self._telnet = 0 if byte == SE else 3
        return bytes(kept)


# --- typed lines to payloads ------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Hand this payload to the service, as a framed client would send it."""

    payload: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """Answered by the door itself, without the service."""

    lines: list[str]


@dataclass(frozen=True)
class Remember:
    """Before the nick: keep this for the `hello` (`room` or `password`)."""

    field: str
    value: str


HELP = [
    N_("commands:"),
    N_("  /nick NAME        choose or change your nick"),
    N_("  /join ROOM        go to another room (created if new)"),
    N_("  /msg NICK TEXT    whisper to one user (also /w)"),
    N_("  /me ACTION        say what you do: /me waves"),
    N_("  /who [ROOM]       list the users of a room"),
    N_("  /rooms            list the rooms that have users"),
    N_("  /ping, /stats     round trip; what you sent and received"),
    N_("  /password SECRET  before your nick, when the server asks for one"),
    N_("  /quit             leave (also /exit)"),
    N_("  //TEXT            say a line that starts with /"),
]


def erase(line: str) -> str:
    """Apply the backspaces (BS, DEL) a telnet in character mode sends instead of editing the line itself."""
    if "\b" not in line and "\x7f" not in line:
        return line
    kept: list[str] = []
    for char in line:
        if char in "\b\x7f":
            if kept:
                kept.pop()
        else:
            kept.append(char)
    return "".join(kept)


def interpret(line: str, joined: bool) -> Send | Answer | Remember | None:
    """What one typed line means; None for a blank line (ignored)."""
    if not line.strip():
        return None
    if line.startswith("//"):
        line = line[1:]
    elif line.startswith("/"):
        return _command(line, joined)
    if not joined:
        return Send({"type": "hello", "nick": line.strip()})
    return Send({"type": "say", "text": line})


def _command(line: str, joined: bool) -> Send | Answer | Remember:
    name, _sep, argument = line[1:].partition(" ")
    name = name.lower()
    argument = argument.strip()
    if name == "help":
        return Answer([_(line) for line in HELP])
    if name in ("quit", "exit"):
        return Send({"type": "bye"})
    if name == "nick":
        if not argument:
            return Answer([_("! usage: /nick NAME")])
        return Send({"type": "nick" if joined else "hello", "nick": argument})
    if name == "join":
        if not argument:
            return Answer([_("! usage: /join ROOM")])
        return Send({"type": "join", "room": argument}) if joined else Remember("room", argument)
    if name in ("password", "pass"):
        if joined:
            return Answer([_("! you are already in; /password is for before your nick")])
        return Remember("password", argument) if argument else Answer([_("! usage: /password SECRET")])
    if not joined:
        return Answer([_("! choose a nick first: type it and press Enter")])
    if name in ("msg", "w", "whisper"):
        nick, _sep, text = argument.partition(" ")
        if not nick or not text.strip():
            return Answer([_("! usage: /msg NICK TEXT")])
        return Send({"type": "whisper", "to": nick, "text": text})
    if name == "me":
        if not argument:
            return Answer([_("! usage: /me ACTION")])
        return Send({"type": "say", "text": argument, "action": True})
    if name == "who":
        return Send({"type": "who", "room": argument} if argument else {"type": "who"})
    if name in ("rooms", "ping", "stats"):
        return Send({"type": name})
    return Answer([_("! unknown command /{name}; /help lists them").format(name=escape(name))])


# --- payloads to lines --------------------------------------------------------

def escape(text: str) -> str:
    r"""`text` safe for a terminal: the shared rule of `lanchat.display` (a tab is kept)."""
    return safe_text(text, keep="\t")


def _text(value: Any) -> str:
    return escape(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _lines(prefix: str, text: Any) -> list[str]:
    """A message: its first line after `prefix`, each further line indented under it."""
    parts = (text if isinstance(text, str) else _text(text)).split("\n")
    return [prefix + escape(parts[0])] + ["    " + escape(part) for part in parts[1:]]


def _said(payload: dict[str, Any], field: str) -> Any:
    """A notice's text or an error's message in the server's language (`reason`, `args`: docs/protocol.md §14)."""
    return render(payload.get("reason"), payload.get("args"), _) or payload.get(field, "")


def render_payload(payload: dict[str, Any]) -> list[str]:
    """One server payload as the lines a person reads (docs/protocol.md §5)."""
    kind = payload.get("type")
    who = _text(payload.get("from", payload.get("nick", "?")))
    room = _text(payload.get("room", ""))
    if kind == "message":
        if payload.get("action"):
            return _lines(f"* {who} ", payload.get("text", ""))
        return _lines(f"<{who}> ", payload.get("text", ""))
    if kind == "whisper":
        return _lines(f"<{who} -> {_text(payload.get('to', '?'))}> ", payload.get("text", ""))
    if kind == "welcome":
        users = _(", ").join(_text(user) for user in payload.get("users") or [])
        nick = _text(payload.get("nick"))
        lines = [_("* you are {nick} in {room}; here: {users}").format(nick=nick, room=room, users=users)]
        for key in ("motd", "topic"):
            if payload.get(key):
                lines += _lines(_("* motd: ") if key == "motd" else _("* topic: "), payload[key])
        for item in payload.get("history") or []:
            if isinstance(item, dict):
                lines += render_payload(item)
        lines.append(_("* type a line to say it; /help lists the commands"))
        return lines
    if kind == "joined":
        return [_("* {who} joined {room}").format(who=who, room=room)]
    if kind == "left":
        reason = _text(left_reason(str(payload.get("reason", "")), _))
        if payload.get("to"):
            reason += _(" to {room}").format(room=_text(payload["to"]))
        if payload.get("by"):
            reason += _(" by {nick}").format(nick=_text(payload["by"]))
        if payload.get("message"):
            reason += f": {_text(payload['message'])}"
        return [_("* {who} left {room} ({reason})").format(who=who, room=room, reason=reason)]
    if kind == "renamed":
        return [_("* {old} is now {new}").format(old=_text(payload.get("old")), new=_text(payload.get("new")))]
    if kind == "users":
        return [_("* in {room}: ").format(room=room) + _(", ").join(_text(user) for user in payload.get("users") or [])]
    if kind == "rooms":
        rooms = payload.get("rooms") or []
        # Rooms nobody is in, listed for their saved history, are said apart (not "maths (0)").
        quiet = [_text(r.get("name")) for r in rooms if isinstance(r, dict) and r.get("users") == 0]
        rooms = [r for r in rooms if isinstance(r, dict) and r.get("users") != 0]
        listed = [f"{_text(r.get('name'))} ({_text(r.get('users'))})" for r in rooms if isinstance(r, dict)]
        tail = _("; with history only: ") + _(", ").join(quiet) if quiet else ""
        return [_("* rooms: ") + (_(", ").join(listed) or _("none")) + tail]
    if kind == DOOR:
        return [escape(str(payload.get("text", "")))]
    if kind == "pong":
        return [_("* pong")]
    if kind == "notice":
        return _lines("* ", _said(payload, "text"))
    if kind == "error":
        return _lines(f"! {_text(payload.get('code'))}: ", _said(payload, "message"))
    details = " ".join(f"{_text(key)}={_text(value)}" for key, value in payload.items() if key not in ("type", "seq"))
    return [f"* {_text(kind)}: {details}"]


class TextOutbox(TCPOutbox):
    """A TCP outbox that writes each payload as text lines instead of a frame.

    The door shows no `seq`: TCP never loses, reorders or repeats (docs/protocol.md §3).
    """

    @staticmethod
    def encode(bodies: list[bytes], first_seq: int) -> bytes:
        lines: list[str] = []
        for body in bodies:
            lines += render_payload(json.loads(body))
        return "".join(line + NEWLINE for line in lines).encode("utf-8")

    def answer(self, lines: Iterable[str]) -> None:
        """Lines from the door itself; queued behind what the service queued, then sent.

        A peer that sends bad lines faster than it reads the answers overflows
        the outbox like any slow reader: it is cut off.
        """
        if self.put([encode_payload({"type": DOOR, "text": line}) for line in lines], 0):
            self.flush()
        else:
            self.cut()


# --- the connection -----------------------------------------------------------


class TextDoorHandler(ChatRequestHandler):
    """One `nc` or telnet connection: lines in, the service's payloads out as lines.

    Admitted, counted as a newcomer and ended exactly as a framed connection
    (chatsrv.tcp.ChatRequestHandler); only reading (`handle`) and the outbox's
    encoding differ.
    """

    server: TextDoorServer
    outbox: TextOutbox
    outbox_class = TextOutbox
    refused_line = N_("text door refused %s: %s%s")

    def admitted(self, session: Session) -> None:
        """Greet the person, and give the door's own answers (a bad line, /help) the service's rate limit."""
        self.hello: dict[str, Any] = {}
        session.extra["door"] = "text"
        # So bad lines cannot make the server write faster than good ones.
        service = self.server.service
        self.answers = TokenBucket(service.rate, service.burst, service.clock())
        self.outbox.answer([_(line) for line in GREETING])

    def handle(self) -> None:
        session = self.session
        if session is None:
            return
        server = self.server
        splitter = LineSplitter(server.max_line)
        # One deadline from accept for the nick, not a timeout per recv: a blank
        # line now and then must not keep a door connection that never joins open.
        deadline = self.accepted + server.hello_timeout if server.hello_timeout else None
        while not session.closed:
            if deadline is not None and self.ticket is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    error = ProtocolError("timeout", say("no_nick", seconds=server.hello_timeout), fatal=True)
                    server.service.reject(session, error)
                    return
                self.request.settimeout(left)
            try:
                data = wait_and_read(self.request, RECV_SIZE)
            except TimeoutError:
                continue  # the deadline check above ends it
            except OSError:
                return
            if not data:
                return
            self._lines(session, splitter.feed(data))
            server.backpressure.wait()
            if self.ticket is not None and session.joined:
                self._no_longer_new()
                self.request.settimeout(None)  # from now on keepalive watches the peer

    def _lines(self, session: Session, lines: list[bytes | Overlong]) -> None:
        """Every line one recv delivered: payloads in one batch, as a framed client's frames are."""
        batch: list[bytes] = []
        for item in lines:
            if session.closed:
                return
            if isinstance(item, Overlong):
                self._send(session, batch)
                too_long = _("! line too long: more than {limit} bytes; the rest of it is discarded")
                self._answer([too_long.format(limit=item.limit)])
                continue
            try:
                line = item.decode("utf-8")
            except UnicodeDecodeError:
                self._send(session, batch)
                self._answer([_("! that line is not UTF-8: set your terminal to UTF-8 (chcp 65001 on Windows)")])
                continue
            meaning = interpret(erase(line), session.joined)
            if meaning is None:
                continue
            if isinstance(meaning, Answer):
                self._send(session, batch)
                self._answer(meaning.lines)
            elif isinstance(meaning, Remember):
                if meaning.field == "password" and not self._password_ok(meaning.value):
                    continue
                self.hello[meaning.field] = meaning.value
                if meaning.field == "room":
                    self._answer([_("* you will enter {room} once you have a nick").format(room=escape(meaning.value))])
            elif meaning.payload["type"] == "bye":
                # nc shows nothing when a connection just ends: say goodbye first (sent before the hang-up).
                self._send(session, batch)
                self.outbox.answer([_("* bye: you left the chat (press Ctrl-C if nc stays open)")])
                self._send(session, [encode_payload(meaning.payload)])
            elif meaning.payload["type"] == "hello":
                self._send(session, batch)
                if self.server.service.access.password is not None and "password" not in self.hello:
                    # A hello without it would be a fatal auth_failed (docs/protocol.md §9): ask first.
                    self._answer([_("! this server needs a password: type /password SECRET, then your nick")])
                    continue
                self._send(session, [encode_payload({**self.hello, **meaning.payload})])
            else:
                batch.append(encode_payload(meaning.payload))
        self._send(session, batch)

    def _password_ok(self, given: str) -> bool:
        """Check /password when it is typed, so a wrong one is said and can be typed again.

        The access rules count it as a guess and slow a guesser down exactly as
        for a framed client's hello; only the connection stays open.
        """
        service = self.server.service
        if service.access.password is None:
            self._answer([_("* this server needs no password: type your nick")])
            return False
        try:
            with service.registry.lock:  # the access records are the service's, guarded by its lock
                service.access.check_password(self.client_address, given, service.clock())
        except ProtocolError as error:
            problem = escape(_said(error.payload(), "message"))
            self._answer([_("! {problem}: type /password SECRET again").format(problem=problem)])
            return False
        self._answer([_("* password accepted: now type your nick")])
        return True

    def _answer(self, lines: list[str]) -> None:
        if self.answers.allow(self.server.service.clock()):
            self.outbox.answer(lines)

    def _send(self, session: Session, batch: list[bytes]) -> None:
        if batch and not session.closed:
            self.server.service.receive(session, batch)
        batch.clear()


class TextDoorServer(ChatTCPServer):
    """The text door's listening socket: a `ChatTCPServer` (limits, live sockets,
    `stop`) whose connections are handled by `TextDoorHandler`."""

    def __init__(
        self,
        address: tuple[Any, ...],
        service: ChatService,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        hello_timeout: float = TEXT_HELLO_TIMEOUT,
        **options: Any,
    ) -> None:
        self.max_line = max_line
        super().__init__(address, service, hello_timeout=hello_timeout, **options)
        self.RequestHandlerClass = TextDoorHandler
