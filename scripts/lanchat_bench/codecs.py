"""How each kind of server is spoken to: bytes in -> counters and events, intents -> bytes out.

Owns: the benchmark marker (`MARK`, every benchmark chat text carries it once),
and one codec per server: lanchat over TCP (docs/protocol.md §2: length-framed
JSON payloads, §1) and UDP (§2: one datagram per payload, cookie handshake), miniircd (IRC
lines) and ncat --broker --chat (plain lines). Chat messages are counted by
the marker with C-level byte searches; only the rare control payloads are
decoded. A codec sends only through `conn.loop.transmit`.
Must not import: the loop, the launchers or anything above them at run time.
"""
from __future__ import annotations

import json
import re
import struct
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .conn import Conn

#: Every benchmark chat text contains this marker exactly once, so counting
#: it in the received bytes counts delivered chat messages.  No payload,
#: nick, room or frame header of any of the servers can contain it.
MARK = b"~M~"
#: The (scheduled) send time inside a latency text, perf_counter seconds.
TIME_RE = re.compile(rb"~T(\d+\.\d+)~")
SEQ_RE = re.compile(rb'"seq": ?(\d+)')
FRAME_HEADER = struct.Struct("!I")


def json_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def frame(payload: bytes) -> bytes:
    """docs/protocol.md §2 (TCP): a 4-byte big-endian length, then the payload."""
    return FRAME_HEADER.pack(len(payload)) + payload


def chat_text(sender: int, size: int, sent_at: float | None = None) -> str:
    """A benchmark text of about `size` characters carrying the marker (and, for latency, its send time)."""
    head = f"~M~{sender}~" + (f"T{sent_at:.6f}~" if sent_at is not None else "")
    return head + "x" * max(size - len(head), 1)


class Codec:
    """How one kind of server is spoken to.  Subclasses fill these in."""

    name = "?"
    #: Whether a sender receives its own chat messages.
    echo = True
    udp = False

    def login(self, conn: Conn) -> bytes:
        raise NotImplementedError

    def say(self, room: str, text: str) -> bytes:
        raise NotImplementedError

    def feed(self, conn: Conn, data: bytes, now: float) -> None:
        """Take bytes read from a stream socket."""
        raise NotImplementedError

    def datagram(self, conn: Conn, data: bytes, now: float) -> None:
        """Take one datagram (datagram codecs only)."""
        raise NotImplementedError

    def count(self, conn: Conn, region: bytes | bytearray, end: int, now: float, start: int = 0) -> None:
        """Count the chat messages in region[start:end] (complete frames or lines)."""
        if start >= end:
            return
        found = region.count(MARK, start, end)
        if not found:
            return
        conn.received += found
        tally = conn.tally
        tally.received += found
        tally.last_delivery = now
        if tally.latencies is not None:
            append = tally.latencies.append
            for sent in TIME_RE.findall(region, start, end):
                append(now - float(sent))
        out = conn.out
        if out.own_mark is not None:
            acked = region.count(out.own_mark, start, end)
            if acked:
                out.acked = min(out.acked + acked, out.sent)
                out.last_ack = now


class LanchatTcp(Codec):
    """docs/protocol.md §2 (TCP): 4-byte big-endian length + UTF-8 JSON object (§1)."""

    name = "lanchat"

    def login(self, conn: Conn) -> bytes:
        return frame(json_bytes({"type": "hello", "nick": conn.nick, "room": conn.room}))

    def say(self, room: str, text: str) -> bytes:
        return frame(json_bytes({"type": "say", "text": text}))

    def feed(self, conn: Conn, data: bytes, now: float) -> None:
        if (conn.scan or conn.count_only) and conn.ready:
            # Idle members of a huge room, or fanout receivers that only count:
            # look for the marker in the byte stream (plus a short overlap),
            # without walking frames, so the generator costs what the line
            # protocols' adapter costs (a C-level count, not a Python loop per frame).
            region = conn.tail + data
            self.count(conn, region, len(region), now)
            # Keep the end of the region, not of this read: a read shorter than the
            # overlap must not drop the start of a marker that began before it.
            conn.tail = region[-(len(MARK) - 1):]
            return
        buf = conn.inbuf
        buf += data
        size = len(buf)
        pos = 0
        counted_from = 0   # frames before this offset are not chat messages
        while pos + 4 <= size:
            end = pos + 4 + FRAME_HEADER.unpack_from(buf, pos)[0]
            if end > size:
                break
            # Until the welcome, decode everything: its history may hold
            # marked messages of an earlier run (a --db file keeps them).
            if not conn.ready or buf.find(MARK, pos + 4, end) < 0:
                if not conn.ready:
                    counted_from = end
                self.control(conn, bytes(buf[pos + 4:end]), now)
                if conn.scan and conn.ready:   # switch to scanning mid-buffer
                    self.count(conn, buf, pos, now, counted_from)
                    rest = bytes(buf[end:])
                    buf.clear()
                    if rest:
                        self.feed(conn, rest, now)
                    return
            pos = end
        if pos:
            self.count(conn, buf, pos, now, counted_from)
            del buf[:pos]

    def control(self, conn: Conn, payload: bytes, now: float) -> None:
        """Handle a payload that is not a benchmark chat message."""
        try:
            message = json.loads(payload)
        except ValueError:
            conn.tally.errors["undecodable payload"] += 1
            return
        kind = message.get("type")
        session = conn.datagram
        if kind == "welcome":
            conn.set_ready()
            token = message.get("token")
            if session is not None and isinstance(token, str):
                session.token = b',"token":%s}' % json.dumps(token).encode()
            timeout = message.get("peer_timeout")
            if session is not None and isinstance(timeout, (int, float)) and timeout > 0:
                session.ping_every = timeout / 3
        elif kind == "left":
            conn.tally.departed(str(message.get("nick")), str(message.get("reason")), now)
        elif kind == "error":
            code = str(message.get("code"))
            conn.tally.errors[code] += 1
            conn.set_failed(code)
        elif kind == "challenge":
            if session is not None:
                session.cookie = message.get("cookie")
            conn.loop.transmit(conn, self.login(conn))


