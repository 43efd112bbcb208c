"""Entries written straight into the stream, as another node (real or not) would: for tests of what a node
does with what it reads (chatsrv.backplane, chatsrv.standins)."""

from __future__ import annotations

import json
from typing import Any

from chatsrv import backplane
from lanchat.wire import encode_payload


def message(text: str, nick: str = "zed", room: str = "lobby", message_id: int = 1) -> bytes:
    """A `message` body as a node encodes it (it starts with backplane.MESSAGE_PREFIX)."""
    return encode_payload({"type": "message", "id": message_id, "room": room, "nick": nick, "text": text, "ts": 1.0})


def change(kind: str, nick: str, room: str = "lobby", **more: Any) -> bytes:
    """A `joined` or `left` body."""
    return encode_payload({"type": kind, "nick": nick, "room": room, "ts": 1.0, **more})


def pack(node: str, first: int, bodies: list[bytes], room: str = "lobby") -> dict[str, Any]:
    """A `pack` entry of `node` (chatsrv.streampack): every body in `room`, serials from `first`."""
    header = json.dumps([first, [[room, len(bodies)]], {}]).encode()
    return {"n": node, "k": "pack", "p": header + b"\n" + b"\n".join(bodies)}


def event(node: str, serial: int, body: bytes, room: str = "lobby") -> dict[str, Any]:
    """A single room event of `node`."""
    return {"n": node, "s": serial, "r": room, "b": body}


def alive(client: Any, node: str, seconds: int = 60) -> None:
    """Make `node` look alive to the others (its heartbeat key) for `seconds`."""
    client.set(f"{backplane.PREFIX}alive:{node}", "1", ex=seconds)


def add(client: Any, fields: dict[str, Any]) -> None:
    client.xadd(backplane.EVENTS, fields)
