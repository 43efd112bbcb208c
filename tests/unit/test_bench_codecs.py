"""The benchmark's codecs (scripts/lanchat_bench/codecs.py): a stream split anywhere counts the same.

Each codec is fed the same bytes whole, one byte at a time and in random pieces; the counts, the join state
and the departures must not depend on where the reads split.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from lanchat_bench.codecs import Irc, LanchatTcp, LanchatUdp, NcatChat, chat_text, frame, json_bytes
from lanchat_bench.conn import Conn, Tally


class FakeLoop:
    """What a codec and a Conn use of the loop: counters, parking and transmit (recorded)."""

    def __init__(self) -> None:
        self.ready_count = 0
        self.failed_count = 0
        self.parked: list[Conn] = []
        self.sent: list[bytes] = []

    def park(self, conn: Conn) -> None:
        self.parked.append(conn)

    def transmit(self, conn: Conn, data: bytes) -> None:
        self.sent.append(data)


def pieces(data: bytes, how: str) -> Iterator[bytes]:
    if how == "whole":
        yield data
    elif how == "bytes":
        yield from (data[i:i + 1] for i in range(len(data)))
    else:
        chooser = random.Random(how)
        pos = 0
        while pos < len(data):
            step = chooser.randint(1, 40)
            yield data[pos:pos + step]
            pos += step


SPLITS = ["whole", "bytes", "seed-1", "seed-2", "seed-3"]


def connect(codec: LanchatTcp | LanchatUdp | Irc | NcatChat, tally: Tally | None = None) -> tuple[Conn, FakeLoop]:
    loop = FakeLoop()
    conn = Conn(loop, codec, tally or Tally(), 0, "ann", "lab")  # type: ignore[arg-type]
    return conn, loop


def lanchat_frame(payload: dict[str, object]) -> bytes:
    return frame(json_bytes(payload))


def feed_all(conn: Conn, data: bytes, how: str, feed: Callable[[Conn, bytes, float], None]) -> None:
    for number, piece in enumerate(pieces(data, how)):
        feed(conn, piece, float(number))


@pytest.mark.parametrize("how", SPLITS)
def test_lanchat_tcp_counts_chat_after_the_welcome_and_reads_control_frames(how: str) -> None:
    """Marked messages in the welcome's history are not counted; those after it are, once each; `left` is seen."""
    history = [{"type": "message", "nick": "old", "text": chat_text(9, 30)}]
    stream = lanchat_frame({"type": "welcome", "nick": "ann", "room": "lab", "history": history})
    stream += b"".join(lanchat_frame({"type": "message", "nick": "bob", "text": chat_text(1, 50), "seq": n})
                       for n in range(1, 8))
    stream += lanchat_frame({"type": "left", "nick": "Bob", "reason": "slow"})
    stream += lanchat_frame({"type": "message", "nick": "cy", "text": chat_text(2, 20), "seq": 8})
    conn, loop = connect(LanchatTcp())
    feed_all(conn, stream, how, conn.proto.feed)
    assert conn.ready and loop.ready_count == 1
    assert conn.tally.received == conn.received == 8
    assert conn.tally.departures["bob"][0] == "slow"
    assert not conn.inbuf  # nothing left over: every frame was complete


@pytest.mark.parametrize("how", SPLITS)
def test_lanchat_counting_only_finds_a_marker_split_between_two_reads(how: str) -> None:
    """A joined fanout receiver scans raw bytes; the overlap kept between reads catches a split marker once."""
    conn, _ = connect(LanchatTcp())
    conn.proto.feed(conn, lanchat_frame({"type": "welcome", "nick": "ann", "room": "lab"}), 0.0)
    conn.count_only = True
    stream = b"".join(lanchat_frame({"type": "message", "text": chat_text(3, 10)}) for _ in range(25))
    feed_all(conn, stream, how, conn.proto.feed)
    assert conn.tally.received == 25


def test_lanchat_error_before_the_welcome_fails_the_join() -> None:
    conn, loop = connect(LanchatTcp())
    conn.proto.feed(conn, lanchat_frame({"type": "error", "code": "nick_taken", "message": "taken"}), 0.0)
    assert conn.failed == "nick_taken" and not conn.ready and loop.failed_count == 1
    assert conn.tally.errors["nick_taken"] == 1


def test_lanchat_udp_counts_gaps_and_reorders_and_answers_a_challenge_with_the_cookie() -> None:
    """docs/protocol.md §2: the hello is repeated with the cookie; seq numbers show lost and late datagrams."""
    conn, loop = connect(LanchatUdp())
    conn.proto.datagram(conn, json_bytes({"type": "challenge", "cookie": "c00k1e"}), 0.0)
    assert json.loads(loop.sent[-1]) == {"type": "hello", "nick": "ann", "room": "lab", "cookie": "c00k1e"}
    conn.proto.datagram(conn, json_bytes({"type": "welcome", "nick": "ann", "room": "lab", "peer_timeout": 30}), 0.0)
    assert conn.ready and conn.datagram is not None and conn.datagram.ping_every == 10
    for seq in (1, 2, 5, 4, 6):
        conn.proto.datagram(conn, json_bytes({"type": "message", "text": chat_text(1, 20), "seq": seq}), 1.0)
    assert conn.tally.received == 5
    assert (conn.tally.gaps, conn.tally.reordered) == (2, 1)


def test_udp_echoes_of_a_senders_own_messages_acknowledge_its_window() -> None:
    conn, _ = connect(LanchatUdp())
    conn.proto.datagram(conn, json_bytes({"type": "welcome", "nick": "ann", "room": "lab"}), 0.0)
    conn.out.own_mark, conn.out.sent = b"~M~0~", 3
    for sender in (0, 1, 0, 0, 0):
        conn.proto.datagram(conn, json_bytes({"type": "message", "text": chat_text(sender, 20)}), 2.0)
    assert conn.out.acked == 3 and conn.out.last_ack == 2.0  # never more than were sent


@pytest.mark.parametrize("how", SPLITS)
def test_irc_lines_split_anywhere_are_counted_once_and_pings_answered(how: str) -> None:
    stream = (b":srv 353 ann = #lab :ann bob\r\n:srv 366 ann #lab :End of /NAMES list.\r\nPING :srv\r\n"
              + b"".join(b":bob!b@h PRIVMSG #lab :" + chat_text(1, 30).encode() + b"\r\n" for _ in range(6))
              + b":bob!b@h QUIT :Client quit\r\n")
    conn, loop = connect(Irc())
    feed_all(conn, stream, how, conn.proto.feed)
    assert conn.ready and conn.tally.received == 6
    assert loop.sent == [b"PONG :srv\r\n"]
    assert conn.tally.departures["bob"][0] == "Client quit"


@pytest.mark.parametrize("how", SPLITS)
def test_ncat_learns_its_alias_and_counts_relayed_lines(how: str) -> None:
    stream = (b"<announce> 127.0.0.1 is connected as <user5>.\n<announce> already connected: nobody.\n"
              + b"".join(b"<user3> " + chat_text(3, 25).encode() + b"\n" for _ in range(4))
              + b"<announce> <user3> is disconnected.\n")
    conn, _ = connect(NcatChat())
    feed_all(conn, stream, how, conn.proto.feed)
    assert conn.ready and conn.name == "user5"
    assert conn.tally.received == 4
    assert conn.tally.departures["user3"][0] == "disconnected"
