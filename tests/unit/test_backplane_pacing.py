"""What other nodes send reaches this node's members at their pace (chatsrv.standins.StandIns._apply_paced).

A reply read from the stream is applied an entry at a time, with the TCP backpressure's wait between
them, for at most `heartbeat` seconds; what is left is read again (the read position is the last entry
applied). No redis here: `_apply`, the pause and the clock are scripted.
"""

from __future__ import annotations

from typing import Any

from chatsrv.standins import PACE_ENTRIES, StandIns


class Reader(StandIns):
    def __init__(self, pause_seconds: float | None) -> None:
        self.now = 0.0
        self.heartbeat = 1.0
        self.applied: list[list[Any]] = []
        self.events: list[str] = []
        self.pause_seconds = pause_seconds
        if pause_seconds is not None:
            self.pause = self.wait
        self.clock = lambda: self.now

    def _apply(self, reply: list[Any]) -> None:
        self.applied.append(reply)
        self.events.append(f"apply {sum(len(entries) for _, entries in reply)}")

    def wait(self) -> None:
        assert self.pause_seconds is not None
        self.now += self.pause_seconds
        self.events.append("pause")


def entries(stream: bytes, count: int) -> tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]:
    return stream, [(f"{n}-0".encode(), {b"n": b"x"}) for n in range(count)]


def test_a_flood_is_applied_a_few_entries_at_a_time_with_a_pause_between() -> None:
    reader = Reader(pause_seconds=0.0)
    reader._apply_paced([entries(b"events", 2 * PACE_ENTRIES + 1), entries(b"inbox", 1)])
    assert reader.events == [f"apply {PACE_ENTRIES}", "pause", f"apply {PACE_ENTRIES}", "pause", "apply 1", "pause",
                             "apply 1", "pause"]
    assert [e for reply in reader.applied for _, es in reply for e in es] == (
        entries(b"events", 2 * PACE_ENTRIES + 1)[1] + entries(b"inbox", 1)[1])  # all of it, in order


def test_pauses_end_after_a_heartbeat_and_the_rest_waits_for_the_next_read() -> None:
    reader = Reader(pause_seconds=0.4)  # members lag: each pause lasts 0.4 s
    reader._apply_paced([entries(b"events", 10 * PACE_ENTRIES)])
    assert reader.events == [f"apply {PACE_ENTRIES}", "pause"] * 3  # 1.2 s >= heartbeat: stop, re-read the rest
    assert reader.applied[-1][0][1][-1][0] == f"{3 * PACE_ENTRIES - 1}-0".encode()


def test_without_a_pause_a_reply_is_applied_entry_by_entry_without_waiting() -> None:
    """Small batches also when nothing pauses: each batch's bytes per member stay small (chatsrv.standins)."""
    reader = Reader(pause_seconds=None)
    reply = [entries(b"events", 10 * PACE_ENTRIES)]
    reader._apply_paced(reply)
    assert reader.events == [f"apply {PACE_ENTRIES}"] * 10
    assert [e for part in reader.applied for _, es in part for e in es] == reply[0][1]
