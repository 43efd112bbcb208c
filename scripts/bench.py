#!/usr/bin/env python3
"""Load benchmark for lanchat (and, with --vs, miniircd and ncat --broker --chat).

Every simulated client lives in this one process and is driven by one
``selectors`` (epoll) loop, so the generator stays cheap: it reads with large
``recv`` calls, walks frame headers without decoding them, and counts chat
messages by a marker that every benchmark text carries (``~M~``).  Only the
rare control payloads (``welcome``, ``left``, ``error`` ...) are JSON-decoded;
latency samples are taken with one regular-expression pass per ``recv``.

Scenarios (see ``--help`` for sizes):

* ``fanout``   N clients in one room, S of them send M messages each as fast
  as the server takes them; deliveries/s, lost, wall time.
* ``latency``  N clients, an open-loop offered load of R messages/s for T
  seconds; each text carries its *scheduled* send time (so a late generator
  shows up as latency instead of hiding it); p50/p90/p99/max one-way latency.
* ``scale``    C idle connections, all joined to one room; join time, whether
  one broadcast reaches all, server RSS per connection.
* ``slow``     one member joins with SO_RCVBUF=4096 and never reads while one
  member sends 1 KB messages; the others' delivery rate with and without the
  stuck member, server RSS growth, and what became of the stuck member.
* ``fanout-udp`` / ``latency-udp`` (or ``--udp``)  the same over lanchat's UDP
  transport, with the challenge/cookie handshake of docs/protocol.md section 2;
  loss = expected - received.

The benchmark only ever talks to 127.0.0.1, bounds every wait by a deadline,
and always stops the servers it started (by PID, in ``finally``).
The load side uses the standard library only.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import selectors
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Every benchmark chat text contains this marker exactly once, so counting
#: it in the received bytes counts delivered chat messages.  No payload,
#: nick, room or frame header of any of the servers can contain it.
MARK = b"~M~"
#: The (scheduled) send time inside a latency text, perf_counter seconds.
TIME_RE = re.compile(rb"~T(\d+\.\d+)~")
SEQ_RE = re.compile(rb'"seq": ?(\d+)')
LISTENING_RE = re.compile(r"listening on (\S+) port (\d+)")
FRAME_HEADER = struct.Struct("!I")

RECV_SIZE = 256 * 1024
#: A sender stops producing frames while this much is still unsent.
SEND_HIGH_WATER = 256 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: How often parked (idle) members are read, seconds.
SWEEP_EVERY = 0.2


# --------------------------------------------------------------------------
# Process statistics from /proc
# --------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of a process, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            data = stat_file.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its ")".
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kb(pid: int) -> int | None:
    """Resident set size in KiB, from VmRSS in /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status_file:
            for line in status_file:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class CpuMeter:
    """CPU share (percent of one core) of the server and of this process."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.wall = time.perf_counter()
        self.own = time.process_time()
        self.server = cpu_seconds(server_pid) if server_pid else None

    def result(self) -> dict[str, float | None]:
        wall = max(time.perf_counter() - self.wall, 1e-9)
        own = (time.process_time() - self.own) / wall * 100
        server_pct: float | None = None
        if self.server_pid and self.server is not None:
            now = cpu_seconds(self.server_pid)
            if now is not None:
                server_pct = (now - self.server) / wall * 100
        return {"server_cpu_pct": rnd(server_pct, 1), "bench_cpu_pct": rnd(own, 1)}


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def raise_nofile_limit() -> int:
    """Raise the soft open-file limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


# --------------------------------------------------------------------------
# Protocol adapters: bytes in -> counters and events, intents -> bytes out
# --------------------------------------------------------------------------

class Tally:
    """What one phase of a scenario observed, summed over its connections."""

    def __init__(self, want_latency: bool = False) -> None:
        self.received = 0
        self.bytes = 0
        self.last_delivery = 0.0
        self.last_bytes = 0.0
        self.latencies: list[float] | None = [] if want_latency else None
        self.departures: dict[str, tuple[str, float]] = {}
        self.errors: Counter[str] = Counter()
        self.gaps = 0
        self.reordered = 0

    def departed(self, nick: str, reason: str, now: float) -> None:
        self.departures.setdefault(nick.casefold(), (reason, now))


class Protocol:
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
        raise NotImplementedError

    def count(self, conn: Conn, region: bytes | bytearray, end: int, now: float,
              start: int = 0) -> None:
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
        if conn.own_mark is not None:
            acked = region.count(conn.own_mark, start, end)
            if acked:
                conn.acked = min(conn.acked + acked, conn.sent)
                conn.last_ack = now


def json_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class LanchatTcp(Protocol):
    """docs/protocol.md: 4-byte big-endian length + UTF-8 JSON object."""

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
            conn.tail = data[-(len(MARK) - 1):]
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
        if kind == "welcome":
            conn.set_ready()
            timeout = message.get("peer_timeout")
            if isinstance(timeout, (int, float)) and timeout > 0:
                conn.ping_every = timeout / 3
        elif kind == "left":
            conn.tally.departed(str(message.get("nick")), str(message.get("reason")), now)
        elif kind == "error":
            code = str(message.get("code"))
            conn.tally.errors[code] += 1
            conn.set_failed(code)
        elif kind == "challenge":
            conn.cookie = message.get("cookie")
            conn.loop.transmit(conn, self.login(conn))


class LanchatUdp(LanchatTcp):
    """docs/protocol.md section 2: one datagram per payload, cookie handshake."""

    name = "lanchat"
    udp = True

    def login(self, conn: Conn) -> bytes:
        hello: dict[str, Any] = {"type": "hello", "nick": conn.nick, "room": conn.room}
        if conn.cookie:
            hello["cookie"] = conn.cookie
        conn.hello_at = time.perf_counter()
        return json_bytes(hello)

    def say(self, room: str, text: str) -> bytes:
        return json_bytes({"type": "say", "text": text})

    def datagram(self, conn: Conn, data: bytes, now: float) -> None:
        match = SEQ_RE.search(data)
        if match:
            seq = int(match.group(1))
            if seq:
                if seq > conn.seq_high:
                    conn.tally.gaps += seq - conn.seq_high - 1
                    conn.seq_high = seq
                else:
                    conn.tally.reordered += 1
        if conn.ready and MARK in data:
            self.count(conn, data, len(data), now)
        else:
            self.control(conn, data, now)


class LineProtocol(Protocol):
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


class Irc(LineProtocol):
    """miniircd: NICK/USER, JOIN #room, PRIVMSG #room :text (no echo)."""

    name = "miniircd"
    echo = False
    QUIT_RE = re.compile(rb"^:([^!\s]+)![^ ]* QUIT :?(.*?)\r?$", re.MULTILINE)

    def login(self, conn: Conn) -> bytes:
        return (f"NICK {conn.nick}\r\nUSER {conn.nick} 0 * :bench\r\n"
                f"JOIN #{conn.room}\r\n").encode()

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
                conn.tally.departed(nick.decode(errors="replace"),
                                    reason.decode(errors="replace"), now)
        if not conn.ready and (b" 433 " in chunk or b" 432 " in chunk):
            conn.set_failed("nick rejected")


class NcatChat(LineProtocol):
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
        if not conn.ready and b"already connected" in chunk:
            conn.set_ready()
            match = self.SELF_RE.search(chunk)
            if match:
                conn.alias = match.group(1).decode()
        if b"is disconnected" in chunk:
            for name in self.GONE_RE.findall(chunk):
                conn.tally.departed(name.decode(), "disconnected", now)


