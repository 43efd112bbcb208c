"""Attack: a crafted lanchat.sqlite3 (T2 item 11).

A row with ts = inf or ts = 'soon', or a message id of 2**63-1, stopped the
server from starting (ValueError, OverflowError, TypeError) and made
`chatsrv export` crash. A file is not trusted: bad rows are skipped with one
warning line, and ids go on from the highest sane one.
"""

from __future__ import annotations

import io
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from chatsrv.export import main as export_main
from chatsrv.service import ChatService
from chatsrv.sqlitestore import open_store
from tests.support.fakes import Clock, member, send

CRAFTED = {
    "ts = inf": (float("inf"), 7),
    "ts = -1e300": (-1e300, 7),
    "ts = text": ("soon", 7),
    "id = 2**63-1": (1_700_000_000.0, 2**63 - 1),
    "id = 2**53": (1_700_000_000.0, 2**53),
}


def _crafted(path: Path, ts: Any, message_id: Any) -> None:
    store = open_store(str(path))
    service = ChatService(clock=Clock(), rate=0, store=store)
    alice, _ = member(service, "alice")
    send(service, alice, type="say", text="an honest line")
    store.close()
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO messages (id, ts, room, room_key, nick, text, action, transport)"
            " VALUES (?, ?, 'lobby', 'lobby', 'bob', 'crafted', 0, 'tcp')",
            (message_id, ts),
        )
    connection.close()


@pytest.mark.parametrize(("ts", "message_id"), CRAFTED.values(), ids=CRAFTED.keys())
def test_the_server_starts_and_export_works_on_a_crafted_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ts: Any, message_id: Any
) -> None:
    path = tmp_path / "crafted.sqlite3"
    _crafted(path, ts, message_id)
    caplog.set_level(logging.WARNING, logger="chatsrv")
    store = open_store(str(path))
    try:
        service = ChatService(clock=Clock(), rate=0, store=store)  # loads the recent history
        bob, outbox = member(service, "bob2")
        assert [m["text"] for m in outbox.of_type("welcome")[-1]["history"]] == ["an honest line"]
        send(service, bob, type="say", text="after")
        assert 0 < outbox.of_type("message")[-1]["id"] < 2**53
    finally:
        store.close()
    assert any("skipped" in record.getMessage() for record in caplog.records)
    for form in ("text", "jsonl", "html"):
        out = io.StringIO()
        assert export_main(["--db", str(path), "--format", form], out=out) == 0
        assert "an honest line" in out.getvalue() and "after" in out.getvalue()
