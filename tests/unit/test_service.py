"""ChatService through a fake outbox and a fake clock: no sockets, no threads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatsrv.service import ChatService
from lanchat.wire import ProtocolError, encode_payload
from tests.support.fakes import Clock, FakeOutbox, connect, member, send


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(clock: Clock) -> ChatService:
    return ChatService(clock=clock, rate=0, server_name="test")


def test_hello_gets_welcome_and_room_sees_joined(service: ChatService, clock: Clock) -> None:
    """hello -> welcome with users, transport and max_frame; the others see joined."""
    _, alice = member(service, "alice")
    _, bob = member(service, "bob")
    welcome = bob.of_type("welcome")[0]
    assert welcome["users"] == ["alice", "bob"] and welcome["room"] == "lobby"
    assert welcome["transport"] == "tcp" and welcome["max_frame"] == 65536 and welcome["seq"] == 1
    assert "peer_timeout" not in welcome
    assert alice.last() == {"type": "joined", "nick": "bob", "room": "lobby", "ts": clock.now, "seq": 2}


def test_say_reaches_everyone_with_increasing_ids(service: ChatService) -> None:
    """say is broadcast to the room, the sender included, with server-unique increasing ids."""
    alice_session, alice = member(service, "alice")
    _, bob = member(service, "bob")
    send(service, alice_session, type="say", text="  hi  ")
    send(service, alice_session, type="say", text="waves", action=True)
    messages = bob.of_type("message")
    assert [m["text"] for m in messages] == ["hi", "waves"]
    assert messages[0]["id"] < messages[1]["id"] and messages[1]["action"] is True and "action" not in messages[0]
    without_seq = [{k: v for k, v in m.items() if k != "seq"} for m in alice.of_type("message")]
    assert without_seq == [{k: v for k, v in m.items() if k != "seq"} for m in messages]


def test_rooms_are_separate(service: ChatService) -> None:
    """A message stays in its room."""
    alice_session, _ = member(service, "alice", room="maths")
    _, bob = member(service, "bob", room="art")
    send(service, alice_session, type="say", text="x")
    assert bob.of_type("message") == []


def test_whisper_goes_to_both_ends_only(service: ChatService) -> None:
    """A whisper reaches the target and the sender, in any room, and no one else."""
    alice_session, alice = member(service, "alice")
    _, bob = member(service, "bob", room="other")
    _, carol = member(service, "carol")
    send(service, alice_session, type="whisper", to="BOB", text="psst")
    assert bob.last()["type"] == "whisper" and bob.last()["from"] == "alice" and bob.last()["to"] == "bob"
    assert alice.last()["type"] == "whisper"
    assert carol.of_type("whisper") == []


def test_whisper_to_nobody(service: ChatService) -> None:
    """Whispering to an unknown nick is no_such_user."""
    alice_session, alice = member(service, "alice")
    send(service, alice_session, type="whisper", to="ghost", text="boo")
    assert alice.last()["code"] == "no_such_user"


def test_nick_rename_and_taken(service: ChatService) -> None:
    """nick renames (room sees renamed); a nick in use in another case is nick_taken."""
    alice_session, alice = member(service, "alice")
    _, bob = member(service, "bob")
    send(service, alice_session, type="nick", nick="BOB")
    assert alice.last()["code"] == "nick_taken"
    send(service, alice_session, type="nick", nick="alicia")
    assert bob.last()["type"] == "renamed" and (bob.last()["old"], bob.last()["new"]) == ("alice", "alicia")
    assert service.registry.find("ALICIA") is alice_session and service.registry.find("alice") is None


def test_a_lookalike_nick_is_refused_as_looking_like_the_nick_in_use(service: ChatService) -> None:
    """Issue 20's trial: "aIice" (capital I) was refused as 'the nick "aIice" is already in use'."""
    member(service, "alice")
    session, outbox = connect(service)
    send(service, session, type="hello", nick="aIice")
    refusal = outbox.last()
    assert (refusal["code"], refusal["reason"]) == ("nick_taken", "nick_lookalike")
    assert refusal["args"] == {"nick": "aIice", "held": "alice"}
    assert refusal["message"] == '"aIice" looks too much like "alice", who is here'
    send(service, session, type="hello", nick="alice")
    assert outbox.last()["message"] == 'the nick "alice" is already in use'
    bob_session, bob = member(service, "bob")
    send(service, bob_session, type="nick", nick="a1ice")
    assert bob.last()["code"] == "nick_taken"
    assert bob.last()["message"] == '"a1ice" looks too much like "alice", who is here'


