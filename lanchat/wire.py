"""Wire format of the chat protocol (docs/protocol.md sections 1, 2 and 6), sans-I/O.

Owns: TCP framing (`encode_frame`, `FrameDecoder`), the JSON payload codec with
its nesting limit, the cheap `seq` splice used by broadcasts, and
`ProtocolError` with the error codes of section 6.

Must not import: sockets, threads, clocks, or any lanchat module but lanchat.reasons. The
client imports this module too, so it stays small and dependency free.
"""

from __future__ import annotations

import json
import math
import re
import struct
from typing import Any

from lanchat.reasons import Said

__all__ = [
    "DEFAULT_MAX_DATAGRAM",
    "DEFAULT_MAX_FRAME",
    "ERROR_CODES",
    "HEADER",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "FrameDecoder",
    "ProtocolError",
    "decode_payload",
    "encode_frame",
    "encode_message",
    "encode_payload",
    "explain_header",
    "frames_with_seq",
    "with_seq",
]

DEFAULT_MAX_FRAME = 65536
DEFAULT_MAX_DATAGRAM = 8192
MAX_DEPTH = 32  # docs/protocol.md §1: the top-level object is level 1
HEADER = struct.Struct("!I")

# docs/protocol.md §6, plus `not_allowed` (docs/protocol.md extension for operators)
# and `internal_error` (docs/protocol.md §7.3: a bug while handling one payload).
ERROR_CODES = frozenset(
    {
        "bad_request",
        "frame_too_large",
        "not_joined",
        "nick_invalid",
        "nick_taken",
        "room_invalid",
        "text_invalid",
        "no_such_user",
        "rate_limited",
        "server_full",
        "auth_failed",
        "timeout",
        "not_allowed",
        "internal_error",
    }
)


class ProtocolError(Exception):
    """A violation of the protocol, carrying the error code sent to the peer.

    `fatal` means the connection cannot go on (a broken or oversized TCP
    frame, repeated abuse); adapters decide what closing means for them.
    """

    def __init__(self, code: str, message: str | Said, fatal: bool = False) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        # A sentence from lanchat.reasons: its English is the message, its key and facts go along.
        self.said = message if isinstance(message, Said) else None
        text = message.text if isinstance(message, Said) else message
        super().__init__(f"{code}: {text}")
        self.code = code
        self.message = text
        self.fatal = fatal

    def payload(self) -> dict[str, Any]:
        """The `error` payload that tells the peer about this error (`reason`, `args`: docs/protocol.md §14)."""
        if self.said is not None:
            return {"type": "error", "code": self.code, **self.said.fields("message")}
        return {"type": "error", "code": self.code, "message": self.message}


