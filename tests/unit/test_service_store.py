"""What ChatService hands to its store, and what it takes back at start (MemoryStore: no thread, no disk)."""

from __future__ import annotations

from chatsrv.service import ChatService
from chatsrv.store import Event, MemoryStore
from tests.support.fakes import Clock, member, send


def make(clock: Clock, store: MemoryStore, **kwargs: object) -> ChatService:
    return ChatService(clock=clock, rate=0, server_name="test", store=store, **kwargs)  # type: ignore[arg-type]


def test_room_events_are_recorded_in_order() -> None:
    """Messages, joins, moves (with where to), renames and quits reach the store, shaped like the broadcasts.

    A clean stop is no `left` per member: the store keeps who was where, for one `restarted` event at the next start.
    """
    clock, store = Clock(), MemoryStore()
    service = make(clock, store)
    alice, alice_box = member(service, "alice", room="Physics")
    member(service, "bob", room="Physics")
    send(service, alice, type="say", text="hello")
    send(service, alice, type="say", text="waves", action=True)
    send(service, alice, type="nick", nick="alicia")
    send(service, alice, type="join", room="lobby")
    bob = service.registry.find("bob")
    assert bob is not None
    send(service, bob, type="bye")
    service.shutdown()
    kinds = [(e.kind, e.nick, e.room, e.reason) for e in store.events()]
    assert kinds == [
        ("joined", "alice", "Physics", None),
        ("joined", "bob", "Physics", None),
        ("message", "alice", "Physics", None),
        ("message", "alice", "Physics", None),
        ("renamed", "alice", "Physics", None),
        ("left", "alicia", "Physics", "moved"),
        ("joined", "alicia", "lobby", None),
        ("left", "bob", "Physics", "quit"),
    ]
    assert next(e for e in store.events() if e.reason == "moved").to == "lobby"
    assert '"alicia", "lobby"' in store.load_state()["stopped"]
    messages = [e for e in store.events() if e.kind == "message"]
    broadcast = [{k: v for k, v in p.items() if k != "seq"} for p in alice_box.of_type("message")]
    assert [m.payload() for m in messages] == broadcast
    assert messages[1].action and messages[0].transport == "tcp"
    renamed = next(e for e in store.events() if e.kind == "renamed")
    assert renamed.new == "alicia"


def test_whispers_are_not_stored_unless_enabled() -> None:
    """A whisper reaches the store only with store_whispers=True (privacy by default)."""
    for enabled in (False, True):
        store = MemoryStore()
        service = make(Clock(), store, store_whispers=enabled)
        alice, _ = member(service, "alice")
        member(service, "bob")
        send(service, alice, type="whisper", to="bob", text="top secret")
        whispers = [e for e in store.events() if e.kind == "whisper"]
        if enabled:
            assert [(w.nick, w.to, w.text) for w in whispers] == [("alice", "bob", "top secret")]
        else:
            assert whispers == [] and all(e.text != "top secret" for e in store.events())


class RestartedStore(MemoryStore):
    """A store that already holds a previous run's messages, as SQLiteStore does after a restart."""

    def __init__(self, events: list[Event], next_id: int) -> None:
        super().__init__()
        for event in events:
            self.add(event)
        self._next_id = next_id

    def next_message_id(self) -> int:
        return self._next_id


def test_start_takes_history_ids_and_rooms_from_the_store() -> None:
    """Welcome shows the stored history, new ids continue from the store, rooms with history are listed."""
    old = [Event("message", 500.0 + n, "alice", "Physics", f"old {n}", 40 + n, transport="tcp") for n in range(3)]
    old.append(Event("message", 510.0, "bob", "Lobby", "hi", 43, True, "udp"))
    store = RestartedStore(old, next_id=10_044)
    service = make(Clock(), store, history=2)
    carol, carol_box = member(service, "carol", room="physics")
    welcome = carol_box.of_type("welcome")[0]
    assert welcome["room"] == "Physics"  # shown as first spelled
    assert welcome["history"] == [old[1].payload(), old[2].payload()]
    send(service, carol, type="say", text="new")
    assert carol_box.of_type("message")[-1]["id"] == 10_044
    send(service, carol, type="rooms")
    assert carol_box.of_type("rooms")[-1]["rooms"] == [{"name": "Physics", "users": 1}, {"name": "Lobby", "users": 0}]


def test_a_restart_keeps_the_teachers_decisions() -> None:
    """Topic, lock, slow mode, mutes (with their remaining time), /lock all and bans come back after a restart."""
    clock, store = Clock(), MemoryStore()
    service = make(clock, store, op_secret="op")
    teacher, _ = member(service, "teacher", room="Maths")
    member(service, "bob", room="Maths", host="10.0.0.9")
    member(service, "carol", room="Maths")
    send(service, teacher, type="op", secret="op")
    send(service, teacher, type="topic", text="fractions")
    send(service, teacher, type="lock")
    send(service, teacher, type="slow", seconds=5)
    send(service, teacher, type="mute", nick="carol", minutes=10)
    send(service, teacher, type="kick", nick="bob", ban=True)
    service.shutdown()
    clock.now += 120  # two minutes down: carol has eight minutes left
    again = make(clock, store, op_secret="op")
    assert again.registry.rooms["maths"].topic == "fractions"
    assert "maths" in again.moderation.locked and again.moderation.slow == {"maths": 5}
    assert again.access.refusal(("10.0.0.9", 6000)) is not None
    carol, carol_box = member(again, "carol", room="Maths")
    assert carol_box.of_type("welcome")[-1]["muted"] == {"by": "teacher", "minutes": 8, "seconds": 480}
    assert carol_box.of_type("welcome")[-1]["topic"] == "fractions"
    send(again, carol, type="say", text="hi")
    assert carol_box.of_type("error")[-1]["code"] == "not_allowed"


def test_memory_store_keeps_nothing_across_processes() -> None:
    """A fresh MemoryStore (--db :memory: after a restart) restores nothing."""
    clock = Clock()
    service = make(clock, MemoryStore(), op_secret="op")
    teacher, _ = member(service, "teacher")
    send(service, teacher, type="op", secret="op")
    send(service, teacher, type="lock", all=True)
    service.shutdown()
    again = make(clock, MemoryStore())
    assert again.moderation.lock_all is None and not again.moderation.active


def test_a_restart_is_one_event_per_room_and_returning_members_are_back() -> None:
    """Members present at the stop who return within the window are `joined` with reason back, after one `restarted`."""
    clock, store = Clock(), MemoryStore()
    service = make(clock, store)
    member(service, "alice", room="Physics")
    member(service, "bob", room="Physics")
    service.shutdown()
    clock.now += 3
    again = make(clock, store)
    member(again, "alice", room="Physics")
    clock.now += 2
    member(again, "bob", room="Physics")
    member(again, "zoe", room="Physics")
    tail = [(e.kind, e.nick, e.reason) for e in store.events()][-4:]
    assert tail == [
        ("restarted", "", "2 member(s) were here"),
        ("joined", "alice", "back"),
        ("joined", "bob", "back"),
        ("joined", "zoe", None),
    ]
    assert not any(e.kind == "left" for e in store.events())
    again.shutdown()
    clock.now += 1
    make(clock, store)  # a second restart records the second stop only
    assert [e.kind for e in store.events()].count("restarted") == 2
