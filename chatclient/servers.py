"""Which server to connect to: `chatclient --host A --host B`, the nodes of one chat (docs/scale-out.md).

A chat served by several `chatsrv --backplane` nodes on several machines is one chat whichever node a
student joins. When the node a student is on dies, the others go on, but a client that knows only that
node's address would wait for it to come back. Given every node's address, `Servers.connect` moves on:

- each call tries every address once, beginning with the one *after* the address it connected to last
  (a connection that was lost most likely means that node is down, so the next retry lands elsewhere);
- it returns the first transport that opens (its `address` says which), and remembers where that was;
- when none opens, it raises one `TransportError` that names every address tried.

With one address (the usual case) it is always that address. Over UDP opening never fails (UDP has no
connect), so a dead node shows as a hello that gets no answer: the session's next retry calls `connect`
again and so reaches the next node all the same.

Imports: chatclient.transport (and the standard library).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from chatclient.transport import Transport, TransportError

Opener = Callable[[str, int], Awaitable[Transport]]  # host, port -> an open transport


class Servers:
    """The addresses of one chat, tried in turn; `connect` is the session's `Connect`."""

    def __init__(self, places: Sequence[tuple[str, int]], opener: Opener) -> None:
        if not places:
            raise ValueError("no server address")
        self.places = list(places)
        self.opener = opener
        self._next = 0  # the index to try first at the next call

    async def connect(self) -> Transport:
        failures: list[str] = []
        count = len(self.places)
        for step in range(count):
            index = (self._next + step) % count
            host, port = self.places[index]
            try:
                transport = await self.opener(host, port)
            except TransportError as error:
                failures.append(str(error))
                continue
            self._next = (index + 1) % count
            return transport
        raise TransportError("; ".join(failures))
