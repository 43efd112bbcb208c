"""chatsrv.continuity: the teacher's decisions to text and back, and what it refuses to half-restore."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from chatsrv.access import Access
from chatsrv.continuity import members_state, moderation_state, restore_moderation, returning_members
from chatsrv.moderation import Moderation
from chatsrv.rooms import Registry


def test_round_trip_and_a_mute_that_ended_while_down_is_not_restored() -> None:
    moderation, access, registry = Moderation(), Access(), Registry()
    moderation.mute("bob", "teacher", 100.0)
    moderation.mute("carol", "teacher", None)
    moderation.lock("maths", "teacher")
    moderation.set_lock_all("teacher")
    moderation.set_slow("lobby", 4)
    registry.ensure_room("Maths").topic = "fractions"
    access.ban(ipaddress.ip_address("10.0.0.9"))
    text = moderation_state(moderation, access, registry)
    again, access_again, registry_again = Moderation(), Access(), Registry()
    restore_moderation(text, again, access_again, registry_again, now=150.0)
    assert set(again.mutes) == {"carol"}  # bob's ended at 100
    assert again.locked == {"maths": "teacher"} and again.lock_all == "teacher" and again.slow == {"lobby": 4}
    assert registry_again.rooms["maths"].name == "Maths" and registry_again.rooms["maths"].topic == "fractions"
    assert access_again.refusal(("10.0.0.9", 1)) is not None
    assert again.active


@pytest.mark.parametrize("text", ["{", "[]", '{"format": 99}', '{"format": 1, "mutes": {"a": 5}}'])
def test_unreadable_state_is_ignored_as_a_whole(text: str, caplog: pytest.LogCaptureFixture) -> None:
    moderation, access, registry = Moderation(), Access(), Registry()
    with caplog.at_level(logging.WARNING, logger="chatsrv"):
        assert restore_moderation(text, moderation, access, registry, now=0.0) == 0
    assert not moderation.active and not access.banned and not registry.rooms
    assert "cannot be read" in caplog.text


def test_members_at_a_stop_come_back_by_nick_key() -> None:
    assert returning_members(None) == (None, {})
    assert returning_members("") == (None, {})
    assert returning_members(members_state(Registry(), 12.5)) == (12.5, {})