def frame(payload: bytes) -> bytes:
    return FRAME_HEADER.pack(len(payload)) + payload


# --------------------------------------------------------------------------
# Connections and the one event loop
# --------------------------------------------------------------------------

class Conn:
    """One simulated client: a socket, its buffers and its counters."""

    __slots__ = (
        "acked",
        "alias",
        "closed",
        "connecting",
        "cookie",
        "count_only",
        "failed",
        "frame",
        "hello_at",
        "inbuf",
        "index",
        "last_ack",
        "last_send",
        "loop",
        "mask",
        "nick",
        "outbuf",
        "own_mark",
        "ping_every",
        "proto",
        "reading",
        "ready",
        "received",
        "room",
        "scan",
        "sent",
        "seq_high",
        "sock",
        "tail",
        "tally",
        "to_send",
        "tries",
        "udp",
        "window",
    )

    def __init__(self, loop: Loop, proto: Protocol, tally: Tally, index: int,
                 nick: str, room: str) -> None:
        self.loop = loop
        self.proto = proto
        self.tally = tally
        self.index = index
        self.nick = nick
        self.room = room
        self.sock: socket.socket | None = None
        self.udp = proto.udp
        self.connecting = False
        self.ready = False
        self.failed: str | None = None
        self.closed = False
        self.reading = True
        self.scan = False
        self.count_only = False  # after joining, count markers without walking frames
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.tail = b""
        self.mask = 0
        self.received = 0
        self.alias: str | None = None
        # Sending state (fanout senders).
        self.to_send = 0
        self.sent = 0
        self.frame = b""
        self.own_mark: bytes | None = None
        self.acked = 0
        self.window = 0
        self.last_ack = 0.0
        # UDP state.
        self.cookie: str | None = None
        self.hello_at = 0.0
        self.tries = 0
        self.ping_every = 10.0
        self.last_send = 0.0
        self.seq_high = 0

    @property
    def name(self) -> str:
        """The name other members see (ncat assigns its own)."""
        return self.alias or self.nick

    def set_ready(self) -> None:
        if not self.ready and not self.failed:
            self.ready = True
            self.loop.ready_count += 1
            if self.scan:
                self.loop.park(self)

    def set_failed(self, why: str) -> None:
        if not self.ready and not self.failed:
            self.failed = why
            self.loop.failed_count += 1


