"""The sans-I/O codec: framing, payload decoding, seq splicing, SeqTracker."""

from __future__ import annotations

import json
import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanchat.wire import (
    MAX_INT_DIGITS,
    FrameDecoder,
    ProtocolError,
    SeqTracker,
    decode_payload,
    encode_frame,
    encode_message,
    encode_payload,
    frames_with_seq,
    with_seq,
)

payloads = st.binary(min_size=1, max_size=300)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces, start = [], 0
    for point in points + [len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


@given(st.lists(payloads, min_size=1, max_size=20), st.lists(st.integers(min_value=0, max_value=7000), max_size=40))
def test_any_split_decodes_to_the_same_frames(frames: list[bytes], cuts: list[int]) -> None:
    """However the stream is cut into recv chunks (empty and 1-byte included), the frames come out whole."""
    stream = b"".join(encode_frame(frame) for frame in frames)
    decoder = FrameDecoder(max_frame=1000)
    out: list[bytes] = []
    for piece in split(stream, cuts):
        out.extend(decoder.feed(piece))
    assert out == frames
    assert decoder.buffered == 0 and decoder.error is None


@given(st.lists(payloads, min_size=1, max_size=5))
def test_byte_by_byte(frames: list[bytes]) -> None:
    """Feeding one byte at a time yields the same frames."""
    stream = b"".join(encode_frame(frame) for frame in frames)
    decoder = FrameDecoder()
    out = [frame for index in range(len(stream)) for frame in decoder.feed(stream[index : index + 1])]
    assert out == frames


@given(st.integers(min_value=1001, max_value=2**32 - 1))
def test_oversized_header_rejected_with_four_bytes_buffered(length: int) -> None:
    """A header above the maximum is refused at once; nothing of the payload is kept."""
    decoder = FrameDecoder(max_frame=1000)
    assert decoder.feed(struct.pack("!I", length)) == []
    assert decoder.error is not None and decoder.error.code == "frame_too_large" and decoder.error.fatal
    assert decoder.buffered == 0


def test_four_gib_header_then_payload_is_not_buffered() -> None:
    """Bytes after a 4 GiB header are never stored, and the broken decoder refuses more input."""
    decoder = FrameDecoder()
    decoder.feed(b"\xff\xff\xff\xff" + b"x" * 10000)
    assert decoder.error is not None and decoder.buffered == 0
    with pytest.raises(ProtocolError):
        decoder.feed(b"more")


def test_http_request_is_frame_too_large() -> None:
    """`GET / HTTP/1.1` read as a header announces ~1.2 GB: frame_too_large."""
    decoder = FrameDecoder()
    decoder.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert decoder.error is not None and decoder.error.code == "frame_too_large"


def test_zero_length_frame_is_bad_request() -> None:
    """N = 0 is a broken frame (docs/protocol.md §2)."""
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00\x00\x00")
    assert decoder.error is not None and decoder.error.code == "bad_request" and decoder.error.fatal


def test_frames_before_a_broken_header_are_returned() -> None:
    """Good frames that precede a bad header in the same chunk are still delivered."""
    decoder = FrameDecoder(max_frame=100)
    frames = decoder.feed(encode_frame(b"{}") + encode_frame(b"[1]") + struct.pack("!I", 5000))
    assert frames == [b"{}", b"[1]"] and decoder.error is not None


def test_trailing_partial_frame_is_kept() -> None:
    """A partial frame waits in the buffer for the rest."""
    decoder = FrameDecoder()
    data = encode_frame(b"first") + encode_frame(b"second")
    assert decoder.feed(data[:-3]) == [b"first"]
    assert decoder.buffered == len(b"second") - 3
    assert decoder.feed(data[-3:]) == [b"second"]


@given(st.binary(max_size=200))
def test_garbage_raises_only_protocol_errors(data: bytes) -> None:
    """Random bytes either decode or raise ProtocolError, never anything else."""
    try:
        decode_payload(data)
    except ProtocolError as error:
        assert error.code == "bad_request" and not error.fatal


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe not utf-8",
        b"[1, 2]",
        b'"just a string"',
        b"[" * 5000 + b"]" * 5000,
        b'{"type": "say", "x": ' + b"[" * 40 + b"]" * 40 + b"}",
        b'{"type": "ping", "t": NaN}',
        b'{"type": "ping", "t": 1' + b"0" * 5000 + b"}",
        b'{"no_type": 1}',
        b'{"type": 5}',
        "\ufeff{}".encode(),
        b"{not json",
        b'{"type": "ping", "id": "\\ud800"}',
        b'{"type": "say", "text": "x\\uDFFFy"}',
    ],
)
def test_bad_payloads_are_recoverable_bad_requests(data: bytes) -> None:
    """Non-UTF-8, non-objects, deep nesting, NaN, huge ints and missing type: bad_request."""
    with pytest.raises(ProtocolError) as caught:
        decode_payload(data)
    assert caught.value.code == "bad_request" and not caught.value.fatal


