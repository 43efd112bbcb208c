"""What a restart must not forget: the teacher's decisions, and who was here.

Owns the translation between the live state and the text the store keeps
across restarts (`Store.save_state`, docs/protocol.md §9.7):

- `moderation_state` / `restore_moderation`: mutes (with the time they
  end, so the remaining time counts on through the restart), locked rooms,
  `/lock all`, slow mode, topics and bans, as one JSON object;
- `members_state` / `returning_members`: who was in which room when the
  server stopped cleanly, so the next start can record one "restarted"
  event per room instead of a leave and a join per member.

Pure: no sockets, no clock (callers pass `now`), no threads; the service
calls it with its lock held. A value that cannot be read (damaged, or from
another version) is ignored as a whole: the server starts fresh rather than
half-restored.

Imports: chatsrv.access, chatsrv.moderation, chatsrv.rooms (and the standard library).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

from chatsrv.access import Access
from chatsrv.moderation import Moderation, Mute
from chatsrv.rooms import Registry, name_key

log = logging.getLogger("chatsrv")

MODERATION = "moderation"  # the state names in the store
STOPPED = "stopped"
OP_SECRET = "op_secret"

FORMAT = 1  # the shape of the JSON below; another number is not read


def moderation_state(moderation: Moderation, access: Access, registry: Registry) -> str:
    """The teacher's decisions as one JSON text."""
    state: dict[str, Any] = {
        "format": FORMAT,
        "mutes": {key: [mute.by, mute.until] for key, mute in moderation.mutes.items()},
        "locked": dict(moderation.locked),
        "lock_all": moderation.lock_all,
        "slow": dict(moderation.slow),
        "topics": [[room.name, room.topic] for room in registry.rooms.values() if room.topic is not None],
        "bans": sorted(str(ip) for ip in access.banned),
    }
    return json.dumps(state, ensure_ascii=False)


def restore_moderation(text: str | None, moderation: Moderation, access: Access, registry: Registry, now: float) -> int:
    """Bring back what `moderation_state` kept; returns how many things came back (0 for nothing or unreadable).

    Mutes that ended while the server was down are not restored.
    """
    if not text:
        return 0
    try:
        state = json.loads(text)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError("unknown format")
        mutes = {
            str(key): Mute(str(by), None if until is None else float(until))
            for key, (by, until) in state["mutes"].items()
        }
        locked = {str(key): str(by) for key, by in state["locked"].items()}
        lock_all = None if state["lock_all"] is None else str(state["lock_all"])
        slow = {str(key): float(seconds) for key, seconds in state["slow"].items() if float(seconds) > 0}
        topics = [(str(name), str(topic)) for name, topic in state["topics"]]
        bans = [ipaddress.ip_address(address) for address in state["bans"]]
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        log.warning("the saved moderation state cannot be read (%s); starting without it", error)
        return 0
    for key, mute in mutes.items():
        if mute.until is None or mute.until > now:
            moderation.mute(key, mute.by, mute.until)
    for key, by in locked.items():
        moderation.lock(key, by)
    if lock_all is not None:
        moderation.set_lock_all(lock_all)
    for key, seconds in slow.items():
        moderation.set_slow(key, seconds)
    for name, topic in topics:
        registry.ensure_room(name).topic = topic
    for ip in bans:
        access.ban(ip)
    return len(moderation.mutes) + len(locked) + (lock_all is not None) + len(slow) + len(topics) + len(bans)


def members_state(registry: Registry, now: float) -> str:
    """Who is in which room now (at a clean stop), as JSON text."""
    members = [
        [session.nick, room.name]
        for room in registry.rooms.values()
        for session in room.members.values()
        if session.nick
    ]
    return json.dumps({"format": FORMAT, "ts": now, "members": members}, ensure_ascii=False)


def returning_members(text: str | None) -> tuple[float | None, dict[str, str]]:
    """When the server stopped, and the members then present (nick key -> room name)."""
    if not text:
        return None, {}
    try:
        state = json.loads(text)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError("unknown format")
        members = {name_key(str(nick)): str(room) for nick, room in state["members"]}
        return float(state["ts"]), members
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        log.warning("the saved list of members at the last stop cannot be read (%s)", error)
        return None, {}