class Loop:
    """One selector for every simulated client, plus bounded waiting."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.selector = selectors.DefaultSelector()
        self.conns: list[Conn] = []
        self.ready_count = 0
        self.failed_count = 0
        self.next_health_check = 0.0
        #: Idle members read by a periodic sweep instead of the selector.
        self.parked: list[Conn] = []
        self.next_sweep = 0.0

    # -- registration ----------------------------------------------------
    def _want(self, conn: Conn, mask: int) -> None:
        if conn.sock is None or conn.closed or mask == conn.mask:
            return
        if conn.mask == 0:
            self.selector.register(conn.sock, mask, conn)
        elif mask == 0:
            self.selector.unregister(conn.sock)
        else:
            self.selector.modify(conn.sock, mask, conn)
        conn.mask = mask

    def _update(self, conn: Conn) -> None:
        mask = selectors.EVENT_READ if conn.reading else 0
        if conn.connecting or conn.outbuf or (conn.to_send and not conn.udp
                                              and conn.reading):
            mask |= selectors.EVENT_WRITE
        self._want(conn, mask)

    # -- opening and closing ---------------------------------------------
    def open(self, conn: Conn, rcvbuf: int | None = None) -> None:
        """Start a non-blocking connect (TCP) or a hello (UDP)."""
        address = (self.server.host, self.server.port)
        self.conns.append(conn)
        if conn.udp:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            set_receive_buffer(sock, rcvbuf or 4 * 1024 * 1024)
            sock.bind((LOOPBACK, 0))
            sock.connect(address)
            sock.setblocking(False)
            conn.sock = sock
            self._update(conn)
            self.transmit(conn, conn.proto.login(conn))
            conn.tries = 1
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn.sock = sock
        error = sock.connect_ex(address)
        if error not in (0, 115):   # 115 = EINPROGRESS
            self.close(conn, f"connect: {os.strerror(error)}")
            return
        conn.connecting = True
        self._update(conn)

    def close(self, conn: Conn, why: str | None = None) -> None:
        if conn.closed:
            return
        conn.set_failed(why or "closed")
        if conn.sock is not None:
            self._want(conn, 0)
            conn.sock.close()
        conn.closed = True

    def close_all(self) -> None:
        for conn in self.conns:
            self.close(conn)
        self.selector.close()

    def park(self, conn: Conn) -> None:
        """Read an idle member every SWEEP_EVERY seconds, not on each event.

        With C members in a room every join sends C notices; reading each
        one as it comes costs the generator a recv per notice (12.5 M for
        C = 5,000) and makes it, not the server, the bottleneck.  The server
        does the same work either way: the notices wait in socket buffers.
        """
        conn.reading = False
        self._update(conn)
        self.parked.append(conn)

    def unpark_all(self) -> None:
        for conn in self.parked:
            if not conn.closed:
                conn.reading = True
                self._update(conn)
        self.parked.clear()

    def sweep(self, now: float) -> None:
        for conn in self.parked:
            if not conn.closed:
                self._readable(conn, now)

    def stop_reading(self, conn: Conn) -> None:
        """Make a member that never reads again (the stuck one)."""
        conn.reading = False
        self._update(conn)

    # -- I/O ---------------------------------------------------------------
    def transmit(self, conn: Conn, data: bytes) -> None:
        """Send bytes (TCP) or one datagram (UDP) without ever blocking."""
        if conn.closed or conn.sock is None or not data:
            return
        conn.last_send = time.perf_counter()
        if conn.udp:
            try:
                conn.sock.send(data)
            except BlockingIOError:
                conn.tally.errors["udp send would block"] += 1
            except OSError as error:
                conn.tally.errors[f"udp send: {error.strerror}"] += 1
            return
        conn.outbuf += data
        if not conn.connecting:
            self._flush(conn)

    def _flush(self, conn: Conn) -> None:
        assert conn.sock is not None
        try:
            sent = conn.sock.send(conn.outbuf)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self.close(conn, f"send: {error.strerror}")
            return
        del conn.outbuf[:sent]
        self._update(conn)

    def _pump(self, conn: Conn) -> None:
        """Feed a sender's queued messages to the kernel until it pushes back."""
        assert conn.sock is not None
        if conn.udp:
            allowed = conn.to_send
            if conn.window:
                allowed = min(allowed, conn.window - (conn.sent - conn.acked))
            for _ in range(max(allowed, 0)):
                try:
                    conn.sock.send(conn.frame)
                except BlockingIOError:
                    break
                except OSError as error:
                    conn.tally.errors[f"udp send: {error.strerror}"] += 1
                    break
                conn.to_send -= 1
                conn.sent += 1
            conn.last_send = time.perf_counter()
            return
        for _ in range(8):
            if conn.to_send and len(conn.outbuf) < SEND_HIGH_WATER:
                batch = min(conn.to_send, max(1, SEND_HIGH_WATER // len(conn.frame)))
                conn.outbuf += conn.frame * batch
                conn.to_send -= batch
                conn.sent += batch
            if not conn.outbuf:
                break
            before = len(conn.outbuf)
            self._flush(conn)
            if conn.closed or len(conn.outbuf) == before or conn.outbuf:
                break
        self._update(conn)

    def _readable(self, conn: Conn, now: float) -> None:
        assert conn.sock is not None
        if conn.udp:
            proto = conn.proto
            assert isinstance(proto, LanchatUdp)
            for _ in range(256):
                try:
                    data = conn.sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError as error:
                    conn.tally.errors[f"udp recv: {error.strerror}"] += 1
                    break
                conn.tally.bytes += len(data)
                conn.tally.last_bytes = now
                proto.datagram(conn, data, now)
            if conn.to_send:
                self._pump(conn)
            return
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as error:
            self.close(conn, f"recv: {error.strerror}")
            return
        if not data:
            self.close(conn, "closed by server")
            return
        conn.tally.bytes += len(data)
        conn.tally.last_bytes = now
        conn.proto.feed(conn, data, now)

    def _writable(self, conn: Conn) -> None:
        assert conn.sock is not None
        if conn.connecting:
            error = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self.close(conn, f"connect: {os.strerror(error)}")
                return
            conn.connecting = False
            self.transmit(conn, conn.proto.login(conn))
        if conn.udp:
            self._pump(conn)
            self._update(conn)
        elif conn.to_send or conn.outbuf:
            self._pump(conn)
        else:
            self._update(conn)

    def step(self, timeout: float) -> None:
        """Wait at most `timeout` seconds and handle whatever is ready."""
        events = self.selector.select(timeout)
        now = time.perf_counter()
        for key, mask in events:
            conn = key.data
            if mask & selectors.EVENT_WRITE and not conn.closed:
                self._writable(conn)
            if mask & selectors.EVENT_READ and not conn.closed:
                self._readable(conn, now)

    def start_sending(self, conn: Conn, data: bytes, count: int, window: int = 0) -> None:
        conn.frame = data
        conn.to_send += count
        conn.window = window
        conn.last_ack = time.perf_counter()
        self._pump(conn)

    def udp_housekeeping(self, now: float) -> None:
        """Hello retries, keep-alive pings and a stalled send window."""
        for conn in self.conns:
            if not conn.udp or conn.closed:
                continue
            if not conn.ready:
                if now - conn.hello_at > 0.5:
                    if conn.tries >= 10:
                        conn.set_failed("no welcome after 10 hellos (UDP served?)")
                    elif not conn.failed:
                        conn.tries += 1
                        self.transmit(conn, conn.proto.login(conn))
                continue
            if now - conn.last_send > conn.ping_every:
                self.transmit(conn, b'{"type":"ping"}')
            if (conn.to_send and conn.window
                    and conn.sent - conn.acked >= conn.window
                    and now - conn.last_ack > 0.5):
                # Echoes of the window were lost: write them off, go on.
                conn.tally.errors["udp window timeout"] += 1
                conn.acked = conn.sent
                conn.last_ack = now
            if conn.to_send:
                self._pump(conn)

    # -- bounded waiting ----------------------------------------------------
    def run_until(self, done: Callable[[], bool], deadline: float,
                  idle: float | None = None,
                  progress: Callable[[], float] | None = None,
                  tick: Callable[[float], float | None] | None = None) -> str:
        """Run the loop until done() or a limit; returns why it stopped.

        `progress` returns a number that grows while things happen; with
        `idle`, the wait ends after that many seconds without growth.
        `tick(now)` runs every iteration and may return how long the loop
        may sleep at most.
        """
        last_value = progress() if progress else 0.0
        last_change = time.perf_counter()
        while True:
            if done():
                return "done"
            now = time.perf_counter()
            if now >= deadline:
                return "deadline"
            if self.parked and now >= self.next_sweep:
                self.next_sweep = now + SWEEP_EVERY
                self.sweep(now)
                now = time.perf_counter()
            if now >= self.next_health_check:
                self.next_health_check = now + 0.25
                if not self.server.alive():
                    return "server exited"
            if progress is not None and idle is not None:
                value = progress()
                if value != last_value:
                    last_value, last_change = value, now
                elif now - last_change > idle:
                    return "idle"
            timeout = min(0.05, deadline - now)
            if tick is not None:
                wanted = tick(now)
                if wanted is not None:
                    timeout = min(timeout, wanted)
            self.step(max(timeout, 0.0))


def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for a big receive buffer; as root, past net.core.rmem_max."""
    force = getattr(socket, "SO_RCVBUFFORCE", 33)
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


# --------------------------------------------------------------------------
# Servers under test (always on 127.0.0.1, always stopped by PID)
# --------------------------------------------------------------------------

class ServerError(RuntimeError):
    """A server could not be started."""


class ServerProcess:
    """A server started for one scenario run; stop() kills it by PID."""

    kind = "?"
    #: Connections opened but not yet joined at a time, kept below the
    #: server's listen backlog so join time measures the server and not
    #: the kernel's SYN retransmission timer.
    burst = 64
    protocol_tcp: Protocol = Protocol()
    protocol_udp: Protocol | None = None

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.host = LOOPBACK
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.kind}-{time.monotonic_ns()}.log"
        self.exit_code: int | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        raise NotImplementedError

    def cwd(self) -> str | None:
        return None

    def protocol(self, udp: bool) -> Protocol:
        if not udp:
            return self.protocol_tcp
        if self.protocol_udp is None:
            raise ServerError(f"{self.kind} has no UDP transport")
        return self.protocol_udp

    def start(self, timeout: float = 20.0) -> None:
        command = self.command()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.cwd(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        RUNNING.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.kind} exited with {self.proc.returncode}: "
                                  f"{shlex.join(command)}\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.02)
        raise ServerError(f"{self.kind} did not come up within {timeout:.0f} s\n"
                          f"{self.log_tail()}")

    def ready(self) -> bool:
        """Whether the server listens on self.port.

        Read from /proc/net/tcp rather than probed with a connection:
        ncat --broker quits ("getpeername ... failed") when a connection
        is gone before it gets to accept it.
        """
        return port_listening(self.port)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s; only the process group we made."""
        proc = self.proc
        if proc is None:
            if self in RUNNING:
                RUNNING.remove(self)
            return
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)   # its own session: pgid == pid
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self.exit_code = proc.poll()
        if self in RUNNING:
            RUNNING.remove(self)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


#: Servers started and not yet stopped; main() stops them in finally.
RUNNING: list[ServerProcess] = []


def port_listening(port: int) -> bool:
    """Whether some socket listens on 127.0.0.1:port (or on every address)."""
    wanted = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    try:
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[1] in wanted and fields[3] == "0A":   # 0A = LISTEN
                    return True
    except OSError:
        pass
    return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


class LanchatServer(ServerProcess):
    """chatsrv with rate limit and connection caps off, port chosen by it."""

    kind = "lanchat"
    protocol_tcp = LanchatTcp()
    protocol_udp = LanchatUdp()

    def __init__(self, workdir: Path, options: argparse.Namespace) -> None:
        super().__init__(workdir)
        self.options = options

    def command(self) -> list[str]:
        options = self.options
        base = chatsrv_command(options)
        database = ["--db", options.db] if options.db else []
        return base + [
            "--host", LOOPBACK, "--port", "0", "--rate", "0",
            "--max-clients", "0", "--max-per-ip", "0", *database,
            *options.server_arg]

    def cwd(self) -> str | None:
        return str(self.options.server_dir)

    def ready(self) -> bool:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return False
        match = LISTENING_RE.search(text)
        if not match:
            return False
        host, port = match.group(1), int(match.group(2))
        if not host.startswith("127."):
            raise ServerError(f"lanchat listens on {host}, not on loopback")
        self.host, self.port = host, port
        return True


class MiniircdServer(ServerProcess):
    kind = "miniircd"
    burst = 4   # it listens with a backlog of 5
    protocol_tcp = Irc()

    def command(self) -> list[str]:
        self.port = free_port()
        try:
            import importlib.util
            found = importlib.util.find_spec("miniircd") is not None
        except (ImportError, ValueError):
            found = False
        if found:
            base = [sys.executable, "-m", "miniircd"]
        elif shutil.which("miniircd"):
            base = [str(shutil.which("miniircd"))]
        else:
            raise ServerError("miniircd not installed (pip install miniircd)")
        command = base + ["--listen", LOOPBACK, "--ports", str(self.port)]
        if os.geteuid() == 0:   # it refuses to run as root without this
            command += ["--setuid", "root"]
        return command


class NcatServer(ServerProcess):
    kind = "ncat"
    burst = 8   # it listens with a backlog of 10
    protocol_tcp = NcatChat()

    def __init__(self, workdir: Path, max_conns: int) -> None:
        super().__init__(workdir)
        self.max_conns = max_conns

    def command(self) -> list[str]:
        ncat = shutil.which("ncat")
        if not ncat:
            raise ServerError("ncat not installed (apt-get install -y ncat)")
        self.port = free_port()
        return [ncat, "--broker", "--chat", "--listen", LOOPBACK, str(self.port),
                "--max-conns", str(self.max_conns)]


def chatsrv_command(options: argparse.Namespace) -> list[str]:
    return (shlex.split(options.server_cmd) if options.server_cmd
            else [sys.executable, "-m", "chatsrv"])


def default_db(options: argparse.Namespace) -> str:
    """":memory:" if this chatsrv has a --db option, else "" (leave it out)."""
    try:
        shown = subprocess.run(chatsrv_command(options) + ["--help"], cwd=options.server_dir,
                               capture_output=True, text=True, timeout=15, check=False,
                               stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ":memory:"
    return ":memory:" if "--db" in shown.stdout else ""


def make_server(kind: str, workdir: Path, options: argparse.Namespace,
                max_conns: int) -> ServerProcess:
    if kind == "lanchat":
        return LanchatServer(workdir, options)
    if kind == "miniircd":
        return MiniircdServer(workdir)
    if kind == "ncat":
        return NcatServer(workdir, max_conns + 50)
    raise ValueError(kind)


# --------------------------------------------------------------------------
# Scenario building blocks
# --------------------------------------------------------------------------

_room_counter = 0


def burst_for(server: ServerProcess, opts: argparse.Namespace) -> int:
    return int(opts.burst or server.burst)


_run_token = "".join(chr(ord("a") + b % 26) for b in os.urandom(5))


def fresh_room(prefix: str) -> str:
    """A new room per phase and per benchmark run, so that no history of an
    earlier phase (or of an earlier run kept in a --db file) shows up."""
    global _room_counter
    _room_counter += 1
    return f"{prefix}{_room_counter}{_run_token}"


def chat_text(sender: int, size: int, sent_at: float | None = None) -> str:
    """A benchmark text of about `size` characters carrying the marker."""
    head = f"~M~{sender}~" + (f"T{sent_at:.6f}~" if sent_at is not None else "")
    return head + "x" * max(size - len(head), 1)


def join_clients(loop: Loop, proto: Protocol, tally: Tally, count: int, room: str,
                 prefix: str, deadline: float, burst: int, rcvbuf: int | None = None,
                 scan: bool = False) -> list[Conn]:
    """Connect `count` clients (at most `burst` unanswered at a time) and
    wait until each has joined or failed; returns all of them."""
    conns: list[Conn] = []
    base = loop.ready_count + loop.failed_count

    def settled() -> int:
        return loop.ready_count + loop.failed_count - base

    def tick(now: float) -> float | None:
        while len(conns) < count and len(conns) - settled() < burst:
            conn = Conn(loop, proto, tally, len(conns), f"{prefix}{len(conns)}", room)
            conn.scan = scan
            conns.append(conn)
            loop.open(conn, rcvbuf)
        if proto.udp:
            loop.udp_housekeeping(now)
        return None

    loop.run_until(lambda: settled() >= count, deadline, tick=tick)
    return conns


def joined(conns: Sequence[Conn]) -> int:
    return sum(1 for conn in conns if conn.ready and not conn.closed)


def join_failure(conns: Sequence[Conn], loop: Loop, wanted: int | None = None) -> str:
    reasons = Counter(conn.failed or "no answer" for conn in conns if not conn.ready)
    if wanted and wanted > len(conns):
        reasons["never opened (deadline)"] = wanted - len(conns)
    text = ", ".join(f"{why} x{n}" for why, n in reasons.most_common(3))
    alive = "" if loop.server.alive() else " (server exited)"
    return f"only {joined(conns)} of {wanted or len(conns)} joined: {text}{alive}"


def note_server_exit(result: dict[str, Any], why: str, server: ServerProcess) -> None:
    if why == "server exited":
        result.setdefault("error", f"server exited with {server.proc.returncode if server.proc else '?'}: "
                          + server.log_tail(3).replace("\n", " | "))


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def housekeeping_tick(loop: Loop, udp: bool) -> Callable[[float], float | None] | None:
    if not udp:
        return None
    state = {"next": 0.0}

    def tick(now: float) -> float | None:
        if now >= state["next"]:
            state["next"] = now + 0.1
            loop.udp_housekeeping(now)
        return None
    return tick


# --------------------------------------------------------------------------
# Scenarios: each returns one flat dict of results
# --------------------------------------------------------------------------

def run_fanout(server: ServerProcess, opts: argparse.Namespace, udp: bool) -> dict[str, Any]:
    """S senders x M messages into a room of N; count every delivery."""
    proto = server.protocol(udp)
    loop = Loop(server)
    tally = Tally()
    room = fresh_room("fanout")
    result: dict[str, Any] = {
        "clients": opts.clients, "senders": opts.senders, "messages": opts.messages,
        "size": opts.size, "window": opts.udp_window if udp else None}
    try:
        conns = join_clients(loop, proto, tally, opts.clients, room, "f",
                             time.perf_counter() + opts.timeout, burst_for(server, opts))
        if joined(conns) < opts.clients:
            result["error"] = join_failure(conns, loop)
            return result
        receivers = opts.clients if proto.echo else opts.clients - 1
        expected = opts.senders * opts.messages * receivers
        for conn in conns:
            conn.count_only = True
        tally.received = 0
        meter = CpuMeter(server.pid)
        start = time.perf_counter()
        for index, conn in enumerate(conns[:opts.senders]):
            if udp:
                conn.own_mark = b"~M~%d~" % index
            loop.start_sending(conn, proto.say(room, chat_text(index, opts.size)),
                               opts.messages, opts.udp_window if udp else 0)
        why = loop.run_until(lambda: tally.received >= expected,
                             start + opts.timeout, idle=opts.idle,
                             progress=lambda: tally.bytes,
                             tick=housekeeping_tick(loop, udp))
        wall = (tally.last_delivery or time.perf_counter()) - start
        result.update({
            "expected": expected, "received": tally.received,
            "lost": expected - tally.received, "wall_s": rnd(wall),
            "deliveries_per_s": rnd(tally.received / wall if wall > 0 else None, 0),
            "messages_per_s": rnd(opts.senders * opts.messages / wall
                                  if wall > 0 else None, 0),
            "stopped": why, **meter.result()})
        return finish_result(result, why, server, tally, udp)
    finally:
        loop.close_all()


def finish_result(result: dict[str, Any], why: str, server: ServerProcess, tally: Tally, udp: bool) -> dict[str, Any]:
    """What fanout and latency add at the end: server exit, UDP sequence counters, errors."""
    note_server_exit(result, why, server)
    if udp:
        result.update({"seq_gaps": tally.gaps, "reordered": tally.reordered})
    if tally.errors:
        result["errors"] = dict(tally.errors)
    return result


def run_latency(server: ServerProcess, opts: argparse.Namespace, udp: bool) -> dict[str, Any]:
    """Open-loop load of R messages/s for T s; one-way latency per delivery."""
    proto = server.protocol(udp)
    loop = Loop(server)
    tally = Tally(want_latency=True)
    room = fresh_room("latency")
    senders_count = min(opts.senders, opts.clients)
    result: dict[str, Any] = {
        "clients": opts.clients, "senders": senders_count, "rate": opts.rate,
        "duration": opts.duration, "size": opts.size}
    try:
        conns = join_clients(loop, proto, tally, opts.clients, room, "l",
                             time.perf_counter() + opts.timeout, burst_for(server, opts))
        if joined(conns) < opts.clients:
            result["error"] = join_failure(conns, loop)
            return result
        receivers = opts.clients if proto.echo else opts.clients - 1
        rate = float(opts.rate)
        total = max(1, int(rate * opts.duration))
        senders = conns[:senders_count]
        housekeeping = housekeeping_tick(loop, udp)
        meter = CpuMeter(server.pid)
        start = time.perf_counter() + 0.02
        state = {"sent": 0, "last_send": start}

        def tick(now: float) -> float | None:
            if housekeeping:
                housekeeping(now)
            sent = int(state["sent"])
            if sent >= total:
                return None
            due = min(total, int((now - start) * rate) + 1) if now >= start else 0
            while sent < due:
                scheduled = start + sent / rate
                sender = senders[sent % senders_count]
                loop.transmit(sender, proto.say(
                    room, chat_text(sender.index, opts.size, scheduled)))
                sent += 1
            state["sent"] = sent
            state["last_send"] = now
            return max(0.0, start + sent / rate - time.perf_counter())

        why = loop.run_until(
            lambda: state["sent"] >= total and tally.received >= total * receivers,
            start + opts.duration + opts.timeout, idle=opts.idle,
            progress=lambda: tally.bytes + state["sent"], tick=tick)
        sent = int(state["sent"])
        expected = sent * receivers
        ordered = sorted(tally.latencies or [])
        send_wall = state["last_send"] - start

        def ms(value: float | None) -> float | None:
            return rnd(value * 1000 if value is not None else None, 3)
        result.update({
            "sent": sent, "offered_rate": rnd(sent / send_wall if send_wall > 0 else None, 0),
            "expected": expected, "received": tally.received,
            "lost": expected - tally.received,
            "p50_ms": ms(percentile(ordered, 0.50)), "p90_ms": ms(percentile(ordered, 0.90)),
            "p99_ms": ms(percentile(ordered, 0.99)), "max_ms": ms(ordered[-1] if ordered else None),
            "stopped": why, **meter.result()})
        return finish_result(result, why, server, tally, udp)
    finally:
        loop.close_all()


def run_scale(server: ServerProcess, opts: argparse.Namespace, conns_wanted: int) -> dict[str, Any]:
    """C idle members in one room: join time, one broadcast, RSS per member."""
    proto = server.protocol(False)
    loop = Loop(server)
    tally = Tally()
    room = fresh_room("scale")
    pid = server.pid or 0
    result: dict[str, Any] = {"conns": conns_wanted}
    try:
        time.sleep(0.3)
        rss_before = rss_kb(pid)
        meter = CpuMeter(server.pid)
        start = time.perf_counter()
        conns = join_clients(loop, proto, tally, conns_wanted, room, "c",
                             start + opts.scale_timeout, burst_for(server, opts), scan=True)
        join_s = time.perf_counter() - start
        result.update({"joined": joined(conns), "join_s": rnd(join_s),
                       "joins_per_s": rnd(joined(conns) / join_s, 0)})
        # Let the burst of "joined" notices drain before measuring memory
        # (connections still in flight may finish joining meanwhile).
        loop.run_until(lambda: False, time.perf_counter() + opts.timeout,
                       idle=0.5, progress=lambda: tally.bytes)
        members = [conn for conn in conns if conn.ready and not conn.closed]
        rss_after = rss_kb(pid)
        result.update({"members": len(members), "join_bytes": tally.bytes,
                       "settle_s": rnd(time.perf_counter() - start),
                       "rss_before_kb": rss_before, "rss_after_kb": rss_after,
                       "rss_per_conn_kb": rnd((rss_after - rss_before) / len(members), 2)
                       if rss_before and rss_after and members else None,
                       **meter.result()})
        if len(members) < conns_wanted:
            result["error"] = join_failure(conns, loop, conns_wanted)
        if not members:
            return result
        loop.unpark_all()   # the broadcast's arrival times should be exact
        expected = len(members) if proto.echo else len(members) - 1
        tally.received = 0
        sent_at = time.perf_counter()
        loop.transmit(members[0], proto.say(room, chat_text(0, 20)))
        why = loop.run_until(lambda: tally.received >= expected,
                             sent_at + opts.timeout, idle=opts.idle,
                             progress=lambda: tally.bytes)
        result.update({
            "bcast_expected": expected, "bcast_reached": tally.received,
            "bcast_all": tally.received >= expected > 0,
            "bcast_s": rnd(tally.last_delivery - sent_at if tally.received else None),
            "stopped": why,
            "closed_by_server": sum(1 for conn in members if conn.closed)})
        note_server_exit(result, why, server)
        if tally.errors:
            result["errors"] = dict(tally.errors)
        return result
    finally:
        loop.close_all()


def drain_until_closed(sock: socket.socket, seconds: float = 1.0) -> str:
    """Read what a stuck member has waiting: did the server close it?"""
    sock.setblocking(False)
    deadline = time.perf_counter() + seconds
    budget = 256 * 1024 * 1024
    while time.perf_counter() < deadline and budget > 0:
        try:
            data = sock.recv(RECV_SIZE)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        except OSError:
            return "reset by server"
        if not data:
            return "closed by server"
        budget -= len(data)
    return "still open"


def slow_phase(server: ServerProcess, opts: argparse.Namespace,
               with_stuck: bool) -> dict[str, Any]:
    """One sender floods 1 KB messages; the others read; maybe one is stuck."""
    proto = server.protocol(False)
    loop = Loop(server)
    tally = Tally()
    stuck_tally = Tally()
    room = fresh_room("slow")
    readers = opts.slow_clients - 1
    pid = server.pid or 0
    phase: dict[str, Any] = {}
    try:
        deadline = time.perf_counter() + opts.timeout
        conns = join_clients(loop, proto, tally, readers, room, "s", deadline, burst_for(server, opts))
        if joined(conns) < readers:
            phase["error"] = join_failure(conns, loop)
            return phase
        stuck: Conn | None = None
        if with_stuck:
            stuck = join_clients(loop, proto, stuck_tally, 1, room, "stuck", deadline,
                                 1, rcvbuf=4096)[0]
            if not stuck.ready:
                phase["error"] = "the stuck member did not join: " + str(stuck.failed)
                return phase
            loop.stop_reading(stuck)
        expected = opts.slow_messages * (readers if proto.echo else readers - 1)
        tally.received = 0
        rss_before = rss_kb(pid)
        samples = {"peak": rss_before or 0, "next": 0.0}

        def tick(now: float) -> float | None:
            if now >= samples["next"]:
                samples["next"] = now + 0.1
                samples["peak"] = max(samples["peak"], rss_kb(pid) or 0)
            return None

        meter = CpuMeter(server.pid)
        start = time.perf_counter()
        loop.start_sending(conns[0], proto.say(room, chat_text(0, opts.slow_size)),
                           opts.slow_messages)
        why = loop.run_until(lambda: tally.received >= expected,
                             start + opts.timeout, idle=opts.idle,
                             progress=lambda: tally.bytes, tick=tick)
        wall = (tally.last_delivery or time.perf_counter()) - start
        phase.update({
            "expected": expected, "received": tally.received,
            "lost": expected - tally.received, "wall_s": rnd(wall),
            "rate": rnd(tally.received / wall if wall > 0 else None, 0),
            "stopped": why, **meter.result()})
        note_server_exit(phase, why, server)
        others = {nick: reason for nick, (reason, _) in tally.departures.items()
                  if stuck is None or nick != stuck.name.casefold()}
        if others:  # a healthy member removed: the first thing to look at when something was lost
            phase["others_left"] = others
        if why != "done":
            phase["server_log"] = server.log_tail(8)
        if stuck is not None:
            name = stuck.name.casefold()
            loop.run_until(lambda: name in tally.departures,
                           time.perf_counter() + opts.slow_grace, tick=tick)
            departure = tally.departures.get(name)
            phase.update({
                "stuck_left_reason": departure[0] if departure else None,
                "stuck_left_after_s": rnd(departure[1] - start) if departure else None,
                "stuck_socket": drain_until_closed(stuck.sock) if stuck.sock else None})
        rss_end = rss_kb(pid)
        phase.update({"rss_before_kb": rss_before, "rss_peak_kb": samples["peak"],
                      "rss_end_kb": rss_end,
                      "rss_growth_kb": samples["peak"] - rss_before if rss_before else None})
        if tally.errors:
            phase["errors"] = dict(tally.errors)
        return phase
    finally:
        loop.close_all()


def run_slow(launch: Callable[[], ServerProcess], opts: argparse.Namespace) -> dict[str, Any]:
    """The slow-consumer scenario: a baseline phase, one with a stuck member,
    and the baseline again (A-B-A), each against a fresh server (clean RSS
    baseline; and ncat quits when members of a phase disconnect abruptly).
    The baseline rate is the mean of both, so a drift during the round
    (another tenant, the CPU clock) cancels out instead of favouring a phase."""
    result: dict[str, Any] = {"clients": opts.slow_clients, "messages": opts.slow_messages,
                              "size": opts.slow_size}
    base = slow_phase(launch(), opts, with_stuck=False)
    stuck = slow_phase(launch(), opts, with_stuck=True) if "error" not in base else {}
    base_after = slow_phase(launch(), opts, with_stuck=False) if "error" not in base and "error" not in stuck else {}
    result["base"] = base
    result["with_stuck"] = stuck
    result["base_after"] = base_after
    for phase in (base, stuck, base_after):
        if "error" in phase:
            result["error"] = phase["error"]
            break
    rates = [phase["rate"] for phase in (base, base_after) if phase.get("rate")]
    base_rate = rnd(sum(rates) / len(rates), 0) if rates else None
    result.update({
        "base_rate": base_rate, "stuck_rate": stuck.get("rate"),
        "base_lost": sum(phase["lost"] for phase in (base, base_after) if "lost" in phase)
        if "lost" in base else None,
        "stuck_lost": stuck.get("lost"),
        "stuck_delivered_pct": rnd(100 * stuck["received"] / stuck["expected"], 1)
        if stuck.get("expected") else None,
        "rate_ratio": rnd(stuck["rate"] / base_rate) if stuck.get("rate") and base_rate else None,
        "rss_growth_kb": stuck.get("rss_growth_kb"),
        "stuck_left_reason": stuck.get("stuck_left_reason"),
        "stuck_left_after_s": stuck.get("stuck_left_after_s"),
        "stuck_socket": stuck.get("stuck_socket")})
    others_left = {name: phase["others_left"] for name, phase in
                   (("base", base), ("with_stuck", stuck), ("base_after", base_after)) if phase.get("others_left")}
    if others_left:
        result["others_left"] = others_left
    return result


# --------------------------------------------------------------------------
# Orchestration and report
# --------------------------------------------------------------------------

TCP_SCENARIOS = ("fanout", "latency", "scale", "slow")
UDP_SCENARIOS = ("fanout-udp", "latency-udp")

#: Metrics compared as lanchat / other in --vs runs.
HEADLINE: dict[str, tuple[str, ...]] = {
    "fanout": ("deliveries_per_s", "wall_s", "server_cpu_pct"),
    "latency": ("p50_ms", "p99_ms", "max_ms", "server_cpu_pct"),
    "scale": ("join_s", "bcast_s", "rss_per_conn_kb"),
    "slow": ("base_rate", "stuck_rate", "rss_growth_kb"),
}

DEFAULTS = {  # normal size, --tiny size
    "clients": (50, 6), "senders": (5, 2), "messages": (2000, 200), "size": (100, 100),
    "rate": (500.0, 200.0), "duration": (5.0, 1.0), "conns": ("1000,2000,5000", "40"),
    "slow_clients": (20, 4), "slow_messages": (20000, 6000), "slow_size": (1024, 1024),
}


def run_one(scenario: str, kind: str, opts: argparse.Namespace, workdir: Path,
            conns: int | None = None) -> dict[str, Any]:
    """Start a fresh server, run one scenario against it, always stop it."""
    udp = scenario.endswith("-udp")
    name = scenario.removesuffix("-udp")
    row: dict[str, Any] = {"scenario": name, "transport": "udp" if udp else "tcp",
                           "server": kind}
    biggest = max([opts.clients, opts.slow_clients, *(opts.conns if name == "scale" else [])])
    servers: list[ServerProcess] = []

    def launch() -> ServerProcess:
        server = make_server(kind, workdir, opts, conns or biggest)
        servers.append(server)
        server.start()
        row.setdefault("server_pid", server.pid)
        return server

    started = time.perf_counter()
    # The cyclic garbage collector would stop this loop for ~8 ms now and then
    # (a full collection), and the latency tail measured that, not the server.
    # Measured phases create no garbage cycles worth collecting; collect between.
    gc.collect()
    gc.disable()
    try:
        if name == "fanout":
            row.update(run_fanout(launch(), opts, udp))
        elif name == "latency":
            row.update(run_latency(launch(), opts, udp))
        elif name == "scale":
            assert conns is not None
            row.update(run_scale(launch(), opts, conns))
        elif name == "slow":
            row.update(run_slow(launch, opts))
    except (ServerError, OSError) as error:
        row["error"] = str(error)
    except Exception as error:   # noqa: BLE001 - a bug must not lose the other results
        row["error"] = f"benchmark failed: {error!r}"
        traceback.print_exc()
    finally:
        gc.enable()
        for server in servers:
            server.stop()
    row["run_s"] = rnd(time.perf_counter() - started, 2)
    return row


def plan(opts: argparse.Namespace) -> list[tuple[str, str, int | None, int]]:
    """(scenario, server kind, connections, round) in the order they run.

    Repeated scenarios run in rounds, each round every server once, so that
    a noisy moment of a shared machine hits one round of all servers rather
    than all rounds of one. `scale` runs once (it takes minutes).
    """
    kinds = ["lanchat"] + (["miniircd", "ncat"] if opts.vs else [])
    runs: list[tuple[str, str, int | None, int]] = []
    for scenario in opts.scenarios:
        if scenario == "scale":
            for count in opts.conns:
                runs += [(scenario, kind, count, 1) for kind in kinds]
            continue
        for round_ in range(1, opts.repeat + 1):
            if scenario.endswith("-udp"):
                runs.append((scenario, "lanchat", None, round_))
            else:
                runs += [(scenario, kind, None, round_) for kind in kinds]
    return runs


#: The metric whose median run is reported when a scenario runs several rounds.
KEY_METRIC = {"fanout": "deliveries_per_s", "latency": "p99_ms", "scale": "join_s", "slow": "rate_ratio"}


def _group_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["scenario"], row["transport"], row["server"], row.get("conns"))


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per scenario, transport, server and size: the round with the median key metric.

    The chosen row keeps its own figures (they belong together), plus `runs`
    and the key metric of every round in order (`rounds`). An error in any
    round is reported on the summary row, so it cannot hide behind a median.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(_group_key(row), []).append(row)
    summary: list[dict[str, Any]] = []
    for group in groups.values():
        metric = KEY_METRIC[group[0]["scenario"]]
        measured = sorted((r for r in group if isinstance(r.get(metric), (int, float))), key=lambda r: r[metric])
        chosen = dict(measured[(len(measured) - 1) // 2] if measured else group[-1])
        chosen["runs"] = len(group)
        chosen["rounds"] = {metric: [r.get(metric) for r in group]}
        failed = [(number, r["error"]) for number, r in enumerate(group, 1) if r.get("error")]
        if failed and len(group) > 1:
            number, error = failed[0]
            chosen["error"] = f"round {number} of {len(group)}: {error}"
        summary.append(chosen)
    return summary


def round_ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """lanchat / other for the key metric, round by round (rounds run back to back)."""
    mine = {(r["scenario"], r["transport"], r.get("conns"), r.get("round")): r
            for r in rows if r["server"] == "lanchat"}
    found: dict[tuple[Any, ...], list[float | None]] = {}
    for row in rows:
        if row["server"] == "lanchat":
            continue
        ours = mine.get((row["scenario"], row["transport"], row.get("conns"), row.get("round")))
        if ours is None:
            continue
        metric = KEY_METRIC[row["scenario"]]
        a, b = ours.get(metric), row.get(metric)
        ratio = rnd(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
        found.setdefault((row["scenario"], row["transport"], row.get("conns"), row["server"], metric), []).append(ratio)
    return [{"scenario": s, "transport": t, "conns": c, "other": o, "metric": m, "by_round": v}
            for (s, t, c, o, m), v in found.items()]


def ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """lanchat / other for each headline metric of each comparable pair."""
    out: list[dict[str, Any]] = []
    lanchat = {(r["scenario"], r["transport"], r.get("conns")): r
               for r in rows if r["server"] == "lanchat"}
    for row in rows:
        if row["server"] == "lanchat":
            continue
        mine = lanchat.get((row["scenario"], row["transport"], row.get("conns")))
        if mine is None:
            continue
        values: dict[str, float | None] = {}
        for metric in HEADLINE.get(row["scenario"], ()):
            a, b = mine.get(metric), row.get(metric)
            values[metric] = (rnd(a / b, 3) if isinstance(a, (int, float))
                              and isinstance(b, (int, float)) and b else None)
        out.append({"scenario": row["scenario"], "transport": row["transport"],
                    "conns": row.get("conns"), "other": row["server"], "ratios": values})
    return out


COLUMNS: dict[str, list[tuple[str, str]]] = {
    "fanout": [("server", "server"), ("tr", "transport"), ("N", "clients"),
               ("S", "senders"), ("M", "messages"), ("expected", "expected"),
               ("received", "received"), ("lost", "lost"), ("wall s", "wall_s"),
               ("deliv/s", "deliveries_per_s"), ("srv cpu%", "server_cpu_pct"),
               ("bench cpu%", "bench_cpu_pct")],
    "latency": [("server", "server"), ("tr", "transport"), ("N", "clients"),
                ("rate", "rate"), ("sent", "sent"), ("lost", "lost"),
                ("p50 ms", "p50_ms"), ("p90 ms", "p90_ms"), ("p99 ms", "p99_ms"),
                ("max ms", "max_ms"), ("srv cpu%", "server_cpu_pct"),
                ("bench cpu%", "bench_cpu_pct")],
    "scale": [("server", "server"), ("C", "conns"), ("joined", "joined"),
              ("join s", "join_s"), ("joins/s", "joins_per_s"),
              ("bcast", "bcast_reached"), ("of", "bcast_expected"), ("bcast s", "bcast_s"),
              ("RSS0 KB", "rss_before_kb"), ("RSS KB", "rss_after_kb"),
              ("KB/conn", "rss_per_conn_kb"), ("srv cpu%", "server_cpu_pct"),
              ("bench cpu%", "bench_cpu_pct")],
    "slow": [("server", "server"), ("N", "clients"), ("M", "messages"),
             ("base deliv/s", "base_rate"), ("stuck deliv/s", "stuck_rate"),
             ("ratio", "rate_ratio"), ("lost", "stuck_lost"),
             ("delivered %", "stuck_delivered_pct"), ("RSS growth KB", "rss_growth_kb"),
             ("stuck left", "stuck_left_reason"), ("after s", "stuck_left_after_s"),
             ("stuck socket", "stuck_socket")],
}


def render_table(headers: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row]
                                            for row in body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                       enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def figures(values: Sequence[float | None]) -> str:
    """Numbers for one line of text: thousands grouped, small ones as they are."""
    return " ".join("-" if v is None else f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}" for v in values)


def report(rows: Sequence[dict[str, Any]], compared: Sequence[dict[str, Any]],
           by_round: Sequence[dict[str, Any]] = ()) -> str:
    parts: list[str] = []
    for scenario in TCP_SCENARIOS:
        mine = [r for r in rows if r["scenario"] == scenario]
        if not mine:
            continue
        columns = COLUMNS[scenario]
        parts.append(f"== {scenario} ==")
        parts.append(render_table([h for h, _ in columns],
                                  [[r.get(k) for _, k in columns] for r in mine]))
        for r in mine:
            if r.get("error"):
                parts.append(f"  ! {r['server']} {r['transport']}: {r['error']}")
        mine_ratios = [c for c in compared if c["scenario"] == scenario]
        if mine_ratios:
            metrics = HEADLINE[scenario]
            parts.append(render_table(
                ["lanchat / other", *metrics],
                [[c["other"] + (f" C={c['conns']}" if c.get("conns") else ""),
                  *[c["ratios"].get(m) for m in metrics]] for c in mine_ratios]))
        for r in mine:
            values = r.get("rounds", {})
            for metric, numbers in values.items():
                if len(numbers) > 1:
                    parts.append(f"  {r['server']} {r['transport']} {metric} by round: {figures(numbers)}")
        for c in by_round:
            if c["scenario"] == scenario and len(c["by_round"]) > 1:
                parts.append(f"  lanchat/{c['other']} {c['metric']} by round: {figures(c['by_round'])}")
        parts.append("")
    return "\n".join(parts)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""scenarios:
  fanout       N clients in one room; S senders send M messages of --size
               bytes each as fast as the server takes them (TCP flow control).
               Reports expected/received/lost deliveries, wall time and
               deliveries/s.  lanchat echoes `say` to the sender, IRC and ncat
               do not: expected = S*M*N (lanchat) or S*M*(N-1).
  latency      N clients; an open-loop offered load of --rate messages/s for
               --duration s, sent round-robin by S senders.  Every text carries
               its scheduled send time; p50/p90/p99/max one-way latency over
               all deliveries.
  scale        for each C in --conns: C idle members joined to one room
               (connecting at most --burst at a time); join time, whether one
               broadcast reaches all, server RSS per connection (VmRSS before
               vs after, from /proc/PID/status).
  slow         --slow-clients members; one sends --slow-messages messages of
               --slow-size bytes.  Run once without and once with one extra
               member that sets SO_RCVBUF=4096 and never reads: delivery rate
               of the others, server RSS growth, what became of the stuck one
               (lanchat should send `left` with reason `slow`).  The
               baseline runs before and after the stuck phase (A-B-A) and
               its rate is the mean of both.
  fanout-udp, latency-udp
               fanout and latency over lanchat's UDP transport (challenge /
               cookie handshake, pings); fanout senders keep at most
               --udp-window messages unechoed.  loss = expected - received.
  all          every scenario above.

Every run starts a fresh server on 127.0.0.1 and stops it afterwards.  CPU
columns are percent of one core (server process and this benchmark).""")
    parser.add_argument("scenarios", nargs="*", default=["fanout", "latency"],
                        choices=[*TCP_SCENARIOS, *UDP_SCENARIOS, "all"],
                        metavar="SCENARIO", help="fanout latency scale slow fanout-udp "
                        "latency-udp all (default: fanout latency)")
    parser.add_argument("--udp", action="store_true",
                        help="also run fanout/latency over UDP (lanchat only)")
    parser.add_argument("--vs", action="store_true",
                        help="also run each TCP scenario against miniircd and ncat "
                        "--broker --chat and print lanchat/other ratios")
    parser.add_argument("--tiny", action="store_true",
                        help="small default sizes for CI (explicit sizes still win)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--repeat", type=int, default=None, metavar="N",
                        help="rounds of each scenario but scale, every server once per round; "
                        "the tables show the round with the median key metric (fanout "
                        "deliveries/s, latency p99, slow ratio) and list every round "
                        "(default 3; 1 with --tiny)")
    sizes = parser.add_argument_group("sizes (defaults: normal / --tiny)")
    for flag, kind, text in (
            ("--clients", int, "members in the room (fanout, latency)"),
            ("--senders", int, "members that send (fanout, latency)"),
            ("--messages", int, "messages per sender (fanout)"),
            ("--size", int, "text size in bytes (fanout, latency)"),
            ("--rate", float, "offered messages/s (latency)"),
            ("--duration", float, "seconds of load (latency)"),
            ("--conns", str, "comma-separated connection counts (scale)"),
            ("--slow-clients", int, "members including the sender (slow)"),
            ("--slow-messages", int, "messages sent (slow)"),
            ("--slow-size", int, "text size in bytes (slow)")):
        normal, tiny = DEFAULTS[flag[2:].replace("-", "_")]
        sizes.add_argument(flag, type=kind, default=None,
                           help=f"{text}; {normal} / {tiny}")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--timeout", type=float, default=120.0,
                        help="deadline of each phase in seconds (default 120)")
    limits.add_argument("--scale-timeout", type=float, default=600.0,
                        help="scale: deadline for all C members to join (default 600)")
    limits.add_argument("--idle", type=float, default=5.0,
                        help="stop a phase after this many seconds without any "
                        "received byte (default 5)")
    limits.add_argument("--burst", type=int, default=None,
                        help="connections opened but not yet joined at a time (default: "
                        "lanchat 64, miniircd 4, ncat 8: below their listen backlogs)")
    limits.add_argument("--udp-window", type=int, default=64,
                        help="UDP fanout: unechoed messages per sender, 0 = no limit "
                        "(default 64)")
    limits.add_argument("--slow-grace", type=float, default=10.0,
                        help="slow: seconds to wait for the stuck member's removal "
                        "after the others got everything (default 10)")
    lanchat = parser.add_argument_group("lanchat server")
    lanchat.add_argument("--db", default=None,
                         help="passed to chatsrv as --db (default :memory:, but left "
                         "out if chatsrv --help does not know --db; '' leaves it out)")
    lanchat.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                         help="extra argument for chatsrv, repeatable "
                         "(write --server-arg=--flag for dashed ones)")
    lanchat.add_argument("--server-cmd", default=None, metavar="CMD",
                         help="command that starts chatsrv (default: this python -m "
                         "chatsrv); --host/--port/--rate/... are appended")
    lanchat.add_argument("--server-dir", type=Path, default=REPO_ROOT,
                         help="working directory for chatsrv (default: the repository)")
    opts = parser.parse_args(argv)
    for key, (normal, tiny) in DEFAULTS.items():
        if getattr(opts, key) is None:
            setattr(opts, key, tiny if opts.tiny else normal)
    try:
        opts.conns = [int(c) for c in str(opts.conns).split(",") if c.strip()]
    except ValueError:
        parser.error("--conns takes numbers separated by commas")
    if opts.repeat is None:
        opts.repeat = 1 if opts.tiny else 3
    if opts.repeat < 1:
        parser.error("--repeat must be at least 1")
    if "all" in opts.scenarios:
        opts.scenarios = [*TCP_SCENARIOS, *UDP_SCENARIOS]
    if opts.udp:
        extra = [f"{s}-udp" for s in ("fanout", "latency") if s in opts.scenarios]
        opts.scenarios += [s for s in extra if s not in opts.scenarios]
    opts.scenarios = list(dict.fromkeys(opts.scenarios))
    if opts.clients < 2 or opts.senders < 1 or opts.senders > opts.clients:
        parser.error("need --clients >= 2 and 1 <= --senders <= --clients")
    if opts.slow_clients < 3:
        parser.error("--slow-clients must be at least 3")
    if opts.messages < 1 or opts.slow_messages < 1 or opts.rate <= 0 or opts.duration <= 0:
        parser.error("sizes must be positive")
    return opts


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    nofile = raise_nofile_limit()
    if opts.db is None:
        opts.db = default_db(opts)
        if not opts.db:
            print("[bench] this chatsrv has no --db option: not passing one", file=sys.stderr)
    if "scale" in opts.scenarios and max(opts.conns) + 200 > nofile:
        print(f"warning: open-file limit {nofile} is below --conns + 200", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    started = time.time()
    load_at_start = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory(prefix="lanchat-bench-") as workdir:
            for scenario, kind, conns, round_ in plan(opts):
                label = (f"{scenario} vs {kind}" + (f" C={conns}" if conns else "")
                         + (f" (round {round_} of {opts.repeat})" if opts.repeat > 1 and scenario != "scale" else ""))
                print(f"[bench] {label} ...", file=sys.stderr, flush=True)
                row = run_one(scenario, kind, opts, Path(workdir), conns)
                row["round"] = round_
                rows.append(row)
                note = f" ERROR: {row['error']}" if row.get("error") else ""
                print(f"[bench] {label}: {row['run_s']} s{note}", file=sys.stderr, flush=True)
    finally:
        while RUNNING:
            RUNNING[-1].stop()
    summary = summarize(rows)
    compared = ratios(summary)
    by_round = round_ratios(rows)
    if opts.json:
        meta = {"started": started, "python": platform.python_version(),
                "cpus": os.cpu_count(), "argv": sys.argv[1:] if argv is None else list(argv),
                "nofile": nofile, "db": opts.db or None, "repeat": opts.repeat,
                "load_avg_at_start": load_at_start}
        print(json.dumps({"bench": meta, "results": summary, "ratios": compared,
                          "ratios_by_round": by_round, "all_rounds": rows}, indent=2))
    else:
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in load_at_start)}; "
              f"repeated scenarios: median of {opts.repeat} rounds\n")
        print(report(summary, compared, by_round))
    return 1 if any(r.get("error") for r in rows if r["server"] == "lanchat") else 0


if __name__ == "__main__":
    sys.exit(main())