def test_hello_with_taken_nick_is_recoverable(service: ChatService) -> None:
    """A taken nick in hello is nick_taken; the connection may try another nick."""
    member(service, "alice")
    session, outbox = connect(service)
    send(service, session, type="hello", nick="Alice")
    assert outbox.last()["code"] == "nick_taken" and not session.closed
    send(service, session, type="hello", nick="alice2")
    assert outbox.last()["type"] == "welcome"


def test_join_moves_between_rooms(service: ChatService) -> None:
    """join: old room sees left(moved), new room sees joined, the mover gets welcome."""
    alice_session, alice = member(service, "alice")
    _, bob = member(service, "bob")
    _, carol = member(service, "carol", room="Maths")
    send(service, alice_session, type="join", room="maths")
    assert bob.last() == {**bob.last(), "type": "left", "nick": "alice", "reason": "moved"}
    assert carol.last()["type"] == "joined" and carol.last()["room"] == "Maths"
    assert alice.last()["type"] == "welcome" and alice.last()["room"] == "Maths"
    send(service, alice_session, type="join", room="MATHS")
    assert alice.last()["type"] == "welcome" and carol.last()["type"] == "joined"


def test_who_rooms_ping_stats(service: ChatService, clock: Clock) -> None:
    """who lists users, rooms lists non-empty rooms, ping echoes id and t, stats counts."""
    alice_session, alice = member(service, "alice")
    member(service, "bob", room="art")
    send(service, alice_session, type="who")
    assert alice.last()["users"] == ["alice"]
    send(service, alice_session, type="who", room="ART")
    assert alice.last() == {**alice.last(), "type": "users", "room": "art", "users": ["bob"]}
    send(service, alice_session, type="rooms")
    assert alice.last()["rooms"] == [{"name": "art", "users": 1}, {"name": "lobby", "users": 1}]
    send(service, alice_session, type="ping", id=7, t=1.25)
    assert alice.last() == {"type": "pong", "id": 7, "t": 1.25, "ts": clock.now, "seq": alice.last()["seq"]}
    send(service, alice_session, type="ping")
    assert alice.last()["id"] is None and alice.last()["t"] is None
    send(service, alice_session, type="stats")
    assert alice.last()["received"] == 7 and alice.last()["sent"] == len(alice.payloads) - 1
    assert "gaps" not in alice.last()


def test_bye_leaves_with_reason_quit_and_closes(service: ChatService) -> None:
    """bye: the room sees left(quit) and the outbox is closed."""
    alice_session, alice = member(service, "alice")
    _, bob = member(service, "bob")
    send(service, alice_session, type="bye")
    assert bob.last()["reason"] == "quit" and alice.closed and alice_session.closed


def test_disconnect_reason_lost(service: ChatService) -> None:
    """A dropped connection is left(lost)."""
    alice_session, _ = member(service, "alice")
    _, bob = member(service, "bob")
    service.disconnect(alice_session, "lost")
    assert bob.last()["reason"] == "lost"
    service.disconnect(alice_session, "lost")
    assert len(bob.of_type("left")) == 1


def test_not_joined_before_hello(service: ChatService) -> None:
    """Anything but hello first is not_joined; bye before hello closes a TCP connection."""
    session, outbox = connect(service)
    send(service, session, type="say", text="hi")
    assert outbox.last()["code"] == "not_joined" and not session.closed
    send(service, session, type="bye")
    assert outbox.last()["code"] == "not_joined" and session.closed and outbox.closed


