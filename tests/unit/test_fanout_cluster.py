"""The fan-out's part for a cluster: joins and leaves read back from the shared stream are coalesced like
local ones and hidden from the members whose welcome already told them (docs/scale-out.md).

A pretend cluster takes every room event as chatsrv.backplane does (the join's newcomer `entered` the
fan-out), and the test reads them back in the stream's order by calling `member_changed`, as the backplane's
reader does.
"""

from __future__ import annotations

import json
from typing import Any

from chatsrv.rooms import Room
from chatsrv.service import ChatService
from chatsrv.session import Session
from tests.support.fakes import Clock, member
from tests.unit.test_batch_joins import after_welcome, held_open, join


class PretendCluster:
    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.published: list[tuple[Room, bytes, Session | None]] = []

    def publish(self, room: Room, body: bytes, exclude: Session | None) -> bool:
        self.published.append((room, body, exclude))
        if exclude is not None and json.loads(body)["type"] == "joined":
            self.service.fanout.entered(room, exclude)
        return True

    def nick_holder(self, nick: str) -> str | None:
        return None

    def message_id(self) -> int | None:
        return None

    def forward_drop(self, session: Session, reason: str, details: dict[str, Any] | None) -> bool:
        return False

    def welcomed(self, session: Session, now: float) -> None:
        pass

    def moderation_changed(self, state: str) -> None:
        return None


def read_back(service: ChatService, cluster: PretendCluster, hidden: dict[int, list[Session]]) -> None:
    """Every published change, in order, as the backplane applies them (one batch); `hidden`: by index."""
    with service.fanout.batch():
        for index, (room, body, exclude) in enumerate(cluster.published):
            hide = [exclude] if exclude is not None else []
            service.fanout.member_changed(room, json.loads(body), body, hide + hidden.get(index, []))
    cluster.published.clear()


def test_changes_read_back_are_coalesced_in_order_and_hidden_from_those_who_know() -> None:
    service = ChatService(clock=Clock(), rate=0, server_name="test")
    service.fanout.clock = Clock()
    cluster = PretendCluster(service)
    _, batched = join(service, "ann", batched=True)
    _, plain = join(service, "bob", batched=False)
    service.cluster = cluster
    with held_open(service):
        _, carol_box = join(service, "carol", batched=True)  # its welcome lists ann and bob
        dave, dave_box = join(service, "dave", batched=False)  # its welcome lists carol too
        assert "carol" in dave_box.last()["users"]
        # The stream brings carol's and dave's joins back, and another node's member's join and leave.
        carol_join, dave_join = cluster.published
        room = carol_join[0]
        x1_joined = (room, b'{"type":"joined","nick":"x1","room":"lobby","ts":1}', None)
        x1_left = (room, b'{"type":"left","nick":"x1","room":"lobby","ts":2,"reason":"quit"}', None)
        cluster.published[:] = [carol_join, x1_joined, dave_join, x1_left]
        read_back(service, cluster, hidden={0: [dave]})  # carol's join was published before dave's entry
    with service.fanout.batch():
        pass  # a batch nobody waits for releases what was held
    changes = [{"joined": "carol"}, {"joined": "x1"}, {"joined": "dave"}, {"left": "x1", "reason": "quit"}]
    members = [p for p in after_welcome(batched) if p["type"] == "members"]
    assert [c for p in members for c in p["changes"]][-4:] == changes
    assert len(members) <= 2  # bob's join (it may have gone out alone), then these four as one
    assert [(p["type"], p["nick"]) for p in after_welcome(plain)] == [
        ("joined", "carol"), ("joined", "x1"), ("joined", "dave"), ("left", "x1")]
    assert after_welcome(carol_box) == [{"type": "members", "room": "lobby", "changes": changes[1:]}]
    assert [(p["type"], p["nick"]) for p in after_welcome(dave_box)] == [("joined", "x1"), ("left", "x1")]


def test_a_run_of_messages_read_back_reaches_every_member_as_broadcasts_one_by_one_would() -> None:
    """`broadcast_all` (a pack's messages to one room) queues what one `broadcast` per body would, in one run."""
    service = ChatService(clock=Clock(), rate=0, server_name="test")
    ann, ann_box = member(service, "ann")
    _, bob_box = member(service, "bob")
    room = service.registry.room("lobby")
    assert room is not None
    bodies = [b'{"type":"message","id":%d,"room":"lobby","nick":"x","text":"t","ts":1}' % n for n in range(4)]
    personal = b'{"type":"pong","ts":1}'
    puts = ann_box.puts, bob_box.puts
    with service.fanout.batch():
        service.fanout.broadcast(room, bodies[0])
        service.fanout.broadcast_all(room, bodies[1:3])  # joins the open run
        service.fanout.queue(ann, personal)  # ends the run: ann's pong comes before what follows
        service.fanout.broadcast_all(room, bodies[3:])
        service.fanout.broadcast_all(room, [])
    assert [p.get("id") for p in ann_box.payloads[-5:]] == [0, 1, 2, None, 3]
    assert [p["id"] for p in bob_box.payloads[-4:]] == [0, 1, 2, 3]
    assert (ann_box.puts, bob_box.puts) == (puts[0] + 1, puts[1] + 1)  # one put each for the whole batch
