"""A room's nick list is kept in order as members join, leave, rename and move (no sort per `welcome`)."""

from __future__ import annotations

import random

import pytest

from chatsrv.ratelimit import TokenBucket
from chatsrv.rooms import Registry, Room
from chatsrv.session import Session
from tests.support.fakes import NullOutbox


def new_session() -> Session:
    return Session(NullOutbox(), ("127.0.0.1", 1), "tcp", 65536, TokenBucket(0, 0, 0.0), 0.0)


def expected(room: Room) -> list[str]:
    """What the list must be: every nick here, sorted case-insensitively (as the protocol's `users` lists are)."""
    names = [s.nick or "" for s in room.members.values()] + [s.nick or "" for s in room.remote.values()]
    return sorted(names, key=str.casefold)


def test_joins_leaves_and_renames_keep_the_list_sorted_and_whole() -> None:
    """Mixed-case nicks joining, leaving, renamed and moving between rooms: `nicks()` is always the sorted members."""
    registry = Registry()
    lobby, other = registry.ensure_room("lobby"), registry.ensure_room("other")
    carol, alice, bob = new_session(), new_session(), new_session()
    registry.add(carol, "carol", lobby)
    registry.add(alice, "Alice", lobby)
    registry.add(bob, "bob", lobby)
    assert lobby.nicks() == ["Alice", "bob", "carol"]
    registry.rename(bob, "Zed")
    assert lobby.nicks() == ["Alice", "carol", "Zed"]
    registry.rename(alice, "alice")  # only the case changes: the same look-alike key
    assert lobby.nicks() == ["alice", "carol", "Zed"]
    registry.leave_room(carol)
    registry.enter(carol, other)
    assert (lobby.nicks(), other.nicks()) == (["alice", "Zed"], ["carol"])
    registry.remove(bob)
    assert lobby.nicks() == ["alice"]
    registry.remove(alice)
    assert lobby.nicks() == [] and lobby.sorted_nicks == []


def test_remote_stand_ins_are_listed_in_order_with_local_members() -> None:
    """Members of other nodes (backplane stand-ins) are in the same ordered list, and leave it and rename in it."""
    registry = Registry()
    lobby = registry.ensure_room("lobby")
    local, remote = new_session(), new_session()
    registry.add(local, "mia", lobby)
    registry.add_remote(remote, "Ben", lobby)
    assert lobby.nicks() == ["Ben", "mia"]
    registry.rename_remote(remote, "zoe")
    assert lobby.nicks() == ["mia", "zoe"]
    registry.enter_remote(remote, lobby)  # entering the room it is in again lists it once
    assert lobby.nicks() == ["mia", "zoe"]
    registry.remove_remote(remote)
    assert lobby.nicks() == ["mia"]


def test_a_random_walk_of_joins_leaves_and_renames_matches_a_fresh_sort() -> None:
    """500 random steps (seeded) over three rooms: after each one every room's list equals its members sorted."""
    chance = random.Random(19)
    registry = Registry()
    names = ("a", "b", "c")  # an emptied room is dropped: each step finds (or makes) it again by name
    inside: list[Session] = []
    outside = [new_session() for _ in range(40)]
    used: set[str] = set()

    def fresh_nick() -> str:
        while True:
            nick = "".join(chance.choice("aAbBcCxyZ") for _ in range(4)) + str(chance.randrange(100))
            if nick.casefold() not in used:
                used.add(nick.casefold())
                return nick

    for _ in range(500):
        step = chance.randrange(4)
        if step == 0 and outside:
            session = outside.pop()
            registry.add(session, fresh_nick(), registry.ensure_room(chance.choice(names)))
            inside.append(session)
        elif step == 1 and inside:
            session = inside.pop(chance.randrange(len(inside)))
            registry.remove(session)
            used.discard((session.nick or "").casefold())
            session.nick = None
            outside.append(session)
        elif step == 2 and inside:
            session = chance.choice(inside)
            old = (session.nick or "").casefold()
            registry.rename(session, fresh_nick())
            used.discard(old)
        elif step == 3 and inside:
            session = chance.choice(inside)
            registry.leave_room(session)
            registry.enter(session, registry.ensure_room(chance.choice(names)))
        for room in registry.rooms.values():
            assert room.nicks() == expected(room)
    assert sum(len(room.members) for room in registry.rooms.values()) == len(inside) > 0


def test_a_look_alike_never_takes_the_place_of_a_member_already_filed() -> None:
    """"bob" is listed (a stand-in, or a local member): filing "b0b" for another session is refused
    (`NickInUse`, a ValueError), and that session's leave does not take "bob" out of the lists."""
    registry = Registry()
    lobby = registry.ensure_room("lobby")
    bob, b0b, local = new_session(), new_session(), new_session()
    registry.add_remote(bob, "bob", lobby)
    for file_it in (
        lambda: registry.add_remote(b0b, "b0b", lobby),
        lambda: registry.add(local, "B0B", lobby),
    ):
        with pytest.raises(ValueError):
            file_it()
    b0b.nick, b0b.room_key = "b0b", lobby.key  # as a caller that went on regardless would leave it
    registry.remove_remote(b0b)
    assert lobby.nicks() == ["bob"] and registry.find("b0b") is bob and lobby.remote == {"bob": bob}
    carl = new_session()
    registry.add_remote(carl, "carl", lobby)
    with pytest.raises(ValueError):
        registry.rename_remote(carl, "B0b")
    assert lobby.nicks() == ["bob", "carl"] and registry.find("carl") is carl
