"""Replies that fit what the server announced: a list trimmed to a byte limit.

`welcome`, `users` and `rooms` carry lists that grow with the class (members,
rooms). Each must fit in one frame (TCP, `max_frame`) or one datagram (UDP,
the datagram limit) with room left for the `seq` spliced in later
(docs/protocol.md §8, `truncated`). `fit_list` keeps the list's first items
that fit, in order, and says with `"truncated": N` how many it left out.

Pure: no sockets, no clock, no lock. Imports only `lanchat.wire`.
"""

from __future__ import annotations

import json
from typing import Any

from lanchat.wire import encode_payload

# Bytes kept free in every reply for the `,"seq":N` the outbox splices in.
SEQ_ROOM = 24

_item_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def fit_list(payload: dict[str, Any], key: str, limit: int) -> bytes:
    """`payload` encoded in at most `limit` bytes by keeping only the first items of `payload[key]` that fit.

    When items are left out, the payload gets `"truncated"`: how many. If even
    the payload with an empty list is over `limit`, that is what is returned
    (the caller's other fields are its own business).
    """
    body = encode_payload(payload)
    if len(body) <= limit:
        return body
    items: list[Any] = payload[key]
    shell = dict(payload)
    shell[key] = []
    shell["truncated"] = len(items)  # the most digits the count can have
    budget = limit - len(encode_payload(shell))
    chosen: list[bytes] = []
    for item in items:
        encoded = _item_encoder.encode(item).encode("utf-8")
        cost = len(encoded) + (1 if chosen else 0)
        if cost > budget:
            break
        budget -= cost
        chosen.append(encoded)
    shell["truncated"] = len(items) - len(chosen)
    # A key in JSON is the only place `"key":[]` can appear: inside a string a quote is escaped.
    marker = b'"' + key.encode("utf-8") + b'":[]'
    return encode_payload(shell).replace(marker, marker[:-1] + b",".join(chosen) + b"]", 1)
