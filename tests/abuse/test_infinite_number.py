"""Attack: a number that parses to infinity (`1e999`) in a ping (issue 14, item 2).

`json` turns 1e999 into inf, and echoing it in the `pong` made the encoder raise:
over TCP the handler thread died, over UDP every datagram logged a traceback.
Now the payload is a `bad_request` and the connection (or UDP peer) stays.
"""

from __future__ import annotations

import pytest

from tests.helpers import raw_json

ATTACKS = ['{"type":"ping","id":"x","t":1e999}', '{"type":"ping","id":-1e999}', '{"type":"say","text":"hi","x":1e999}']


@pytest.mark.parametrize("attack", ATTACKS)
def test_infinity_over_tcp_is_a_bad_request_and_the_connection_stays(clients, attack: str) -> None:
    """The sender gets bad_request, then can still ping and speak on the same connection."""
    mallory, bob = clients(), clients()
    mallory.join("mallory")
    bob.join("bob")
    mallory.send_raw(raw_json(attack))
    assert mallory.expect("error")["code"] == "bad_request"
    mallory.send({"type": "ping", "id": "after"})
    assert mallory.expect("pong", id="after")
    mallory.send({"type": "say", "text": "still here"})
    assert bob.expect("message", **{"from": "mallory"})["text"] == "still here"


@pytest.mark.parametrize("attack", ATTACKS)
def test_infinity_over_udp_is_a_bad_request_and_the_peer_stays(udp_clients, attack: str) -> None:
    """A registered UDP peer gets bad_request for the datagram and stays a member."""
    mallory, bob = udp_clients(), udp_clients()
    mallory.join("mallory")
    bob.join("bob")
    mallory.send_raw(attack[:-1].encode() + b"," + mallory.token_field() + b"}")
    assert mallory.expect("error")["code"] == "bad_request"
    mallory.send({"type": "ping", "id": "after"})
    assert mallory.expect("pong", id="after")
    mallory.send({"type": "say", "text": "still here"})
    assert bob.expect("message", **{"from": "mallory"})["text"] == "still here"