class LanchatUdp(LanchatTcp):
    """docs/protocol.md §2 (UDP): one datagram per payload, cookie handshake."""

    name = "lanchat"
    udp = True

    def login(self, conn: Conn) -> bytes:
        session = conn.datagram
        assert session is not None
        hello: dict[str, Any] = {"type": "hello", "nick": conn.nick, "room": conn.room}
        if session.cookie:
            hello["cookie"] = session.cookie
        session.hello_at = time.perf_counter()
        return json_bytes(hello)

    def say(self, room: str, text: str) -> bytes:
        return json_bytes({"type": "say", "text": text})

    def datagram(self, conn: Conn, data: bytes, now: float) -> None:
        match = SEQ_RE.search(data)
        if match:
            seq = int(match.group(1))
            if seq:
                session = conn.datagram
                assert session is not None
                if seq > session.seq_high:
                    conn.tally.gaps += seq - session.seq_high - 1
                    session.seq_high = seq
                else:
                    conn.tally.reordered += 1
        if conn.ready and MARK in data:
            self.count(conn, data, len(data), now)
        else:
            self.control(conn, data, now)


class LineCodec(Codec):
    """Newline-terminated text lines; counts chat lines by the marker."""

    def feed(self, conn: Conn, data: bytes, now: float) -> None:
        buf = conn.inbuf
        buf += data
        end = buf.rfind(b"\n") + 1
        if not end:
            return
        self.count(conn, buf, end, now)
        self.lines(conn, bytes(buf[:end]), now)
        del buf[:end]

    def lines(self, conn: Conn, chunk: bytes, now: float) -> None:
        raise NotImplementedError


class Irc(LineCodec):
    """miniircd: NICK/USER, JOIN #room, PRIVMSG #room :text (no echo)."""

    name = "miniircd"
    echo = False
    QUIT_RE = re.compile(rb"^:([^!\s]+)![^ ]* QUIT :?(.*?)\r?$", re.MULTILINE)

    def login(self, conn: Conn) -> bytes:
        return f"NICK {conn.nick}\r\nUSER {conn.nick} 0 * :bench\r\nJOIN #{conn.room}\r\n".encode()

    def say(self, room: str, text: str) -> bytes:
        return f"PRIVMSG #{room} :{text}\r\n".encode()

    def lines(self, conn: Conn, chunk: bytes, now: float) -> None:
        if not conn.ready and b" 366 " in chunk:   # end of NAMES: joined
            conn.set_ready()
        if b"PING" in chunk:
            for line in chunk.splitlines():
                if line.startswith(b"PING"):
                    conn.loop.transmit(conn, b"PONG" + line[4:] + b"\r\n")
        if b" QUIT " in chunk:
            for nick, reason in self.QUIT_RE.findall(chunk):
                conn.tally.departed(nick.decode(errors="replace"), reason.decode(errors="replace"), now)
        if not conn.ready and (b" 433 " in chunk or b" 432 " in chunk):
            conn.set_failed("nick rejected")


class NcatChat(LineCodec):
    """ncat --broker --chat: plain lines, relayed as "<userN> text" (no echo)."""

    name = "ncat"
    echo = False
    SELF_RE = re.compile(rb"is connected as <(user\d+)>")
    GONE_RE = re.compile(rb"<announce> <(user\d+)> is disconnected")

    def login(self, conn: Conn) -> bytes:
        return b""

    def say(self, room: str, text: str) -> bytes:
        return text.encode() + b"\n"

    def lines(self, conn: Conn, chunk: bytes, now: float) -> None:
        # The first "is connected as" a member reads names itself (others' come
        # after it); it may arrive in an earlier read than "already connected".
        if not conn.ready and conn.alias is None:
            match = self.SELF_RE.search(chunk)
            if match:
                conn.alias = match.group(1).decode()
        if not conn.ready and b"already connected" in chunk:
            conn.set_ready()
        if b"is disconnected" in chunk:
            for name in self.GONE_RE.findall(chunk):
                conn.tally.departed(name.decode(), "disconnected", now)
