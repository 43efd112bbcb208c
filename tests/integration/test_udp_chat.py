"""Real UDP server on 127.0.0.1 (same port number as TCP), raw UDP clients beside TCP ones."""

from __future__ import annotations

import socket

import pytest

from chatsrv.udp import UDPOutbox
from lanchat.wire import DEFAULT_MAX_DATAGRAM, decode_payload, encode_payload
from tests.helpers import Client, UDPClient, wait_until


def round_trip(client: UDPClient, marker: str) -> None:
    """A ping answered: the server has handled everything this client sent before it."""
    client.send({"type": "ping", "id": marker})
    client.expect("pong", id=marker)


def test_tcp_and_udp_members_chat_both_ways(server, clients, udp_clients) -> None:
    """A TCP and a UDP member share a room: each sees the other join and speak, with seq from 1."""
    assert server.udp is not None and server.udp.port == server.port
    tom = clients()
    tom.join("tom")
    uma = udp_clients()
    welcome = uma.join("uma")
    assert welcome["seq"] == 1 and welcome["transport"] == "udp"
    assert welcome["max_frame"] == DEFAULT_MAX_DATAGRAM and welcome["peer_timeout"] == 30
    assert welcome["users"] == ["tom", "uma"]
    tom.expect("joined", nick="uma")
    tom.send({"type": "say", "text": "hello over TCP"})
    uma.send({"type": "say", "text": "hello over UDP"})
    for member in (tom, uma):
        texts = [member.expect("message")["text"] for _ in range(2)]
        assert sorted(texts) == ["hello over TCP", "hello over UDP"]
    uma.send({"type": "whisper", "to": "tom", "text": "psst"})
    assert tom.expect("whisper")["from"] == "uma"
    assert uma.expect("whisper")["to"] == "tom"


def test_udp_seq_counts_per_peer(server, udp_clients) -> None:
    """Every payload to a registered peer carries seq 1, 2, 3 ... in send order."""
    uma = udp_clients()
    seen = [uma.join("uma")["seq"]]
    for number in range(5):
        uma.send({"type": "ping", "id": number})
        seen.append(uma.expect("pong", id=number)["seq"])
    assert seen == [1, 2, 3, 4, 5, 6]


def test_challenge_is_at_most_three_times_the_hello(server, udp_clients) -> None:
    """The smallest valid hello gets one challenge, seq 0, no larger than 3x the hello."""
    probe = udp_clients()
    hello = encode_payload({"type": "hello", "nick": "a"})
    probe.send_raw(hello)
    data = probe.recv_datagram()
    assert data is not None
    challenge = decode_payload(data)
    assert challenge["type"] == "challenge" and challenge["seq"] == 0
    assert len(data) <= 3 * len(hello)


def test_cookie_from_one_port_is_refused_from_another(server, clients, udp_clients) -> None:
    """A cookie issued to one source port gets only a new challenge from another port: no welcome."""
    tom = clients()
    tom.join("tom")
    first, second = udp_clients(), udp_clients()
    first.send({"type": "hello", "nick": "mallory"})
    cookie = first.expect("challenge")["cookie"]
    second.send({"type": "hello", "nick": "mallory", "cookie": cookie})
    answer = second.recv()
    assert answer["type"] == "challenge" and answer["cookie"] != cookie and answer["seq"] == 0
    assert server.udp.peer_count() == 0
    tom.send({"type": "who"})
    assert tom.expect("users")["users"] == ["tom"]


def test_repeated_hello_gets_a_fresh_welcome(server, udp_clients) -> None:
    """A registered peer repeating its hello (its welcome may have been lost) gets a new welcome; seq goes on."""
    uma = udp_clients()
    uma.join("uma")
    uma.send({"type": "hello", "nick": "UMA"})
    again = uma.expect("welcome")
    assert again["seq"] == 2 and again["nick"] == "uma"
    uma.send({"type": "hello", "nick": "someone-else"})
    assert uma.expect("error")["code"] == "bad_request"


