"""Room events sent together become one stream entry, in order; other entries keep their place."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from chatsrv import backplane  # importing it does not import redis (only a Backplane does)
from chatsrv.standins import StandIns
from chatsrv.streampack import packed
from tests.backplane.stream import change, message


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


class Reader(StandIns):
    """The reading side of a node, with every call past the pack recorded: runs handed to the fan-out, other
    events applied one by one, this node's own events delivered from what it kept, and events skipped."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.calls: list[tuple[Any, ...]] = []
        self.rooms: dict[str, SimpleNamespace] = {}
        self._pending = {}
        fanout = SimpleNamespace(broadcast_all=lambda room, bodies: self.calls.append(("run", room.name, list(bodies))))
        registry = SimpleNamespace(ensure_room=lambda name, now: self.rooms.setdefault(
            name, SimpleNamespace(name=name, history=[])))
        self.service = SimpleNamespace(fanout=fanout, registry=registry)  # type: ignore[assignment]

    def _other_node_event(self, node: str, room_name: str, body: bytes, payload: dict[str, Any], transport: str,
                          host: str, now: float) -> None:
        self.calls.append(("event", node, room_name, payload["type"], transport, host))

    def _deliver_own(self, serial: int, room: Any, body: bytes, exclude: Any) -> None:
        self.calls.append(("own", serial, room.name, body))

    def _skipped(self, fields: dict[bytes, bytes], what: str, error: Exception) -> None:
        self.calls.append(("skipped", type(error).__name__))


def as_read(fields: dict[str, Any]) -> dict[bytes, bytes]:
    """An entry's fields as redis gives them back."""
    return {key.encode(): value if isinstance(value, bytes) else str(value).encode() for key, value in fields.items()}


def test_another_nodes_pack_reaches_the_rooms_as_runs_of_messages_in_order_with_its_other_events() -> None:
    """Consecutive messages to one room go to its history and its members as one run; the rest one by one."""
    m1, m2, m4 = message("one"), message("two", room="b"), message("four", room="b")
    joined = event(3, change("joined", "zoe", "b"), "b")
    joined[1].update(t="udp", a="10.0.0.7")
    items = [event(1, m1), event(2, m2, "b"), joined, event(4, m4, "b"), event(5, b"{not json", "b")]
    (_, fields, _), = packed(items, "A", backplane.EVENTS)
    reader = Reader("B")
    backplane.Backplane._apply_event(reader, as_read(fields), 0.0)  # type: ignore[arg-type]
    assert reader.calls == [("run", "lobby", [m1]), ("run", "b", [m2]),
                            ("event", "A", "b", "joined", "udp", "10.0.0.7"), ("run", "b", [m4]),
                            ("skipped", "JSONDecodeError")]
    assert reader.rooms["lobby"].history == [m1] and reader.rooms["b"].history == [m2, m4]


def test_our_own_pack_is_delivered_from_what_we_kept_with_runs_of_messages() -> None:
    """The node that sent a pack reads only its serials: kept messages go out as runs, other events alone."""
    lobby, b = SimpleNamespace(name="lobby"), SimpleNamespace(name="b")
    m1, m2, m4, joined = message("one"), message("two"), message("four", room="b"), change("joined", "zoe", "b")
    items = [event(1, m1), event(2, m2), event(3, joined, "b"), event(4, m4, "b"), event(5, m4, "b")]
    (_, fields, _), = packed(items, "A", backplane.EVENTS)
    reader = Reader("A")
    newcomer = SimpleNamespace()
    reader._pending = {1: (lobby, m1, None), 2: (lobby, m2, None), 3: (b, joined, newcomer), 4: (b, m4, None)}  # type: ignore[dict-item]
    backplane.Backplane._apply_event(reader, as_read(fields), 0.0)  # type: ignore[arg-type]
    assert reader.calls == [("run", "lobby", [m1, m2]), ("own", 3, "b", joined), ("run", "b", [m4])]  # 5: not kept
    assert reader._pending == {}


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