# --- payloads -------------------------------------------------------------

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _unencodable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# `JSONEncoder.encode` builds a new C encoder object on every call, which cost
# more than the encoding of a chat message itself: build it once. Payloads are
# trees the server made, so the circular-reference check (markers) is off.
_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_encode = (
    _make_encoder(None, _unencodable, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    if _make_encoder is not None
    else None
)


def encode_payload(payload: dict[str, Any]) -> bytes:
    """Encode one payload object as compact UTF-8 JSON (no seq added)."""
    if _c_encode is None:
        return _encoder.encode(payload).encode("utf-8")
    return "".join(_c_encode(payload, 0)).encode("utf-8")


_string = json.encoder.encode_basestring  # the C function the encoder above uses for str


def encode_message(
    message_id: int, room: str, nick: str, text: str, ts: float, action: bool = False, operator: bool = False
) -> bytes:
    """The `message` payload (docs/protocol.md section 5), byte for byte what
    `encode_payload` makes of it, in half the time: every say is one.

    `action` and `operator` (docs/protocol.md §9.4: sent by an operator) are
    written only when true, in that order. `ts` must be finite (a clock
    reading); floats are written as the encoder writes them (`float.__repr__`).
    """
    flags = (',"action":true' if action else "") + (',"operator":true' if operator else "")
    return (
        f'{{"type":"message","id":{message_id:d},"room":{_string(room)},"from":{_string(nick)},'
        f'"text":{_string(text)},"ts":{float.__repr__(ts)}{flags}}}'
    ).encode()


def with_seq(body: bytes, seq: int) -> bytes:
    """Add `"seq": n` to an encoded JSON object without re-serialising it.

    `body` must be the output of `encode_payload` for a non-empty object
    without a `seq` key: its last byte is the closing brace.
    """
    return b"%s,\"seq\":%d}" % (body[:-1], seq)


_templates: dict[tuple[bytes | tuple[bytes, ...], int], bytes] = {}  # (the body, or the bodies), digits
_TEMPLATES_KEPT = 16  # a flush hands the same batch to every member in turn: a few suffice


def _frames_one_by_one(bodies: list[bytes], first_seq: int) -> bytes:
    out: list[bytes] = []
    append = out.append
    pack = HEADER.pack
    for seq, body in zip(range(first_seq, first_seq + len(bodies)), bodies):
        payload = b"%s,\"seq\":%d}" % (body[:-1], seq)
        append(pack(len(payload)))
        append(payload)
    return b"".join(out)


def frames_with_seq(bodies: list[bytes], first_seq: int) -> bytes:
    """Frame encoded payloads for TCP, splicing in seq first_seq, first_seq + 1, ...

    The hot path of every broadcast. A batch usually goes to every member of
    a room with only the seq numbers differing, and those have the same
    number of digits, so the frame lengths are the same too: the batch is
    turned once into a `%d` template (headers included, `%` escaped) and
    each member costs a single C-level `template % seqs`. A batch of one
    payload (every message at light load) is keyed by the body itself: a
    third of the cost of framing it anew for each member.
    """
    count = len(bodies)
    last_seq = first_seq + count - 1
    digits = len(str(first_seq))
    if not count or len(str(last_seq)) != digits:
        return _frames_one_by_one(bodies, first_seq)
    key = (bodies[0] if count == 1 else tuple(bodies), digits)
    template = _templates.get(key)
    if template is None:
        suffix_length = len(b',"seq":}') + digits
        pack = HEADER.pack
        # The length header is binary and may hold the byte "%" (0x25) too.
        template = b"".join(
            [(pack(len(body) - 1 + suffix_length) + body[:-1]).replace(b"%", b"%%") + b',"seq":%d}' for body in bodies]
        )
        if len(_templates) >= _TEMPLATES_KEPT:
            _templates.clear()
        _templates[key] = template
    return template % (first_seq if count == 1 else tuple(range(first_seq, last_seq + 1)))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# CPython's own limit on integer digits (3.10.7+, 3.11+). The parser applies it
# itself, before `int()` runs, so that a Python without the limit never spends
# quadratic time on a literal of 60,000 digits, and every Python refuses the
# same payloads.
MAX_INT_DIGITS = 4300


def _parse_int(literal: str) -> int:
    # The literal is JSON's `-?digits`, so its length is the digit count (+1 for a sign).
    if len(literal) > MAX_INT_DIGITS + (literal[0] == "-"):
        raise ValueError(f"integer of more than {MAX_INT_DIGITS} digits")
    return int(literal)


def _parse_float(literal: str) -> float:
    # `1e999` is valid JSON but parses to inf, which no encoder can send back
    # (allow_nan=False): refuse it here like NaN and Infinity (docs/protocol.md §1).
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError("number out of range (not finite)")
    return value


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float)