def test_nick_taken_over_udp_is_refused_and_forgotten(server, clients, udp_clients) -> None:
    """A proven peer whose hello is refused gets the error and is not kept as a peer."""
    clients().join("tom")
    uma = udp_clients()
    uma.send({"type": "hello", "nick": "tom"})
    uma.send({"type": "hello", "nick": "tom", "cookie": uma.expect("challenge")["cookie"]})
    assert uma.expect("error")["code"] == "nick_taken"
    wait_until(lambda: server.udp.peer_count() == 0)


def test_silent_peer_expires_with_reason_timeout(make_server) -> None:
    """With --peer-timeout 1 a silent UDP member is dropped: the room sees left, reason timeout."""
    server = make_server("--rate", "0", "--peer-timeout", "1")
    tom, uma = Client(server.port), UDPClient(server.udp.port)
    try:
        tom.join("tom")
        assert uma.join("uma")["peer_timeout"] == 1
        tom.expect("joined", nick="uma")
        left = tom.expect("left", nick="uma", timeout=4)
        assert left["reason"] == "timeout"
        wait_until(lambda: server.udp.peer_count() == 0)
        uma.send({"type": "say", "text": "am I still here?"})
        error = uma.expect("error")
        assert error["code"] == "not_joined" and error["seq"] == 0
    finally:
        tom.close()
        uma.close()


def test_pings_keep_a_peer_alive(make_server) -> None:
    """A peer that pings every third of peer_timeout stays, well past the timeout."""
    server = make_server("--rate", "0", "--peer-timeout", "0.6")
    uma = UDPClient(server.udp.port)
    try:
        uma.join("uma")
        for number in range(8):  # 8 x 0.2 s = 1.6 s, over twice the timeout
            uma.send({"type": "ping", "id": number})
            uma.expect("pong", id=number)
            uma.recv_datagram(timeout=0.2)
        assert server.udp.peer_count() == 1
    finally:
        uma.close()
        wait_until(lambda: server.udp.peer_count() == 0)


def test_oversized_datagram_is_refused_and_the_peer_stays(server, udp_clients) -> None:
    """A datagram over the limit gets frame_too_large; one of exactly the limit is served; the peer stays."""
    uma = udp_clients()
    uma.join("uma")
    uma.send_raw(b"{" + uma.token_field() + b"," + b" " * DEFAULT_MAX_DATAGRAM + b"}")
    error = uma.expect("error")
    assert error["code"] == "frame_too_large" and error["seq"] == 2
    ping = encode_payload({"type": "ping", "id": "exact", "token": uma.token})
    exact = ping[:-1] + b" " * (DEFAULT_MAX_DATAGRAM - len(ping)) + b"}"  # a ping id is short: pad with spaces
    assert len(exact) == DEFAULT_MAX_DATAGRAM
    uma.send_raw(exact)
    assert uma.expect("pong")["id"] == "exact"
    assert server.udp.peer_count() == 1


def test_oversized_datagram_from_a_stranger_gets_one_small_error(server, udp_clients) -> None:
    """An unregistered address sending too much gets frame_too_large with seq 0, and nothing more."""
    probe = udp_clients()
    probe.send_raw(b"x" * 20000)
    error = probe.expect("error")
    assert error["code"] == "frame_too_large" and error["seq"] == 0
    assert probe.recv_datagram(timeout=0.2) is None


def test_bad_json_from_a_peer_is_recoverable(server, udp_clients) -> None:
    """Bad JSON, not-an-object and an unknown type each get bad_request; the peer goes on chatting.

    Each carries the member's token, which is found in the bytes before any decoding.
    """
    uma = udp_clients()
    uma.join("uma")
    token = uma.token_field()
    for junk in (
        b"{not json " + token,
        b"[1, {" + token + b"}]",
        b'{"type": "dance", ' + token + b"}",
        b"\xff\xfe" + token,
        b"[" * 5000 + token,
    ):
        uma.send_raw(junk)
        assert uma.expect("error")["code"] == "bad_request"
    uma.send({"type": "say", "text": "still here"})
    assert uma.expect("message")["text"] == "still here"