def test_nesting_limit_is_32_levels() -> None:
    """32 levels (top-level object included) decode; 33 do not."""

    def nested(levels: int) -> bytes:
        return b'{"type":"x","a":' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"

    assert decode_payload(nested(32))["type"] == "x"
    with pytest.raises(ProtocolError):
        decode_payload(nested(33))


@given(
    st.integers(min_value=1, max_value=2**53),
    st.text(min_size=1, max_size=32),
    st.text(min_size=1, max_size=24),
    st.text(max_size=200).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.booleans(),
)
def test_encode_message_is_byte_for_byte_encode_payload(
    message_id: int, room: str, nick: str, text: str, ts: float, action: bool, operator: bool
) -> None:
    """The fast `message` encoder writes exactly what the generic one writes for the same payload."""
    payload = {"type": "message", "id": message_id, "room": room, "from": nick, "text": text, "ts": ts}
    if action:
        payload["action"] = True
    if operator:
        payload["operator"] = True
    assert encode_message(message_id, room, nick, text, ts, action, operator) == encode_payload(payload)


def test_nesting_counts_real_brackets_not_those_in_strings() -> None:
    """Brackets inside strings do not count as nesting; a mix of 32 real levels still passes, 33 fails."""
    assert decode_payload(b'{"type":"say","text":"' + b"{[" * 40 + b'"}')["text"] == "{[" * 40
    mixed = b'{"type":"x","a":' + b'{"b":[' * 15 + b"[]" + b"]}" * 15 + b"}"
    assert decode_payload(mixed)["type"] == "x"
    with pytest.raises(ProtocolError):
        decode_payload(b'{"type":"x","a":' + b'{"b":[' * 16 + b"[]" + b"]}" * 16 + b"}")


def test_encode_payload_matches_the_json_module_and_refuses_what_json_cannot_carry() -> None:
    """Compact, UTF-8, same bytes as json.dumps; NaN and non-JSON values raise instead of being sent."""
    payload = {
        "type": "message",
        "id": 7,
        "room": "lobby",
        "from": "李雷",
        "text": 'a "q" \\ \n',
        "ts": 1.5,
        "action": True,
        "users": ["a", "b"],
        "server": {"name": "x", "n": None},
    }
    assert encode_payload(payload) == json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with pytest.raises(ValueError):
        encode_payload({"type": "x", "t": float("nan")})
    with pytest.raises(TypeError):
        encode_payload({"type": "x", "t": object()})


def test_paired_surrogate_escapes_are_fine() -> None:
    """An emoji written as a JSON surrogate pair decodes normally."""
    assert decode_payload(b'{"type":"say","text":"\\ud83d\\ude00"}')["text"] == "\U0001f600"


def test_null_fields_count_as_absent() -> None:
    """A field sent as null is dropped (docs/protocol.md §1)."""
    assert decode_payload(b'{"type":"who","room":null}') == {"type": "who"}


def test_with_seq_splices_valid_json() -> None:
    """The spliced payload parses to the original object plus seq."""
    body = encode_payload({"type": "message", "text": 'héllo "quoted" }'})
    assert json.loads(with_seq(body, 42)) == {"type": "message", "text": 'héllo "quoted" }', "seq": 42}


def test_seq_tracker_counts_gaps_reorders_duplicates() -> None:
    """After 1, 2, 5 gaps is 2; a late 3 is reordered; a second 5 is a duplicate."""
    tracker = SeqTracker()
    verdicts = [tracker.add(seq) for seq in (1, 2, 5, 3, 5, 6)]
    assert verdicts == ["ok", "ok", "gap", "reordered", "duplicate", "ok"]
    assert (tracker.gaps, tracker.reordered, tracker.duplicates, tracker.missing) == (2, 1, 1, 1)


def test_seq_tracker_memory_is_bounded() -> None:
    """The tracker remembers a bounded window however long the stream."""
    tracker = SeqTracker(window=100)
    for seq in range(1, 10_001):
        tracker.add(seq)
    assert len(tracker._seen) <= 200 and tracker.gaps == 0 and tracker.received == 10_000


def test_frames_with_seq_matches_frame_by_frame() -> None:
    """The fused splice-and-frame gives the same bytes as splicing and framing one by one."""
    bodies = [encode_payload({"type": "message", "text": "a" * n}) for n in (1, 50, 300)]
    expected = b"".join(encode_frame(with_seq(body, seq)) for seq, body in zip((9, 10, 11), bodies))
    assert frames_with_seq(bodies, 9) == expected
    decoder = FrameDecoder()
    assert [json.loads(frame)["seq"] for frame in decoder.feed(expected)] == [9, 10, 11]


def test_frames_with_seq_when_a_length_header_holds_a_percent_byte() -> None:
    """Frame lengths 0x125 and 0x2564 put "%" (and "%d") into the binary header: still exact bytes."""
    first_seq = 5

    def body_framed_to(length: int) -> bytes:
        base = encode_payload({"type": "message", "text": ""})
        spliced = len(with_seq(base, first_seq))
        return encode_payload({"type": "message", "text": "x" * (length - spliced)})

    bodies = [body_framed_to(0x125), body_framed_to(0x2564), body_framed_to(0x25)]
    expected = b"".join(encode_frame(with_seq(body, seq)) for seq, body in enumerate(bodies, first_seq))
    assert [len(with_seq(body, first_seq)) for body in bodies] == [0x125, 0x2564, 0x25]
    assert frames_with_seq(bodies, first_seq) == expected


