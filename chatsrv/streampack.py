"""How a node's room events travel as one stream entry of the backplane (docs/scale-out.md): pure, no I/O.

The sender thread of `chatsrv.backplane` turns consecutive room events into one entry of kind `pack`:
one XADD, and one entry for every node to read. Its field `p` is a JSON header `[first serial,
[[room, count], ...], {index: [transport, host]}]` (the serials follow each other, the rooms come in
runs, transport and host are those of the `joined` events), then the bodies, each after a newline
(compact JSON has none; a body that has one is sent as an entry of its own). The node that sent a pack
reads only its serials (it delivers its own events from what it kept); the others read every event.
Order is kept; other entries (inboxes, moderation) keep their place between packs.

Imports: nothing of chatsrv.
"""

from __future__ import annotations

import json
from typing import Any

MAX_PACK = 250  # room events of one node sent as one stream entry, at most (also one delivery batch)

Item = tuple[str, dict[str, Any], list[tuple[Any, ...]]]  # stream, fields, the redis calls that go with it


def packed(items: list[Item], node: str, events: str) -> list[Item]:
    """Consecutive room events (entries of `events` without a kind `k`) packed; the rest as they are."""
    out: list[Item] = []
    run: list[dict[str, Any]] = []
    run_ops: list[tuple[Any, ...]] = []

    def close_run() -> None:
        if len(run) == 1:
            out.append((events, run[0], list(run_ops)))
        elif run:
            rooms: list[list[Any]] = [[run[0]["r"], 0]]
            extra: dict[int, list[str]] = {}
            for index, fields in enumerate(run):
                if fields["r"] != rooms[-1][0]:
                    rooms.append([fields["r"], 0])
                rooms[-1][1] += 1
                if "t" in fields:
                    extra[index] = [fields["t"], fields.get("a", "")]
            header = json.dumps([run[0]["s"], rooms, extra]).encode()
            out.append(
                (events, {"n": node, "k": "pack", "p": header + b"\n" + b"\n".join(f["b"] for f in run)}, list(run_ops))
            )
        run.clear()
        run_ops.clear()

    for stream, fields, ops in items:
        if stream == events and "k" not in fields and b"\n" not in fields["b"]:
            if run and (len(run) >= MAX_PACK or fields["s"] != run[-1]["s"] + 1):
                close_run()
            run.append(fields)
            run_ops.extend(ops)
        else:
            close_run()
            out.append((stream, fields, ops))
    close_run()
    return out


def serials(pack: bytes) -> range:
    """The serials of a pack's events (what its own node needs: the bodies are not read)."""
    first, rooms, _ = _header(pack.partition(b"\n")[0])
    return range(first, first + sum(count for _, count in rooms))


def events_of(pack: bytes) -> list[tuple[int, str, bytes, str, str]]:
    """Every event of a pack, one by one: serial, room, body, transport, host (see `runs_of`)."""
    first, runs, places = runs_of(pack)
    events, position = [], 0
    for room_name, bodies in runs:
        for body in bodies:
            transport, host = places.get(position, ("tcp", ""))
            events.append((first + position, room_name, body, transport, host))
            position += 1
    return events


def runs_of(pack: bytes) -> tuple[int, list[tuple[str, list[bytes]]], dict[int, tuple[str, str]]]:
    """A pack's events as the header places them: the first serial, the runs (room, bodies in order), and
    the transport and host of the events that have them (by position in the pack).

    The header says where each event is: one that cannot be read, or that does not match the bodies,
    raises ValueError (no event of the pack can be placed). A body is not read here: a bad one fails
    alone, where it is applied.
    """
    header, _, bodies = pack.partition(b"\n")
    first, rooms, extra = _header(header)
    split = bodies.split(b"\n")
    if sum(count for _, count in rooms) != len(split):
        raise ValueError(f"pack header counts {sum(count for _, count in rooms)} events, it holds {len(split)}")
    runs, position = [], 0
    for room_name, count in rooms:
        runs.append((room_name, split[position : position + count]))
        position += count
    return first, runs, {int(index): place for index, place in extra.items()}


def _header(raw: bytes) -> tuple[int, list[tuple[str, int]], dict[str, tuple[str, str]]]:
    """A pack's header, checked (it comes from another process: ValueError when it is not one)."""
    try:
        first, rooms, extra = json.loads(raw)
        runs = [(room, count) for room, count in rooms]
        places = {index: (transport, host) for index, (transport, host) in extra.items()}
    except (TypeError, AttributeError) as error:  # a number where a list belongs, a list where a map belongs
        raise ValueError(f"not a pack header ({error})") from error
    texts = [room for room, _ in runs] + [text for pair in places.values() for text in pair]
    if (
        not _is_int(first)
        or not all(_is_int(count) and count >= 0 for _, count in runs)
        or not all(isinstance(text, str) for text in texts)
    ):
        raise ValueError("pack header holds a value of the wrong type")
    return first, runs, places


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
