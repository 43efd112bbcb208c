"""Attack and teacher's mishap: `/lock all` and `close_room` (T2 items 8, 9, 10).

During `/lock all`, close_room told the room's members they moved but the
lock kept them there (the teacher got not_allowed), a fresh `hello` could
open a new room to hide in, and close_room left the history stored under a
look-alike spelling (`ｍａｔｈｓ`, filed by case-fold). Now an operator's
move passes the lock, a newcomer asking for an empty room is placed in
lobby with a notice (a room with members still takes it back), and
close_room deletes every stored spelling with the same look-alike key.
"""

from __future__ import annotations

from pathlib import Path

from chatsrv.service import ChatService
from chatsrv.sqlitestore import open_store
from tests.support.fakes import Clock, FakeOutbox, connect, member, send

SECRET = "s3cret-teacher"


def _locked_class(store_path: str = ":memory:") -> tuple[ChatService, FakeOutbox, FakeOutbox]:
    service = ChatService(clock=Clock(), op_secret=SECRET, rate=0, store=open_store(store_path))
    teacher, teacher_out = member(service, "teacher")
    send(service, teacher, type="op", secret=SECRET)
    student, student_out = member(service, "stud1", room="maths")
    send(service, student, type="say", text="maths history")
    send(service, teacher, type="lock", all=True)
    return service, teacher_out, student_out


def test_close_room_moves_members_during_lock_all() -> None:
    service, teacher_out, student_out = _locked_class()
    send(service, service.registry.find("teacher"), type="close_room", room="maths")  # type: ignore[arg-type]
    assert not teacher_out.of_type("error"), teacher_out.of_type("error")
    assert student_out.of_type("welcome")[-1]["room"] == "lobby"
    assert service.registry.room("maths") is None
    assert not [e for e in service.store.events() if e.kind == "message" and e.room == "maths"]


def test_a_new_hello_cannot_open_a_room_during_lock_all() -> None:
    service, _, _ = _locked_class()
    hider_session, hider = connect(service, host="10.0.0.51")
    send(service, hider_session, type="hello", nick="stud3", room="hideout")
    assert hider.of_type("welcome")[-1]["room"] == "lobby"
    assert "locked every room" in hider.of_type("notice")[-1]["text"]
    assert service.registry.room("hideout") is None
    _, back = member(service, "stud2", room="maths")  # a room with members: a student coming back gets in
    assert back.of_type("welcome")[-1]["room"] == "maths"


def test_close_room_deletes_the_history_of_look_alike_spellings(tmp_path: Path) -> None:
    """History kept under `ｍａｔｈｓ` (store key `ｍａｔｈｓ`) goes with close_room maths, in memory and in SQLite."""
    for store_path in (":memory:", str(tmp_path / "chat.sqlite3")):
        service = ChatService(clock=Clock(), op_secret=SECRET, rate=0, store=open_store(store_path), max_rooms=2)
        teacher, _ = member(service, "teacher")
        send(service, teacher, type="op", secret=SECRET)
        rude, _ = member(service, "rude", room="ｍａｔｈｓ")
        send(service, rude, type="say", text="rude line")
        send(service, rude, type="join", room="lobby")
        send(service, teacher, type="join", room="a")  # push the empty room out of memory (--max-rooms 2)
        send(service, teacher, type="join", room="b")
        send(service, teacher, type="close_room", room="maths")
        service.store.close()
        again = open_store(store_path) if store_path != ":memory:" else service.store
        try:
            texts = [event.text for event in again.events()]
        finally:
            again.close()
        assert "rude line" not in texts, store_path
