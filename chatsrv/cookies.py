"""Stateless address validation for UDP: the `challenge` cookie (docs/protocol.md §2).

Anyone can forge a UDP source address. If the server answered a forged
`hello` with a big `welcome`, an attacker could aim it at a victim
(reflection) and get more bytes out than it put in (amplification). So an
unproven address gets only a small `challenge` carrying a cookie; a client
that really lives at that address receives it and sends its `hello` again
with the cookie, which proves it can receive there.

The cookie is an HMAC of the address, the port and the time under a secret
only the server knows, so the server keeps no state per unproven address
(a flood of forged hellos costs no memory) and nobody else can make one.
It is bound to the exact (address, port) and expires after `lifetime`
seconds (60 by default).

Pure: the secret and `now` are passed in. Imports only the standard library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from typing import Any

__all__ = ["COOKIE_LIFETIME", "CookieMaker"]

COOKIE_LIFETIME = 60.0
_STAMP = struct.Struct("!I")  # issue time, whole seconds (wraps in 2106)
_TAG_BYTES = 12  # 96 bits of HMAC-SHA256: unguessable, and the challenge stays small


class CookieMaker:
    """Issues and checks cookies for one server (one random secret per run)."""

    def __init__(self, secret: bytes | None = None, lifetime: float = COOKIE_LIFETIME) -> None:
        self._secret = secret if secret is not None else os.urandom(32)
        self.lifetime = lifetime

    def _tag(self, address: Any, stamp: int) -> bytes:
        host, port = address[0], address[1]
        message = f"{host}|{port}|{stamp}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_TAG_BYTES]

    def issue(self, address: Any, now: float) -> str:
        """A cookie for `address` ((host, port, ...) as recvfrom gives it), valid from `now`."""
        stamp = int(now) & 0xFFFFFFFF
        raw = _STAMP.pack(stamp) + self._tag(address, stamp)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def check(self, cookie: str, address: Any, now: float) -> bool:
        """True when `cookie` was issued by us, for this very address and port, and is fresh."""
        if not isinstance(cookie, str) or len(cookie) > 64:
            return False
        try:
            raw = base64.urlsafe_b64decode(cookie.encode("ascii") + b"=" * (-len(cookie) % 4))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return False
        if len(raw) != _STAMP.size + _TAG_BYTES:
            return False
        (stamp,) = _STAMP.unpack_from(raw)
        age = now - stamp
        # A cookie from the future (beyond a second of rounding) is as bad as an old one.
        if not -1.0 <= age <= self.lifetime:
            return False
        return hmac.compare_digest(raw[_STAMP.size :], self._tag(address, stamp))
