"""What a node does with stream entries it cannot apply: each event of a pack fails alone, and the log stays
short however many bad entries come (chatsrv.backplane `_apply`, `_skipped`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from chatsrv.app import Server
from tests.backplane import stream
from tests.backplane.conftest import Redis
from tests.helpers import Client


def texts_until(client: Client, last: str) -> list[str]:
    """The texts of the messages `client` gets, up to and with `last` (sent after the rest)."""
    seen: list[str] = []
    while not seen or seen[-1] != last:
        seen.append(client.expect("message")["text"])
    return seen


def test_a_bad_event_in_a_pack_is_skipped_alone_and_the_rest_of_the_pack_arrives(
    redis_server: Redis, make_server: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    node = make_server("--rate", "0", "--backplane", redis_server.url)
    with Client(node.port) as bob:
        bob.join("bob")
        bodies = [
            stream.message("before"),
            b'{"type":"joined","room":"lobby"}',  # no nick: applying it raises KeyError
            stream.message("middle"),
            b'{"type":"left",',  # not JSON: ValueError
            stream.message("after"),
        ]
        with caplog.at_level(logging.WARNING, logger="chatsrv"):
            stream.add(node.backplane.client, stream.pack("elsewhere", 1, bodies))
            stream.add(node.backplane.client, stream.event("elsewhere", 6, stream.message("next entry")))
            assert texts_until(bob, "next entry") == ["before", "middle", "after", "next entry"]
        lines = [r.getMessage() for r in caplog.records if "could not be applied" in r.getMessage()]
        assert len(lines) == 2 and "KeyError" in lines[0] and "elsewhere" in lines[0]


def test_many_bad_entries_make_a_few_log_lines(
    redis_server: Redis, make_server: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    """A node that writes bad entries again and again: a few lines per 10 s, the healthy events all arrive."""
    node = make_server("--rate", "0", "--backplane", redis_server.url)
    with Client(node.port) as bob:
        bob.join("bob")
        with caplog.at_level(logging.WARNING, logger="chatsrv"):
            for n in range(10):
                bad_header = {"n": "elsewhere", "k": "pack", "p": b'[1, "lobby", {}]\n' + stream.message("lost")}
                stream.add(node.backplane.client, bad_header)  # cannot be placed: the whole entry is skipped
                pack = stream.pack("elsewhere", 1, [b"not json", stream.message(f"m{n}")])
                stream.add(node.backplane.client, pack)
            stream.add(node.backplane.client, stream.event("elsewhere", 3, stream.message("end")))
            assert texts_until(bob, "end") == [*(f"m{n}" for n in range(10)), "end"]
        lines = [r.getMessage() for r in caplog.records if "could not be applied" in r.getMessage()]
        assert 1 <= len(lines) <= 3


def test_deeply_nested_json_in_a_roster_or_a_pack_is_skipped_and_the_reader_goes_on(
    redis_server: Redis, make_server: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    """json.loads of 100,000 '[' raises RecursionError, which was not among the errors an entry may raise:
    the node's reader thread died, and the node never heard the cluster again (a hostile writer to Redis)."""
    node = make_server("--rate", "0", "--backplane", redis_server.url)
    nested = b"[" * 100_000
    with Client(node.port) as bob:
        bob.join("bob")
        with caplog.at_level(logging.WARNING, logger="chatsrv"):
            stream.add(node.backplane.client, {"n": "elsewhere", "k": "roster", "b": nested})
            stream.add(node.backplane.client, stream.pack("elsewhere", 1, [nested, stream.message("kept")]))
            stream.add(node.backplane.client, stream.event("elsewhere", 3, stream.message("still reading")))
            assert texts_until(bob, "still reading") == ["kept", "still reading"]
        lines = [r.getMessage() for r in caplog.records if "could not be applied" in r.getMessage()]
        assert lines and "RecursionError" in lines[0]