@given(
    st.lists(st.text(max_size=40), min_size=1, max_size=12),
    st.sampled_from([1, 7, 9, 95, 99, 998, 12345, 99_999_990]),
)
def test_frames_with_seq_template_path_is_exact(texts: list[str], first_seq: int) -> None:
    """The template fast path (also with '%' in texts and seqs crossing a power of ten) equals framing one by one."""
    bodies = [encode_payload({"type": "message", "text": text + "%d%s%%"}) for text in texts]
    expected = b"".join(encode_frame(with_seq(body, seq)) for seq, body in enumerate(bodies, first_seq))
    assert frames_with_seq(bodies, first_seq) == expected
    assert frames_with_seq(bodies, first_seq) == expected  # again, from the cached template


@pytest.mark.parametrize("number", [b"1e999", b"-1e999", b"1E400", b"123456789e999"])
def test_numbers_that_overflow_to_infinity_are_bad_requests(number: bytes) -> None:
    """A literal like 1e999 parses to inf, which no reply could echo: refused as bad_request, not fatal."""
    with pytest.raises(ProtocolError) as caught:
        decode_payload(b'{"type":"ping","t":' + number + b"}")
    assert caught.value.code == "bad_request" and not caught.value.fatal


def test_large_but_finite_numbers_still_decode() -> None:
    """Finite floats near the limit and integers within the digit limit are kept as they are."""
    payload = decode_payload(b'{"type":"ping","t":1.7e308,"id":-' + b"9" * MAX_INT_DIGITS + b"}")
    assert payload["t"] == 1.7e308 and payload["id"] == -int("9" * MAX_INT_DIGITS)


def test_huge_integer_is_refused_before_int_runs_even_without_pythons_digit_limit() -> None:
    """The parser checks the literal's length itself, so a Python without the digit limit is safe too."""
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None
    if limit is not None:
        sys.set_int_max_str_digits(0)  # what Python before 3.10.7 does: no limit
    try:
        with pytest.raises(ProtocolError) as caught:
            decode_payload(b'{"type":"ping","id":' + b"7" * (MAX_INT_DIGITS + 1) + b"}")
    finally:
        if limit is not None:
            sys.set_int_max_str_digits(limit)
    assert caught.value.code == "bad_request" and "digits" in caught.value.message


# --- errors that teach: the headers students' own clients send ----------------------------


def header_error(data: bytes) -> ProtocolError:
    decoder = FrameDecoder()
    assert decoder.feed(data) == []
    assert decoder.error is not None
    return decoder.error


def test_native_byte_order_header_is_explained() -> None:
    """The tutorial's struct.pack('i', 33) reads as 553648128 here; the message says why and what to write."""
    error = header_error(struct.pack("<i", 33) + b'{"type":"hello","nick":"tutorial"}')
    assert error.code == "frame_too_large" and error.fatal
    assert error.message.startswith("frame of 553648128 bytes exceeds the limit of 65536; ")
    assert "21 00 00 00" in error.message and "are 33" in error.message
    assert "native (little-endian) byte order, struct.pack('i', n)" in error.message
    assert "network byte order (big-endian), struct.pack('!I', n)" in error.message
    assert "\n" not in error.message  # one line on the teacher's console


@pytest.mark.parametrize(
    ("data", "length", "text"),
    [
        (b"hello\n", 1751477356, "'hell'"),
        (b"GET / HTTP/1.1\r\n\r\n", 1195725856, "'GET '"),
        (b"SSH-2.0-x\r\n", 1397966893, "'SSH-'"),
    ],
    ids=["nc-hello", "http", "ssh"],
)
def test_text_header_is_explained(data: bytes, length: int, text: str) -> None:
    """A text line (nc), an HTTP request or an SSH banner: the message says frames start with a length, and how to
    join."""
    error = header_error(data)
    assert error.code == "frame_too_large"
    assert error.message.startswith(
        f"frame of {length} bytes exceeds the limit of 65536; its 4 bytes are the text {text}"
    )
    assert "4-byte big-endian length, struct.pack('!I', len(payload))" in error.message
    assert "chatclient --host HOST --port PORT --nick NAME" in error.message
    assert "native" not in error.message


def test_unexplained_huge_header_keeps_the_plain_message() -> None:
    """4 GiB announced in binary is neither text nor a byte-swapped length: no guess is offered."""
    assert header_error(b"\xff\xff\xff\xff").message == "frame of 4294967295 bytes exceeds the limit of 65536"


def test_byte_swapped_guess_follows_the_configured_limit() -> None:
    """With --max-frame 16 a native-order 33 would not fit either way round, so it is not called native order."""
    decoder = FrameDecoder(max_frame=16)
    decoder.feed(struct.pack("<i", 33))
    assert decoder.error is not None and "native" not in decoder.error.message