def _depth_ok(value: Any, limit: int) -> bool:
    """True when `value` nests at most `limit` levels (iterative, no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return False
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values() if isinstance(child, (dict, list)))
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item if isinstance(child, (dict, list)))
    return True


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _encodable(value: Any) -> bool:
    try:
        _encoder.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_payload(data: bytes, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Decode one payload; raise a recoverable `bad_request` for anything wrong.

    Keys whose value is `null` are dropped: docs/protocol.md §1 says a field sent
    as null counts as absent.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("bad_request", "payload is not valid UTF-8") from None
    if text.startswith("\ufeff"):
        raise ProtocolError("bad_request", "payload must not start with a byte order mark")
    try:
        value = _decoder.decode(text)
    except RecursionError:
        # json's C parser recurses; ~1000 levels of [[[ blow the stack (docs/testing.md #6).
        raise ProtocolError("bad_request", f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise ProtocolError("bad_request", f"payload is not valid JSON ({exc.args[0].split(':')[0]})") from None
    if not isinstance(value, dict):
        raise ProtocolError("bad_request", "payload must be a JSON object")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) and not _encodable(value):
        # "\ud800" alone is valid JSON but no UTF-8 can carry it on to others.
        raise ProtocolError("bad_request", "payload contains an unpaired surrogate (\\ud800-\\udfff)")
    # Nesting never exceeds the number of opening brackets (in strings or not):
    # a chat message has one or two, and needs no walk.
    if text.count("{") + text.count("[") > max_depth and not _depth_ok(value, max_depth):
        raise ProtocolError("bad_request", f"JSON nested deeper than {max_depth} levels")
    payload = {key: item for key, item in value.items() if item is not None} if None in value.values() else value
    if not isinstance(payload.get("type"), str):
        raise ProtocolError("bad_request", 'payload needs a string field "type"')
    return payload


# --- TCP framing (docs/protocol.md §2) ----------------------------------------


def encode_frame(body: bytes) -> bytes:
    """Prefix an encoded payload with its 4-byte big-endian length."""
    return HEADER.pack(len(body)) + body


_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}  # printable ASCII, tab, CR, LF
JOIN_HINT = "join with: chatclient --host HOST --port PORT --nick NAME (or the 20-line client in the README)"


def explain_header(header: bytes, max_frame: int) -> str:
    """The teaching part of a `frame_too_large` message: what the 4 header bytes probably were.

    Students write their own clients from socket tutorials, and two mistakes
    make a huge "length" (docs/protocol.md §2): a header packed in the
    machine's native byte order (`struct.pack('i', n)`: 33 becomes
    21 00 00 00, read here as 553,648,128), and no header at all (`nc`, a
    text line, an HTTP request: "hell" read as 1,751,477,356). The message
    names the likely cause and the fix, on one line, so the teacher's log
    and the student's error both say it. Returns "" when neither fits.
    """
    if len(header) != HEADER.size:
        return ""
    swapped = int.from_bytes(header, "little")
    if 0 < swapped <= max_frame:
        return (
            f"; its 4 bytes {header.hex(' ')} read the other way round are {swapped}: this looks like native"
            f" (little-endian) byte order, struct.pack('i', n); lanchat uses network byte order (big-endian),"
            f" struct.pack('!I', n)"
        )
    if all(byte in _TEXT_BYTES for byte in header):
        text = header.decode("ascii")
        return (
            f"; its 4 bytes are the text {text!r}: lanchat is not a text protocol, every frame starts with a"
            f" 4-byte big-endian length, struct.pack('!I', len(payload)), then that many bytes of JSON; {JOIN_HINT}"
        )
    return ""


class FrameDecoder:
    """Incremental decoder for length-prefixed frames ("sticky packets").

    Feed it whatever `recv` returned; it returns every complete payload and
    keeps a trailing partial frame for the next call. The length header is
    checked against `max_frame` as soon as its 4 bytes are in, before a
    single payload byte is buffered (Twisted's Int32StringReceiver rule), so
    a header announcing 4 GiB costs 4 bytes of memory.

    A broken header does not raise from `feed`: the frames that came before
    it in the same chunk are still returned, and the fatal `ProtocolError`
    waits in `error` for the caller to report after handling them. The
    decoder refuses further input once broken.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.error: ProtocolError | None = None
        self._buffer = bytearray()
        self._need: int | None = None  # payload length once the header is read

    @property
    def buffered(self) -> int:
        """Bytes held back for an incomplete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete payloads now available."""
        if self.error is not None:
            raise self.error
        frames: list[bytes] = []
        buffer = self._buffer
        buffer += data
        position = 0
        end = len(buffer)
        while True:
            if self._need is None:
                if end - position < HEADER.size:
                    break
                (length,) = HEADER.unpack_from(buffer, position)
                position += HEADER.size
                if length == 0 or length > self.max_frame:
                    self.error = (
                        ProtocolError("bad_request", "zero-length frame", fatal=True)
                        if length == 0
                        else ProtocolError(
                            "frame_too_large",
                            f"frame of {length} bytes exceeds the limit of {self.max_frame}"
                            + explain_header(bytes(buffer[position - HEADER.size : position]), self.max_frame),
                            fatal=True,
                        )
                    )
                    del buffer[:]
                    return frames
                self._need = length
            if end - position < self._need:
                break
            frames.append(bytes(buffer[position : position + self._need]))
            position += self._need
            self._need = None
        if position:
            del buffer[:position]
        return frames


# --- sequence numbers (docs/protocol.md §3) --------------------------------------


class SeqTracker:
    """Counts gaps, reordering and duplicates in a stream of `seq` numbers.

    Pure bookkeeping shared by the server (client seq per UDP peer) and the
    client (server seq). `gaps` follows docs/protocol.md §3: seq values skipped
    when a higher one arrives (after 1, 2, 5 that is 2). A skipped value that
    arrives later counts as `reordered`; `missing` is what is still absent.
    Memory is bounded: only the last `window` values are remembered.
    """

    __slots__ = ("_late", "_seen", "_window", "duplicates", "gaps", "highest", "received", "reordered")

    def __init__(self, window: int = 4096) -> None:
        self.highest = 0
        self.received = 0
        self.gaps = 0
        self.reordered = 0
        self.duplicates = 0
        self._late = 0  # skipped values that arrived after all
        self._seen: set[int] = set()
        self._window = window

    @property
    def missing(self) -> int:
        """Values skipped and not (yet) received: the loss seen so far."""
        return self.gaps - self._late

    def add(self, seq: int) -> str:
        """Record one seq; returns "ok", "gap", "reordered" or "duplicate"."""
        if seq in self._seen or (seq <= self.highest - self._window):
            self.duplicates += 1
            return "duplicate"
        self.received += 1
        self._seen.add(seq)
        if seq < self.highest:
            self.reordered += 1
            self._late += 1
            return "reordered"
        verdict = "gap" if seq > self.highest + 1 else "ok"
        self.gaps += seq - self.highest - 1
        self.highest = seq
        if len(self._seen) > 2 * self._window:
            floor = self.highest - self._window
            self._seen = {value for value in self._seen if value > floor}
        return verdict

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "gaps": self.gaps,
            "missing": self.missing,
            "reordered": self.reordered,
            "duplicates": self.duplicates,
        }
