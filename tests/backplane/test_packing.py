"""Room events sent together become one stream entry, in order; other entries keep their place."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from chatsrv import backplane  # importing it does not import redis (only a Backplane does)
from chatsrv.streampack import packed


def event(serial: int, body: bytes, room: str = "lobby") -> tuple[str, dict[str, Any], list[tuple[Any, ...]]]:
    return backplane.EVENTS, {"n": "A", "s": serial, "r": room, "b": body}, [("hdel", "k", str(serial))]


def test_consecutive_room_events_are_packed_and_inbox_entries_keep_their_place() -> None:
    inbox: tuple[str, dict[str, Any], list[Any]] = ("lanchat:inbox:B", {"k": "put", "nick": "bob", "b": b"{}"}, [])
    items = [event(1, b'{"a":1}'), event(2, b'{"b":"\\n"}'), inbox, event(3, b"{}")]
    out = packed(items, "A", backplane.EVENTS)
    assert [stream for stream, _, _ in out] == [backplane.EVENTS, "lanchat:inbox:B", backplane.EVENTS]
    first = out[0][1]
    assert first["k"] == "pack" and out[0][2] == [("hdel", "k", "1"), ("hdel", "k", "2")]
    header, _, bodies = first["p"].partition(b"\n")
    assert json.loads(header) == [1, [["lobby", 2]], {}]
    assert bodies == b'{"a":1}\n{"b":"\\n"}'
    assert out[2][1]["s"] == 3  # a single event stays as it is


def test_rooms_go_in_runs_joins_keep_transport_and_host_and_a_gap_or_newline_ends_a_pack() -> None:
    joined = event(3, b'{"type":"joined"}', "b")
    joined[1].update(t="udp", a="10.0.0.7")
    items = [event(1, b"{1}"), event(2, b"{2}", "b"), joined, event(4, b"{4}"), event(6, b"{6}"), event(7, b"{7}"),
             event(8, b'{"raw":"\n"}'), event(9, b"{9}"), event(10, b"{10}")]
    out = [fields for _, fields, _ in packed(items, "A", backplane.EVENTS)]
    header, _, bodies = out[0]["p"].partition(b"\n")
    assert json.loads(header) == [1, [["lobby", 1], ["b", 2], ["lobby", 1]], {"2": ["udp", "10.0.0.7"]}]
    assert bodies.split(b"\n") == [b"{1}", b"{2}", b'{"type":"joined"}', b"{4}"]
    assert json.loads(out[1]["p"].partition(b"\n")[0])[0] == 6  # serial 5 is missing: a new pack starts at 6
    assert out[2] == items[6][1]  # a body with a newline goes on its own
    assert json.loads(out[3]["p"].partition(b"\n")[0])[:2] == [9, [["lobby", 2]]]


def test_a_pack_is_read_back_event_by_event_and_our_own_from_what_we_kept() -> None:
    joined = event(3, b'{"type":"joined"}', "b")
    joined[1].update(t="udp", a="10.0.0.7")
    (_, fields, _), = packed([event(1, b"{1}"), event(2, b"{2}", "b"), joined], "A", backplane.EVENTS)
    raw = {key.encode(): value if isinstance(value, bytes) else value.encode() for key, value in fields.items()}
    seen: list[Any] = []
    reader = SimpleNamespace(node="B", _one_event=lambda *args: seen.append(args[:-1]), _own_event=seen.append)
    backplane.Backplane._apply_event(reader, raw, 0.0)  # type: ignore[arg-type]
    assert seen == [("A", 1, "lobby", b"{1}", "tcp", ""), ("A", 2, "b", b"{2}", "tcp", ""),
                    ("A", 3, "b", b'{"type":"joined"}', "udp", "10.0.0.7")]
    seen.clear()
    reader.node = "A"  # the node that sent it delivers its own events by serial, from what `publish` kept
    backplane.Backplane._apply_event(reader, raw, 0.0)  # type: ignore[arg-type]
    assert seen == [1, 2, 3]


def test_a_pack_whose_header_cannot_place_its_events_raises_value_error() -> None:
    from chatsrv.streampack import events_of

    bad = [b'[1, "lobby", {}]', b'[1, [["lobby", 2]], []]', b'[1, [["lobby", "2"]], {}]', b'[1, [["lobby", 3]], {}]']
    for header in [*bad, b'[1, [["lobby", 2]], {"0": ["tcp"]}]', b"{}", b"[true, []]"]:
        try:
            events_of(header + b"\n{1}\n{2}")
        except ValueError:
            continue
        raise AssertionError(f"{header!r} was taken")
    assert [event[:3] for event in events_of(b'[7, [["lobby", 2]], {}]\n{1}\n{2}')] == [
        (7, "lobby", b"{1}"),
        (8, "lobby", b"{2}"),
    ]
