"""Protocol constants that server and client must agree on (docs/protocol.md §2, §6).

Owns numbers and names only: the default port, the length limits of nicks,
rooms and texts, and the names of the optional features of `hello`. Checking
a value against them is the server's job (`chatsrv.messages`); the client
uses them to build names the server will accept. Standard library
only; imports nothing from lanchat.
"""

from __future__ import annotations

DEFAULT_PORT = 9009  # TCP and UDP, and the port discovery asks (docs/protocol.md, "Extension: discovery")
MAX_NICK = 24  # characters in a nick (docs/protocol.md §6)
MAX_ROOM = 32  # characters in a room name (docs/protocol.md §6)
MAX_TEXT = 2000  # characters in a text after stripping surrounding white space (docs/protocol.md §6)

# Optional features a client may ask for in `hello.features` (docs/protocol.md §13).
BATCH_JOINS = "batch_joins"  # a room's joins and leaves of one short interval as one `members` payload
FEATURES = frozenset({BATCH_JOINS})  # what this version of the server knows
