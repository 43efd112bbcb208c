"""What a chat session and the faces driving it share: the session's `Phase`, a face's `Habits`
(INTERACTIVE for the terminal UI, SCRIPTED for line mode), the `Listener` a face implements, and the
reconnect backoff.

Types and constants only (no state); the session itself is `chatclient.session`. Must not import
prompt_toolkit, sockets or chatsrv.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from chatclient.lines import Line
from chatclient.transport import Transport

Connect = Callable[[], Awaitable[Transport]]
Sleep = Callable[[float], Awaitable[None]]

PING_EVERY = 5.0  # seconds between round-trip pings (the toolbar's rtt)
BACKOFF_FIRST = 1.0  # first wait before reconnecting, then doubled ...
BACKOFF_LIMIT = 30.0  # ... up to this

def backoff_delays(first: float = BACKOFF_FIRST, limit: float = BACKOFF_LIMIT) -> Iterator[float]:
    """1, 2, 4, 8, 16, 30, 30, ... seconds: quick when the server blinks, gentle when it is down."""
    delay = first
    while True:
        yield min(delay, limit)
        delay = min(delay * 2, limit)


class Phase(enum.Enum):
    """Where the session is; see the diagram in the module docstring."""

    CONNECTING = "connecting"  # opening a transport
    JOINING = "joining"  # hello sent, waiting for welcome
    IN_ROOM = "in room"  # welcomed: payloads may be sent
    LOST = "lost"  # in the room, but a UDP server has been silent longer than its peer_timeout
    RECONNECTING = "reconnecting"  # the connection ended; waiting before the next try
    CLOSING = "closing"  # quitting: bye sent, waiting for the server to close
    CLOSED = "closed"  # over: the user left, or the server refused, kicked or could not be reached


@dataclass(frozen=True)
class Habits:
    """What a face wants the session to do on its own besides joining and leaving."""

    reconnect: bool = True  # come back after a dropped connection (never after a kick)
    ping_every: float | None = PING_EVERY  # round-trip pings and "server lost"; None: no pings
    learn_rooms: bool = True  # ask for the room list after each welcome, for Tab completion, without showing it
    confirm_udp_join: bool = True  # over UDP, repeat a /join until its welcome arrives


INTERACTIVE = Habits()
# Line mode serves scripts: a dropped connection ends the run (exit 1) rather
# than hiding behind retries, and nothing is sent that the script did not ask for.
SCRIPTED = Habits(reconnect=False, ping_every=None, learn_rooms=False, confirm_udp_join=False)


class Listener(Protocol):
    """What a face does for the session: show, refresh, ask, and hear that it is over."""

    def show(self, lines: list[Line], bell: bool = False) -> None:
        """Show these lines; `bell` when one mentions the user as it happens."""

    def changed(self) -> None:
        """The phase or the state changed: redraw whatever shows them."""

    async def ask_nick(self, code: str) -> str | None:
        """The server refused our nick (`code`: nick_taken or nick_invalid); another one, or None to give up."""

    async def ask_password(self) -> str | None:
        """The server wants a (different) password; it, or None to give up."""

    def ended(self, reason: str) -> None:
        """The session is over without the user quitting (kicked, connection lost, refused again); why."""

    def crashed(self, error: BaseException) -> None:
        """A bug in a background task: the face must stop visibly rather than go on silently."""
