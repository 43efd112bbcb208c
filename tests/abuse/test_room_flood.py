"""Attack: the room flood (issue 14, item 1).

One connection at `--rate 0` joined thousands of new rooms with long names of
4-byte letters and said a line in each: rooms with history were never
removed and the `rooms` reply had no size limit, so every newcomer's `rooms`
was larger than a frame (and past 1 MiB every newcomer was dropped as slow).
Now at most `--max-rooms` rooms are in memory (an empty one makes space for a
new one), and the `rooms` reply is trimmed to the newcomer's frame
(docs/protocol.md §7.1, §7.2).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from chatsrv.app import Server
from chatsrv.service import ChatService
from chatsrv.sqlitestore import SQLiteStore
from lanchat.wire import FrameDecoder
from tests.conftest import ServerFactory
from tests.helpers import Client, wait_until
from tests.support.attacks import flood_rooms
from tests.support.fakes import Clock, member, send

ROOMS = 3000
MAX_FRAME = 8192
MAX_ROOMS = 300
PREFIX = "\U00010330" * 27  # GOTHIC LETTER AHSA, 4 bytes in UTF-8: names of 27 letters and up to 4 digits


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    """A server with the rate limit off (the flood's best case) and 8 KiB frames."""
    return make_server("--rate", "0", "--max-frame", str(MAX_FRAME), "--max-rooms", str(MAX_ROOMS))


def test_a_newcomer_after_a_room_flood_joins_lists_rooms_and_stays(
    server: Server, clients: Callable[..., Client]
) -> None:
    """After 3,000 rooms from one connection, at most --max-rooms are in memory and a newcomer's rooms reply fits."""
    mallory = clients()
    mallory.join("mallory")
    asked = flood_rooms(mallory.sock, threading.Event(), rooms=ROOMS, per_second=20_000, prefix=PREFIX)
    assert asked == ROOMS
    mallory.send({"type": "ping", "id": "done"})
    assert mallory.expect("pong", timeout=30, id="done")  # every join of the flood was handled
    with server.service.registry.lock:
        assert len(server.service.registry.rooms) <= MAX_ROOMS
    newcomer = clients()
    newcomer.decoder = FrameDecoder(MAX_FRAME)  # trusts the announced max_frame: a larger frame is an error
    assert newcomer.join("newcomer")["room"] == "lobby"
    newcomer.send({"type": "rooms"})
    reply = newcomer.expect("rooms")
    assert {"name": "lobby", "users": 1} in reply["rooms"][:2]  # rooms with members first
    assert {"name": f"{PREFIX}{ROOMS - 1}", "users": 1} in reply["rooms"][:2]
    assert reply["truncated"] > 0 and len(reply["rooms"]) + reply["truncated"] <= MAX_ROOMS + 1
    newcomer.send({"type": "ping", "id": "still here"})
    assert newcomer.expect("pong", id="still here")
    assert newcomer.decoder.error is None and not newcomer.closed


def test_a_room_pushed_out_of_memory_comes_back_from_the_file_and_close_room_deletes_it(tmp_path: Path) -> None:
    """With SQLite, an idle room's history is read back from the file on join; close_room deletes it from the file."""
    clock = Clock()
    store = SQLiteStore(str(tmp_path / "chat.sqlite3"), batch_interval=0.01)
    try:
        service = ChatService(clock=clock, rate=0, store=store, op_secret="s3cret", room_idle=60)
        alice, _ = member(service, "alice", room="art")
        for n in range(3):
            send(service, alice, type="say", text=f"line {n}")
        send(service, alice, type="join", room="lobby")
        wait_until(lambda: len(store.room_messages("art", 10)) == 3)
        clock.now += 61
        send(service, alice, type="rooms")
        assert service.registry.room("art") is None
        _, bob_box = member(service, "bob", room="ART")
        assert [m["text"] for m in bob_box.of_type("welcome")[0]["history"]] == ["line 0", "line 1", "line 2"]
        send(service, alice, type="op", secret="s3cret")
        send(service, alice, type="close_room", room="art")
        wait_until(lambda: not list(store.events(room="art")))
        assert store.room_messages("art", 10) == []
        assert [e.room for e in store.events()] and all(e.room != "art" for e in store.events())
    finally:
        store.close()
