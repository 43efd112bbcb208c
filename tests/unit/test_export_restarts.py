"""`chatsrv export` sums the members back after a restart into that restart's line.

Pure: events in, events out (chatsrv.export.sum_restarts); no store, no clock.
"""

from __future__ import annotations

from chatsrv.export import sum_restarts
from chatsrv.store import Event


def _restart(ts: float, after: int) -> Event:
    return Event("restarted", ts, "", "lobby", f"server restarted after {after} s", reason="4 member(s) were here")


def _back(ts: float, nick: str) -> Event:
    return Event("joined", ts, nick, "lobby", reason="back")


def test_two_restarts_in_one_window_each_count_their_own_returns() -> None:
    # The tester's lesson: two restarts 31 s apart, four members back within about 7 s of each.
    events = [_restart(1000.0, 10)] + [_back(1000.0 + i * 2, f"s{i}") for i in range(4)]
    events += [_restart(1031.0, 3)] + [_back(1031.0 + i * 2 + 1, f"s{i}") for i in range(4)]
    lines = [event.text for event in sum_restarts(events) if event.kind == "restarted"]
    assert lines == [
        "server restarted after 10 s; 4 back within 6 s",
        "server restarted after 3 s; 4 back within 7 s",
    ]


def test_restarts_of_different_rooms_keep_their_own_returns() -> None:
    events = [_restart(0.0, 5), Event("restarted", 0.0, "", "Maths", "server restarted after 5 s")]
    events += [_back(2.0, "ann"), Event("joined", 3.0, "bob", "maths", reason="back")]
    lines = [(event.room, event.text) for event in sum_restarts(events) if event.kind == "restarted"]
    assert lines == [
        ("lobby", "server restarted after 5 s; 1 back within 2 s"),
        ("Maths", "server restarted after 5 s; 1 back within 3 s"),
    ]