def test_not_joined_for_strangers_within_three_times(server, udp_clients) -> None:
    """Anything but hello from an unknown address gets at most one not_joined, never more than 3x its size."""
    probe = udp_clients()
    say = encode_payload({"type": "say", "text": "hi there", "seq": 1})
    probe.send_raw(say)
    data = probe.recv_datagram()
    assert data is not None and len(data) <= 3 * len(say)
    assert decode_payload(data)["code"] == "not_joined"
    tiny = encode_payload({"type": "ping"})
    probe.send_raw(tiny)  # 15 bytes: a not_joined error would be over 45 bytes, so nothing comes back
    probe.send({"type": "hello", "nick": "probe"})  # the challenge to this comes next, proving the ping was handled
    assert probe.expect("challenge")["type"] == "challenge"
    assert len(probe.datagrams) == 2


def test_bye_forgets_the_peer(server, clients, udp_clients) -> None:
    """bye removes a UDP member: the room sees left reason quit, and the address is a stranger again."""
    tom = clients()
    tom.join("tom")
    uma = udp_clients()
    uma.join("uma")
    uma.send({"type": "bye"})
    assert tom.expect("left", nick="uma")["reason"] == "quit"
    wait_until(lambda: server.udp.peer_count() == 0)
    uma.send({"type": "stats"})
    assert uma.expect("error")["code"] == "not_joined"


def test_client_gaps_are_reported_in_stats(server, udp_clients) -> None:
    """Client seq 1, 2, 5, 3, 5, 6, 7: stats says gaps 2, reordered 1, duplicates 1."""
    uma = udp_clients()
    uma.join("uma")  # seq 1 (hello without cookie), 2 (hello with cookie)
    for seq in (5, 3, 5, 6):
        uma.send({"type": "ping", "id": seq, "seq": seq}, numbered=False)
        uma.expect("pong", id=seq)
    uma.send({"type": "stats", "seq": 7}, numbered=False)
    stats = uma.expect("stats")
    assert (stats["gaps"], stats["reordered"], stats["duplicates"]) == (2, 1, 1)
    assert stats["received"] == 6 and stats["send_errors"] == 0


def test_handshake_hellos_are_not_counted_as_gaps(server, udp_clients) -> None:
    """A client that needed three hellos to register shows no gap: counting starts at the hello that registered it."""
    uma = udp_clients()
    uma.send({"type": "hello", "nick": "uma"})
    uma.send({"type": "hello", "nick": "uma"})
    cookie = [uma.expect("challenge"), uma.expect("challenge")][-1]["cookie"]
    uma.send({"type": "hello", "nick": "uma", "cookie": cookie})
    uma.expect("welcome")
    uma.send({"type": "stats"})
    assert uma.expect("stats")["gaps"] == 0


def test_welcome_history_fits_one_datagram(server, clients, udp_clients) -> None:
    """With 50 long messages in history, the UDP welcome still fits the datagram limit and has the latest ones."""
    tom = clients()
    tom.join("tom")
    for number in range(50):
        tom.send({"type": "say", "text": f"{number:02d} " + "é" * 1900})
    for _ in range(50):
        tom.expect("message")
    uma = udp_clients()
    uma.join("uma")
    welcome_bytes = uma.datagrams[-1]
    welcome = decode_payload(welcome_bytes)
    assert len(welcome_bytes) <= DEFAULT_MAX_DATAGRAM
    assert welcome["history"] and welcome["history"][-1]["text"].startswith("49 ")


def test_a_thousand_pings_all_answered_in_order(server, udp_clients) -> None:
    """Without injection, 1,000 pings on loopback are all answered, in order, seq without a gap."""
    uma = udp_clients()
    uma.join("uma")
    window = 50  # keep the server's receive queue short: loopback drops when a socket buffer is full
    answered: list[int] = []
    seqs: list[int] = []
    sent = 0
    while len(answered) < 1000:
        while sent < 1000 and sent - len(answered) < window:
            uma.send({"type": "ping", "id": sent})
            sent += 1
        pong = uma.expect("pong", timeout=5)
        answered.append(pong["id"])
        seqs.append(pong["seq"])
    assert answered == list(range(1000))
    assert seqs == list(range(2, 1002))


