"""Discovery without sockets: the server's `server_info` builder and the client's pure helpers."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from chatclient import discovery as client
from chatsrv.access import Access, parse_network
from chatsrv.discovery import MAX_REPLY, NAME_LIMIT, SMALLEST_REPLY, Discovery, Snapshot, build_reply, password_required
from chatsrv.service import ChatService
from lanchat.netinfo import Interface
from lanchat.wire import decode_payload
from tests.support.fakes import connect, member, send

PORTS = {"server_id": "0badcafe", "tcp_port": 9009, "udp_port": 9010}
ANYONE = ("192.168.1.50", 40000)  # a probe's source address


def snapshot(rooms: int = 0, password: bool = False, name: str = "Room 101") -> Snapshot:
    listing = [{"name": f"room{number:03d}", "users": number + 1} for number in range(rooms)]
    listing.sort(key=lambda room: -room["users"])
    return Snapshot(name, sum(room["users"] for room in listing), listing, password)


def reply(state: Snapshot, budget: int) -> dict[str, Any] | None:
    body = build_reply(state, budget=budget, **PORTS)
    if body is not None:
        assert len(body) <= budget
    return None if body is None else json.loads(body)


# --- server: chatsrv.discovery ----------------------------------------------------------


def test_full_reply_has_every_field_and_seq_zero() -> None:
    """With room to spare the reply names the server, its ports, version, counts and rooms, with seq 0."""
    answer = reply(snapshot(rooms=2), budget=MAX_REPLY)
    assert answer == {
        "type": "server_info",
        "id": "0badcafe",
        "name": "Room 101",
        "version": answer["version"] if answer else "",
        "tcp_port": 9009,
        "udp_port": 9010,
        "users": 3,
        "room_count": 2,
        "password_required": False,
        "rooms": [{"name": "room001", "users": 2}, {"name": "room000", "users": 1}],
        "seq": 0,
    }


@pytest.mark.parametrize("budget", [1, 57, 100, 150, 200, 250, 300, 400, 600, 1000, 1400])
def test_reply_never_exceeds_its_budget(budget: int) -> None:
    """Whatever the budget (3x the probe), the reply fits it or is not sent at all."""
    body = build_reply(snapshot(rooms=200), budget=budget, **PORTS)
    assert body is None or len(body) <= budget


def test_small_budget_keeps_the_busiest_rooms_that_fit() -> None:
    """Rooms are cut busiest first, as many as fit; room_count still tells how many there are."""
    answer = reply(snapshot(rooms=200), budget=600)
    assert answer is not None and answer["room_count"] == 200
    kept = answer["rooms"]
    assert 0 < len(kept) < 200
    assert [room["users"] for room in kept] == list(range(200, 200 - len(kept), -1))
    one_more = build_reply(snapshot(rooms=200), budget=600 + 1000, **PORTS)
    assert one_more is not None and len(json.loads(one_more)["rooms"]) > len(kept)


def test_smaller_budget_leaves_rooms_out_then_sends_nothing() -> None:
    """Below what one room needs the reply has no `rooms`; below the bare reply there is none (a 19-byte probe)."""
    one_room = build_reply(snapshot(rooms=3), budget=MAX_REPLY, **PORTS)
    bare = build_reply(snapshot(rooms=3), budget=len(b'{"type":"server_info"}') * 8, **PORTS)
    assert one_room is not None and bare is not None
    answer = json.loads(bare)
    assert "rooms" not in answer and answer["room_count"] == 3 and answer["users"] == 6
    assert build_reply(snapshot(rooms=3), budget=len(bare) - 1, **PORTS) is None
    assert build_reply(snapshot(rooms=3), budget=3 * len(b'{"type":"discover"}'), **PORTS) is None


def test_password_hides_room_names() -> None:
    """When a password is needed the reply says so and lists no rooms, only counts."""
    answer = reply(snapshot(rooms=5, password=True), budget=MAX_REPLY)
    assert answer is not None and answer["password_required"] is True
    assert "rooms" not in answer and answer["room_count"] == 5 and answer["users"] == 15
    assert b"room00" not in (build_reply(snapshot(rooms=5, password=True), budget=MAX_REPLY, **PORTS) or b"")


def test_long_name_is_shortened() -> None:
    """A very long --name is cut to NAME_LIMIT characters, so the server can still be found."""
    answer = reply(snapshot(name="x" * 5000), budget=MAX_REPLY)
    assert answer is not None and len(answer["name"]) == NAME_LIMIT and answer["name"].endswith("…")


def test_discovery_reads_the_service_without_nicks() -> None:
    """A live service: counts and rooms come through, nicks never."""
    service = ChatService(rate=0, server_name="Lab 3")
    for nick, room in (("alicesecret", "maths"), ("bobsecret", "maths"), ("carolsecret", "art")):
        member(service, nick, room)
    body = Discovery(service, tcp_port=9009, udp_port=9009).reply(ANYONE, MAX_REPLY)
    assert body is not None and b"secret" not in body
    answer = decode_payload(body)
    assert answer["users"] == 3 and answer["rooms"] == [{"name": "maths", "users": 2}, {"name": "art", "users": 1}]
    assert answer["name"] == "Lab 3" and answer["password_required"] is False


def test_password_comes_from_the_service_and_hides_rooms() -> None:
    """With `--password` (the service's access rules) the reply says a password is needed, without rooms or the
    password."""
    service = ChatService(rate=0, access=Access(password="s3cret-pass"))
    session, outbox = connect(service)
    send(service, session, type="hello", nick="alice", room="maths", password="s3cret-pass")
    assert outbox.last()["type"] == "welcome"
    assert password_required(service) and not password_required(ChatService(rate=0))
    body = Discovery(service, tcp_port=9009, udp_port=9009).reply(ANYONE, MAX_REPLY)
    assert body is not None and b"s3cret" not in body and b"maths" not in body and b"alice" not in body
    assert decode_payload(body)["password_required"] is True and decode_payload(body)["users"] == 1


def test_refused_addresses_get_no_reply() -> None:
    """An address --deny (or a ban, or a missing --allow) keeps out learns nothing: no reply at all."""
    service = ChatService(rate=0, access=Access(deny=[parse_network("10.0.0.0/8")]))
    answering = Discovery(service, tcp_port=9009, udp_port=9009)
    assert answering.reply(("10.1.2.3", 5000), MAX_REPLY) is None
    assert answering.reply(("192.168.1.9", 5000), MAX_REPLY) is not None


def test_each_server_has_its_own_id() -> None:
    """Two servers (two runs) answer with different ids, so a client can tell them apart."""
    service = ChatService(rate=0)
    first, second = (Discovery(service, tcp_port=1, udp_port=1) for _ in range(2))
    assert first.server_id != second.server_id


# --- client: chatclient.discovery ------------------------------------------------------


def test_probe_is_padded_to_its_size() -> None:
    """The probe is a `discover` padded to exactly PROBE_SIZE bytes, room for a whole reply at 3x."""
    data = client.probe()
    assert len(data) == client.PROBE_SIZE and json.loads(data)["type"] == "discover"
    assert client.PROBE_SIZE * 3 >= MAX_REPLY


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("10.0.0.5", "10.0.0.5", 9009),
        ("10.0.0.5:9100", "10.0.0.5", 9100),
        ("::1", "::1", 9009),
        ("[::1]:9100", "::1", 9100),
        ("[fe80::1]", "fe80::1", 9009),
        ("pc-12", "pc-12", 9009),
    ],
)
def test_parse_target(text: str, host: str, port: int) -> None:
    """HOST, HOST:PORT, [IPV6]:PORT and bare IPv6 are understood; PORT defaults to --port."""
    assert client.parse_target(text, 9009) == client.Target(host, port)


@pytest.mark.parametrize("text", ["", ":9009", "10.0.0.5:", "10.0.0.5:port", "10.0.0.5:70000", "[::1]x"])
def test_parse_target_refuses(text: str) -> None:
    """A missing host, a bad or out-of-range port is a ValueError with the reason."""
    with pytest.raises(ValueError):
        client.parse_target(text, 9009)


def test_broadcast_targets_are_this_machine_and_each_lan() -> None:
    """127.0.0.1 first, then each non-loopback interface's broadcast address once; none without a broadcast."""
    interfaces = [
        Interface("lo", "127.0.0.1", "127.255.255.255"),
        Interface("eth0", "192.168.1.23", "192.168.1.255"),
        Interface("eth0:1", "192.168.1.24", "192.168.1.255"),
        Interface("wg0", "10.8.0.2", None),
        Interface("wlan0", "172.16.5.9", "172.16.255.255"),
    ]
    assert client.broadcast_targets(9009, interfaces) == [
        client.Target("127.0.0.1", 9009),
        client.Target("192.168.1.255", 9009, broadcast=True),
        client.Target("172.16.255.255", 9009, broadcast=True),
    ]


def info(**fields: Any) -> dict[str, Any]:
    base = {
        "type": "server_info",
        "id": "a",
        "name": "Room 101",
        "tcp_port": 9009,
        "udp_port": 9009,
        "users": 2,
        "room_count": 1,
        "rooms": [{"name": "lobby", "users": 2}],
        "version": "0.1.0",
        "password_required": False,
    }
    return {**base, **fields}


def test_parse_answer() -> None:
    """A server_info becomes a FoundServer at the address it came from; anything else or a broken one is ignored."""
    found = client.parse_answer(info(), "10.0.0.1")
    assert found is not None and (found.host, found.tcp_port, found.rooms) == ("10.0.0.1", 9009, (("lobby", 2),))
    assert client.parse_answer({"type": "error", "code": "bad_request"}, "10.0.0.1") is None
    assert client.parse_answer(info(tcp_port=0), "10.0.0.1") is None
    assert client.parse_answer(info(tcp_port="9009"), "10.0.0.1") is None
    assert client.parse_answer(info(name=None), "10.0.0.1") is None
    odd = client.parse_answer(
        info(rooms=[1, {"name": 2}, {"name": "ok", "users": -1}], users="many", id=None), "10.0.0.1"
    )
    assert odd is not None and odd.rooms == () and odd.users == 0 and odd.server_id == "10.0.0.1:9009"


def test_collector_lists_this_machines_server_once_at_its_lan_address() -> None:
    """Answers with one id from loopback and from this machine's LAN address are one server, shown at the LAN
    address."""
    collector = client.Collector(local_addresses=frozenset({"10.0.0.1"}))
    for payload, host in (
        (info(id="a"), "127.0.0.1"),
        (info(id="b"), "10.0.0.7"),
        (info(id="a"), "10.0.0.1"),
        (info(id="a"), "127.0.0.1"),
    ):
        found = client.parse_answer(payload, host)
        assert found is not None
        collector.add(found)
    assert [(server.server_id, server.host) for server in collector.servers] == [("a", "10.0.0.1"), ("b", "10.0.0.7")]


def test_same_id_from_two_addresses_is_listed_twice_with_a_warning() -> None:
    """An answer copying a server's id from another address is not merged: both are listed, and the list warns."""
    collector = client.Collector(local_addresses=frozenset({"10.0.0.1"}))
    for host in ("10.0.0.1", "10.0.0.66", "127.0.0.1", "10.0.0.66"):
        found = client.parse_answer(info(id="a"), host)
        assert found is not None
        collector.add(found)
    assert [server.host for server in collector.servers] == ["10.0.0.1", "10.0.0.66"]
    text = "\n".join(client.listing(collector.servers))
    assert "chatclient --host 10.0.0.1 --port 9009" in text and "chatclient --host 10.0.0.66 --port 9009" in text
    assert "warning: 1, 2 answered with the same server id" in text
    impostor_first = client.Collector()  # no local address known: loopback is not merged with anything either
    for host in ("10.0.0.66", "127.0.0.1"):
        found = client.parse_answer(info(id="a"), host)
        assert found is not None
        impostor_first.add(found)
    assert [server.host for server in impostor_first.servers] == ["10.0.0.66", "127.0.0.1"]


class Terminal(io.StringIO):
    """Typed answers on a stdin that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_password_goes_to_a_found_server_only_when_the_user_chose_it() -> None:
    """Chosen from a list or confirmed with y: yes; a pipe, n, Enter or end of input: no, with the --host command."""
    server = client.parse_answer(info(name="Room 101"), "10.0.0.66")
    assert server is not None
    out = io.StringIO()
    assert client.may_send_password(server, True, "LANCHAT_PASSWORD", io.StringIO(""), out) is True
    assert out.getvalue() == ""
    assert client.may_send_password(server, False, "LANCHAT_PASSWORD", io.StringIO("y\n"), out) is False
    assert "not sending the password (LANCHAT_PASSWORD)" in out.getvalue()
    assert "chatclient --host 10.0.0.66 --port 9009" in out.getvalue()
    for typed, allowed in (
        ("y\n", True),
        ("yes\n", True),
        ("\n", False),
        ("n\n", False),
        ("", False),
        ("what\ny\n", True),
    ):
        asked = io.StringIO()
        assert client.may_send_password(server, False, "--password", Terminal(typed), asked) is allowed, typed
        assert "send the password (--password) to 10.0.0.66 port 9009?" in asked.getvalue()
        assert '"Room 101" at 10.0.0.66' in asked.getvalue()


def test_describe_sanitizes_and_shows_rooms() -> None:
    """The line shows name, address, users and rooms; control characters from the network are made visible."""
    found = client.parse_answer(info(name="Room\x1b[2J 101", room_count=3), "10.0.0.1")
    assert found is not None
    line = client.describe(found)
    assert "\x1b" not in line and "\\x1b[2J" in line
    assert line == '"Room\\x1b[2J 101" at 10.0.0.1 port 9009: 2 users (lobby 2, 2 more rooms)'
    locked = client.parse_answer(info(rooms=None, password_required=True), "10.0.0.2")
    assert locked is not None and client.describe(locked).endswith(": 2 users in 1 room, needs a password")
    assert client.join_command(locked) == "chatclient --host 10.0.0.2 --port 9009"


def test_none_found_explains_how_to_give_an_address() -> None:
    """Nobody answered: the message says what was asked, how to type the address, and that Wi-Fi isolation can block
    it."""
    result = client.Discovery([], [client.Target("127.0.0.1", 9009)], ["10.0.0.255:9009: Network is unreachable"], 1.0)
    text = "\n".join(client.none_found(result, 9009))
    assert "within 1 s" in text and "127.0.0.1:9009" in text and "chatclient --host ADDRESS --port 9009" in text
    assert "Wi-Fi" in text and "Network is unreachable" in text


@pytest.mark.parametrize(
    ("text", "index"),
    [("1\n", 0), ("2", 1), ("\n", 0), (" 3 ", 2), ("4", None), ("0", None), ("x", None), ("-1", None)],
)
def test_parse_choice(text: str, index: int | None) -> None:
    """A number from the list picks that server; Enter picks the first; anything else is not a choice."""
    assert client.parse_choice(text, 3) == index


def test_ask_which_asks_again_until_a_number() -> None:
    """The terminal prompt lists the servers, asks again after a wrong answer, and returns the one chosen."""
    servers = [client.parse_answer(info(id=str(n), name=f"Room {n}"), f"10.0.0.{n}") for n in (1, 2)]
    assert all(servers)
    out = io.StringIO()
    chosen = client.ask_which(servers, io.StringIO("7\n2\n"), out)  # type: ignore[arg-type]
    assert chosen is servers[1]
    text = out.getvalue()
    assert '1. "Room 1" at 10.0.0.1' in text and "type a number from 1 to 2" in text
    assert client.ask_which(servers, io.StringIO("q\n"), io.StringIO()) is None  # type: ignore[arg-type]
    assert client.ask_which(servers, io.StringIO(""), io.StringIO()) is None  # type: ignore[arg-type]


def test_smallest_reply_is_a_true_lower_bound() -> None:
    """Even the shortest possible reply (empty name, one-digit ports) is at least SMALLEST_REPLY bytes."""
    body = build_reply(Snapshot("", 0, [], False), server_id="00000000", tcp_port=1, udp_port=1, budget=MAX_REPLY)
    assert body is not None and len(body) - len(b',"rooms":[]') >= SMALLEST_REPLY


def test_replies_are_rate_limited_for_the_whole_server() -> None:
    """Past the burst, probes go unanswered until the bucket refills; too-small probes cost no token."""
    now = [100.0]
    service = ChatService(rate=0)
    answering = Discovery(service, tcp_port=1, udp_port=1, clock=lambda: now[0], rate=2, burst=3)
    assert answering.reply(ANYONE, SMALLEST_REPLY - 1) is None
    assert [answering.reply(ANYONE, MAX_REPLY) is not None for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5
    assert answering.reply(ANYONE, MAX_REPLY) is not None and answering.reply(ANYONE, MAX_REPLY) is None