def test_second_hello_on_tcp_is_bad_request(service: ChatService) -> None:
    """A second hello on a joined TCP connection is bad_request."""
    session, outbox = member(service, "alice")
    send(service, session, type="hello", nick="alice")
    assert outbox.last()["code"] == "bad_request"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"type": "say", "text": "\x1b[31mred"}, "text_invalid"),
        ({"type": "say", "text": "bell\x07"}, "text_invalid"),
        ({"type": "nick", "nick": "has space"}, "nick_invalid"),
        ({"type": "join", "room": "#bad"}, "room_invalid"),
        ({"type": "unknown"}, "bad_request"),
        ({"type": "say", "text": 3}, "bad_request"),
    ],
)
def test_bad_fields_are_recoverable(service: ChatService, payload: dict[str, Any], code: str) -> None:
    """A bad field gets its error code and the session stays open; others see nothing."""
    session, outbox = member(service, "alice")
    _, bob = member(service, "bob")
    seen = len(bob.payloads)
    send(service, session, **payload)
    assert outbox.last()["code"] == code and not session.closed
    assert len(bob.payloads) == seen


def test_bad_json_in_a_batch_does_not_stop_the_batch(service: ChatService) -> None:
    """Payloads after a broken one in the same batch are still handled, in order."""
    session, outbox = member(service, "alice")
    service.receive(session, [b"[1]", encode_payload({"type": "say", "text": "after"})])
    assert [p["type"] for p in outbox.payloads[-2:]] == ["error", "message"]
    assert outbox.puts == 2  # welcome, then the whole batch in one put


def test_twenty_errors_in_a_row_close(service: ChatService) -> None:
    """20 errors in a row close the session with reason error; a success resets the count."""
    session, outbox = member(service, "alice")
    _, bob = member(service, "bob")
    service.receive(session, [b"{}"] * 19 + [encode_payload({"type": "ping"})] + [b"{}"] * 19)
    assert not session.closed
    service.receive(session, [b"{}"])
    assert session.closed and outbox.closed and bob.last()["reason"] == "error"


def test_rate_limit_then_flooder_closed(clock: Clock) -> None:
    """Past the burst, say is rate_limited (recoverable); a flooder is closed with reason error."""
    service = ChatService(clock=clock, rate=5, burst=3)
    session, outbox = member(service, "alice")
    _, bob = member(service, "bob")
    for _ in range(3):
        send(service, session, type="say", text="x")
    send(service, session, type="say", text="x")
    assert outbox.last()["code"] == "rate_limited" and not session.closed
    clock.now += 1.0  # five more tokens
    send(service, session, type="say", text="ok again")
    assert bob.of_type("message")[-1]["text"] == "ok again"
    service.receive(session, [encode_payload({"type": "say", "text": "flood"})] * 40)
    assert session.closed and bob.last()["reason"] == "error"


def test_server_full_and_per_ip_limit(clock: Clock) -> None:
    """connect beyond max_clients or max_per_ip raises server_full."""
    service = ChatService(clock=clock, max_clients=3, max_per_ip=2)
    connect(service, host="10.0.0.1")
    connect(service, host="10.0.0.1")
    with pytest.raises(ProtocolError) as caught:
        connect(service, host="10.0.0.1")
    assert caught.value.code == "server_full"
    connect(service, host="10.0.0.2")
    with pytest.raises(ProtocolError):
        connect(service, host="10.0.0.3")


def test_slow_member_removed_others_unaffected(service: ChatService) -> None:
    """A member whose outbox overflows leaves with reason slow; the rest get every message."""
    alice_session, alice = member(service, "alice")
    slow_session, slow = member(service, "slow", outbox=FakeOutbox(capacity=4))
    for number in range(10):
        send(service, alice_session, type="say", text=str(number))
    assert slow_session.closed and slow.closed
    assert [m["text"] for m in alice.of_type("message")] == [str(n) for n in range(10)]
    assert alice.of_type("left")[0]["nick"] == "slow" and alice.of_type("left")[0]["reason"] == "slow"


def test_history_in_welcome_trimmed_to_max_frame(service: ChatService) -> None:
    """welcome carries recent messages, oldest first, only as many as fit max_frame."""
    alice_session, _ = member(service, "alice")
    for number in range(60):
        send(service, alice_session, type="say", text=f"message {number:02d} " + "x" * 100)
    _, bob = member(service, "bob")
    history = bob.of_type("welcome")[0]["history"]
    assert len(history) == 50 and history[-1]["text"].startswith("message 59")
    small_session, small = connect(service, max_frame=1024)
    send(service, small_session, type="hello", nick="small")
    welcome_body = json.dumps(small.last(), ensure_ascii=False, separators=(",", ":")).encode()
    assert small.last()["type"] == "welcome" and 0 < len(small.last()["history"]) < 10
    assert len(welcome_body) <= 1024 and small.last()["history"][-1]["text"].startswith("message 59")


