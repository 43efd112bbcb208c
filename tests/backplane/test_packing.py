"""Room events sent together become one stream entry, in order; other entries keep their place."""

from __future__ import annotations

from chatsrv import backplane  # importing it does not import redis (only a Backplane does)


def event(serial: int, body: bytes) -> tuple[str, dict[str, object], list[tuple[object, ...]]]:
    return backplane.EVENTS, {"n": "A", "s": serial, "r": "lobby", "b": body}, [("hdel", "k", str(serial))]


def test_consecutive_room_events_are_packed_and_inbox_entries_keep_their_place() -> None:
    inbox = ("lanchat:inbox:B", {"k": "put", "nick": "bob", "b": b"{}"}, [])
    items = [event(1, b'{"a":1}'), event(2, b'{"b":"\\n"}'), inbox, event(3, b"{}")]
    out = backplane._packed(items, "A")
    assert [stream for stream, _, _ in out] == [backplane.EVENTS, "lanchat:inbox:B", backplane.EVENTS]
    first = out[0][1]
    assert first["k"] == "pack" and out[0][2] == [("hdel", "k", "1"), ("hdel", "k", "2")]
    header, _, bodies = first["p"].partition(b"\n")
    assert bodies == b'{"a":1}{"b":"\\n"}' and b"\n" not in header
    assert out[2][1]["s"] == 3  # a single event stays as it is
