"""Attack: many connections that never say hello (issue 14, item 3).

Each such connection costs the server a thread and a socket. There used to
be no limit below `--max-clients`/`--max-per-ip`, so one address could hold
its whole `--max-per-ip` share of silent connections for ever, and a few
addresses the whole server. Now connections that have not said hello are
capped per address (`--max-waiting-per-ip`, an IPv6 /64 counting as one)
and in total (`--max-waiting`, kept below `--max-clients`); past a cap a new
connection gets `server_full`, while other addresses and joined members are
unaffected.
"""

from __future__ import annotations

import pytest

from chatsrv.app import build_server
from chatsrv.options import build_parser
from lanchat.wire import ProtocolError
from tests.helpers import Client, wait_until


def _refused(client: Client) -> str:
    """The one error code the server sent before hanging up."""
    received = client.wait_closed()
    codes = [payload["code"] for payload in received if payload["type"] == "error"]
    assert len(codes) == 1, received
    return str(codes[0])


def test_one_address_is_capped_while_another_still_gets_in(make_server) -> None:
    """Past --max-waiting-per-ip silent connections from 127.0.0.1 the next is refused; 127.0.0.2 joins."""
    server = make_server("--max-waiting-per-ip", "3", "--hello-timeout", "0")
    silent = [Client(server.port) for _ in range(3)]
    try:
        wait_until(lambda: server.tcp.newcomers.count(("127.0.0.1", 0)) == 3)
        with Client(server.port) as one_more:
            assert _refused(one_more) == "server_full"
        with Client(server.port, source="127.0.0.2") as other:
            assert other.join("other")["nick"] == "other"
        # A waiting connection that says hello gives its slot back: 127.0.0.1 may open one more.
        silent[0].join("late")
        wait_until(lambda: server.tcp.newcomers.count(("127.0.0.1", 0)) == 2)
        silent.append(Client(server.port))
        wait_until(lambda: server.tcp.newcomers.count(("127.0.0.1", 0)) == 3)
        assert silent[-1].join("later")["nick"] == "later"
    finally:
        for client in silent:
            client.close()


def test_the_total_is_capped_and_joined_members_are_untouched(make_server) -> None:
    """Past --max-waiting silent connections (from any addresses) the next is refused; members keep chatting."""
    server = make_server("--max-waiting", "3", "--hello-timeout", "0", "--rate", "0")
    with Client(server.port) as member:
        member.join("member")
        silent = [Client(server.port, source=f"127.0.0.{n}") for n in (2, 3, 4)]
        try:
            wait_until(lambda: server.tcp.newcomers.count() == 3)
            with Client(server.port, source="127.0.0.5") as one_more:
                assert _refused(one_more) == "server_full"
            member.send({"type": "say", "text": "still here"})
            assert member.expect("message")["text"] == "still here"
        finally:
            for client in silent:
                client.close()
        # Closing them frees the slots: a newcomer gets in again.
        wait_until(lambda: server.tcp.newcomers.count() == 0)
        with Client(server.port, source="127.0.0.5") as newcomer:
            assert newcomer.join("newcomer")["nick"] == "newcomer"


def test_the_total_cap_stays_below_max_clients() -> None:
    """--max-waiting at or above --max-clients (or 0) is lowered so that waiting connections never fill the server."""
    for flags, expected in ((["--max-clients", "10"], 5), (["--max-clients", "10", "--max-waiting", "0"], 5),
                            (["--max-clients", "1000"], 128)):
        args = build_parser().parse_args(["--host", "127.0.0.1", "--port", "0", "--db", ":memory:", "--no-udp", *flags])
        server = build_server(args)
        try:
            assert server.tcp.newcomers.total == expected
        finally:
            server.tcp.server_close()  # never started: nothing to shut down but the socket and the store
            server.service.store.close()


def test_a_joined_connection_never_counts_as_a_newcomer() -> None:
    """Once its session joined (the welcome may already be out), a connection frees its place at once."""
    from chatsrv.tcp import Newcomers

    class Joined:
        joined = False

    newcomers = Newcomers(total=1, per_address=1)
    first = newcomers.take(("127.0.0.1", 1000))
    session = Joined()
    first.session = session  # type: ignore[assignment]
    with pytest.raises(ProtocolError):
        newcomers.take(("127.0.0.1", 1001))
    session.joined = True  # the handler thread has not given the ticket back yet
    second = newcomers.take(("127.0.0.1", 1001))
    newcomers.give_back(first)  # late, and harmless
    newcomers.give_back(second)
    assert newcomers.count() == 0