def test_forged_hello_from_another_address_gets_one_small_challenge(server, clients, udp_clients) -> None:
    """A hello from 127.0.0.99 that never completes the handshake gets one challenge (<= 3x) and nothing else."""
    tom = clients()
    tom.join("tom")
    victim = udp_clients(source="127.0.0.99")
    hello = encode_payload({"type": "hello", "nick": "forged", "room": "lobby"})
    victim.send_raw(hello)
    # Traffic after the forgery: a real UDP member joins and chats, the TCP member talks.
    uma = udp_clients()
    uma.join("uma")
    tom.send({"type": "say", "text": "after the forgery"})
    uma.expect("message")
    round_trip(uma, "done")
    while victim.recv_datagram(timeout=0.2) is not None:
        pass
    assert len(victim.datagrams) == 1
    assert decode_payload(victim.datagrams[0])["type"] == "challenge"
    assert len(victim.datagrams[0]) <= 3 * len(hello)
    tom.send({"type": "who"})
    assert tom.expect("users")["users"] == ["tom", "uma"]


def test_failed_sends_are_counted_never_raised(server, udp_clients) -> None:
    """A send the kernel refuses (here EMSGSIZE) is counted in send_errors; the outbox still says all is well."""
    uma = udp_clients()
    uma.join("uma")
    outbox = UDPOutbox(server.udp, uma.address)
    assert outbox.put([b'{"x":"' + b"x" * 70000 + b'"}', b'{"type":"notice","text":"small"}'], 0) is True
    assert outbox.counters["send_errors"] == 1
    assert uma.expect("notice")["text"] == "small"
    assert server.udp.send_errors >= 1


def test_vanished_udp_member_does_not_slow_the_room(server, clients, udp_clients) -> None:
    """A UDP member whose socket is gone costs the room nothing: TCP members go on, the server counts no block."""
    tom, tess = clients(), clients()
    tom.join("tom")
    tess.join("tess")
    ghost = udp_clients()
    ghost.join("ghost")
    ghost.close()  # the kernel now answers with ICMP port unreachable
    for number in range(200):
        tom.send({"type": "say", "text": f"m{number}"})
    for number in range(200):
        assert tess.expect("message")["text"] == f"m{number}"
    assert server.udp.peer_count() == 1  # still a member until it times out


def test_shutdown_tells_udp_members(make_server) -> None:
    """Stopping the server sends each UDP member a notice and left reason shutdown."""
    server = make_server("--rate", "0")
    uma = UDPClient(server.udp.port)
    try:
        uma.join("uma")
        server.stop()
        assert "shutting down" in uma.expect("notice")["text"]
        assert uma.expect("left", nick="uma")["reason"] == "shutdown"
    finally:
        uma.close()


def test_shutdown_notice_goes_through_the_delay_line(make_server) -> None:
    """With --udp-delay the notice queued at shutdown is still delivered (flushed when the server stops)."""
    server = make_server("--rate", "0", "--udp-delay", "300")
    uma = UDPClient(server.udp.port)
    try:
        uma.join("uma")
        server.stop()
        assert "shutting down" in uma.expect("notice", timeout=2)["text"]
        assert uma.expect("left", nick="uma")["reason"] == "shutdown"
    finally:
        uma.close()


def test_no_udp_flag(make_server) -> None:
    """--no-udp serves TCP only: nothing answers on the UDP port."""
    server = make_server("--no-udp")
    assert server.udp is None
    probe = UDPClient(server.port)
    try:
        probe.send({"type": "hello", "nick": "uma"})
        with pytest.raises(AssertionError):
            probe.expect("challenge", timeout=0.3)
    finally:
        probe.close()


def test_udp_port_can_differ(make_server) -> None:
    """--udp-port 0 puts UDP on its own free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        taken = holder.getsockname()[1]
        server = make_server("--udp-port", "0")
        assert server.udp is not None and server.udp.port not in (0, taken)
        uma = UDPClient(server.udp.port)
        try:
            assert uma.join("uma")["transport"] == "udp"
        finally:
            uma.close()