def test_udp_repeated_hello_gets_fresh_welcome(service: ChatService) -> None:
    """A registered UDP peer's repeated hello (same nick, any case) is answered with a welcome; seq keeps counting."""
    session, outbox = member(service, "alice", transport="udp")
    assert outbox.last()["peer_timeout"] == 30.0
    send(service, session, type="hello", nick="ALICE")
    assert outbox.last()["type"] == "welcome" and outbox.last()["seq"] == 2
    send(service, session, type="hello", nick="bob")
    assert outbox.last()["code"] == "bad_request"


def test_udp_peers_expire(service: ChatService, clock: Clock) -> None:
    """UDP peers silent for peer_timeout are dropped with reason timeout; TCP ones are not."""
    udp_session, _ = member(service, "u", transport="udp")
    _, tcp = member(service, "t")
    clock.now += 29
    assert service.expire_idle() == []
    clock.now += 1
    assert service.expire_idle() == [udp_session]
    assert tcp.last()["type"] == "left" and tcp.last()["reason"] == "timeout"


def test_client_seq_counted_for_udp_stats(service: ChatService) -> None:
    """Client seq values feed gaps, reordered and duplicates in a UDP peer's stats."""
    session, outbox = member(service, "u", transport="udp")
    for seq in (1, 2, 5, 3, 3):
        send(service, session, type="ping", seq=seq)
    send(service, session, type="stats", seq=6)
    stats = outbox.last()
    assert (stats["gaps"], stats["reordered"], stats["duplicates"]) == (2, 1, 1)


def test_shutdown_tells_everyone(service: ChatService) -> None:
    """shutdown: each member gets a notice and left(shutdown); every outbox is closed."""
    _, alice = member(service, "alice")
    _, bob = member(service, "bob")
    service.shutdown()
    for outbox in (alice, bob):
        assert [p["type"] for p in outbox.payloads[-2:]] == ["notice", "left"]
        assert outbox.last()["reason"] == "shutdown" and outbox.closed
    assert not service.sessions


def test_batch_order_with_personal_payloads_between_broadcasts(service: ChatService) -> None:
    """Within one batch, a member's own replies stay in order between the room's broadcasts."""
    alice_session, alice = member(service, "alice")
    _, bob = member(service, "bob")
    start = len(alice.payloads)
    service.receive(
        alice_session,
        [
            encode_payload({"type": "say", "text": "a"}),
            encode_payload({"type": "ping", "id": 1}),
            encode_payload({"type": "say", "text": "b"}),
        ],
    )
    got = [(p["type"], p.get("text")) for p in alice.payloads[start:]]
    assert got == [("message", "a"), ("pong", None), ("message", "b")]
    assert [p["text"] for p in bob.of_type("message")] == ["a", "b"]
    seqs = [p["seq"] for p in alice.payloads]
    assert seqs == list(range(1, len(seqs) + 1))


def test_batch_follows_members_moving_between_rooms(service: ChatService) -> None:
    """A member who leaves a room mid-batch gets none of its later broadcasts; one who arrives gets only those after."""
    alice_session, alice = member(service, "alice")
    _, bob = member(service, "bob")
    _, carol = member(service, "carol", room="other")
    service.receive(
        alice_session,
        [
            encode_payload({"type": "say", "text": "1"}),
            encode_payload({"type": "join", "room": "other"}),
            encode_payload({"type": "say", "text": "2"}),
            encode_payload({"type": "join", "room": "lobby"}),
            encode_payload({"type": "say", "text": "3"}),
        ],
    )
    assert [p["text"] for p in bob.of_type("message")] == ["1", "3"]
    assert [p["text"] for p in carol.of_type("message")] == ["2"]
    assert [p["text"] for p in alice.of_type("message")] == ["1", "2", "3"]
    assert [p["type"] for p in bob.payloads[-3:]] == ["left", "joined", "message"]
    assert alice.of_type("left") == []  # the room she left is told, she is not
