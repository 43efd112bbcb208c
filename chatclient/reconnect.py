"""Reconnecting: what a `ChatSession` does when its connection ends, and regaining operator status after.

Owns `Reconnecting`, the part of `chatclient.session.ChatSession` that retries with backoff after a dropped
connection (the same nick and room, `nick_2` ... when ours was taken meanwhile, a password asked for when
the server now wants one), ends the session on a refusal that waiting will not cure, and sends the /op
secret that worked before (docs/protocol.md §9.2). A mixin: `ChatSession` creates the state it uses
(annotated below) in its `__init__`; nothing here is used on its own.

Must not import prompt_toolkit, sockets or chatsrv: the network is reached only through `Transport`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from chatclient.sessiontypes import Connect, Habits, Listener, Phase, Sleep
from chatclient.state import ClientState, alternative_nick
from chatclient.transport import Transport, TransportError
from lanchat.i18n import N_, _

NICK_TRIES = 9  # nick_2 ... nick_9 when ours was taken during a reconnect
# Seconds of waiting during which our own nick is asked for again before nick_2: after a chat server of
# several (docs/scale-out.md) died, the others hold its members' nicks until it is known dead (about 4 s).
NICK_GRACE = 5.0

# Refusals met while reconnecting that waiting will not cure: the session ends
# with this sentence. Any other one (server_full, timeout, a closed connection)
# is tried again with backoff; a taken nick becomes nick_2 ..., a password is asked for.
FINAL_REFUSALS = {
    "not_allowed": N_("{address} does not let this computer in any more (banned, or not on its list): ask the teacher"),
    "nick_taken": N_("every nick like yours is taken on {address}: start chatclient again with another --nick"),
    "nick_invalid": N_("{address} no longer accepts your nick: start chatclient again with another --nick"),
    "room_invalid": N_("{address} no longer accepts your room name: start chatclient again with another --room"),
}


class Reconnecting:
    """The connection ended: reconnect, or end the session; mixed into ChatSession."""

    connect: Connect
    address: str
    listener: Listener
    password: str | None
    habits: Habits
    backoff: Callable[[], Iterator[float]]
    sleep: Sleep
    state: ClientState
    transport: Transport | None
    retry_at: float
    attempt: int
    _quitting: bool
    _op_secret: str | None
    _regaining_op: bool

    if TYPE_CHECKING:  # ChatSession's own methods this part calls

        async def _join(self, transport: Transport, quiet: str = "") -> str: ...

        async def _drop_transport(self) -> None: ...

        def _set_phase(self, phase: Phase) -> None: ...

        def _say(self, text: str, kind: str = "info") -> None: ...

        def _end(self, reason: str) -> bool: ...

    async def _connection_ended(self, problem: str | None) -> bool:
        """The connection ended: reconnect when allowed; False when the session is over."""
        was_operator = self.state.operator
        await self._drop_transport()
        if not self.habits.reconnect or self.state.ended is not None:
            # After a kick or a ban, coming straight back would be rude (or refused).
            ended = _("an operator ended your session (see above)") if self.state.ended else None
            return self._end(ended or problem or _("connection to {address} lost").format(address=self.address))
        if problem is not None:
            self._say(problem, "error")
        self._say(_("connection to {address} lost; reconnecting").format(address=self.address), "error")
        if not await self._reconnect():
            return False
        if was_operator and not self.state.operator and not self._regaining_op:
            # Not while our secret is on its way: the answer says "operator" again, or why not.
            self._say(
                _("you are no longer an operator: operator status ends with the connection. /op "
                "SECRET makes you one again (the secret chatsrv printed when it started)"),
                "notice",
            )
        return True

    async def _reconnect(self) -> bool:
        """Retry with backoff, hello with the same nick and room; False when giving up.

        Over TCP that follows a closed connection; over UDP the transport ends
        the session when the server has forgotten us (`not_joined`, after a
        restart or a long silence), and a fresh transport joins again. The
        server may have come back different: a password it now wants is asked
        for (and tried at once), a refusal that will not pass by waiting (a ban,
        an address not allowed) ends the session with the reason in plain words.
        """
        wanted = self.state.nick
        retry_now = False  # after a password was typed: no reason to wait
        waited_since_taken: float | None = None  # seconds waited since our nick was first found taken
        for attempt, delay in enumerate(self.backoff(), 1):
            self.attempt = attempt
            if waited_since_taken is not None and not retry_now:
                waited_since_taken += delay
            if not retry_now:
                self.retry_at = time.monotonic() + delay
                self._set_phase(Phase.RECONNECTING)
                await self.sleep(delay)
            retry_now = False
            if self._quitting:
                return False
            self._set_phase(Phase.CONNECTING)
            try:
                transport = await self.connect()
            except TransportError:
                continue
            self.transport = transport
            self.address = transport.address  # with several --host, maybe another node of the chat
            self.state.transport = transport.name
            try:
                result = await self._join(transport, quiet="nick_taken")  # said below, or asked for again
                if result == "nick_taken" and (waited_since_taken or 0.0) < NICK_GRACE:
                    waited_since_taken = waited_since_taken or 0.0  # maybe held for us by a server that died:
                    await self._drop_transport()  # ask for it again after the next wait
                    continue
                number = 2
                while result == "nick_taken" and number <= NICK_TRIES:
                    self.state.nick = alternative_nick(wanted, number)
                    self._say(
                        _("{wanted} was taken while you were away: you are {nick} now").format(
                            wanted=wanted, nick=self.state.nick
                        ),
                        "notice",
                    )
                    number += 1
                    result = await self._join(transport, quiet="nick_taken")
            except TransportError:
                result = "closed"
            if result == "ok":
                self._say(_("reconnected to {address}").format(address=self.address))
                await self._regain_operator(transport)
                return True
            await self._drop_transport()
            if result == "auth_failed":
                password = await self.listener.ask_password()
                if self._quitting:
                    return False
                if not password:
                    return self._end(
                        _("{address} now needs a password, and none was given").format(address=self.address)
                    )
                self.password = password
                retry_now = True
                continue
            final = FINAL_REFUSALS.get(result)
            if final is not None:
                return self._end(_(final).format(address=self.address))
        return self._end(_("gave up reconnecting to {address}").format(address=self.address))

    # --- operator status across a reconnect (docs/protocol.md §9.2) ---------

    async def _regain_operator(self, transport: Transport) -> None:
        """After a reconnect's welcome, send the /op secret that worked before (the server keeps it across restarts)."""
        if self._op_secret is None or self.state.operator:
            return
        self._regaining_op = True
        try:
            await transport.send({"type": "op", "secret": self._op_secret})
        except TransportError:
            self._regaining_op = False

    def _answer_to_regain(self, payload: dict[str, Any]) -> bool:
        """Whether `payload` answers our automatic `op`; a refusal becomes one plain line and is not shown raw.

        Success (the `op` notice, or "already an operator") goes on to the state like any notice.
        """
        if payload.get("type") == "error" and payload.get("code") == "not_allowed":
            self._regaining_op = False
            self._op_secret = None  # never guessed again: wrong secrets are limited per address
            self._say(
                _("you are not an operator any more: the server did not take your secret; type /op SECRET"), "error"
            )
            return True
        if payload.get("type") == "notice":
            ours = payload.get("event") == "op" and payload.get("nick") == self.state.nick
            if ours or "already an operator" in str(payload.get("text")):
                self._regaining_op = False
        return False
