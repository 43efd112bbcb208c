"""The fault injector: deterministic under a seed, and it counts exactly what a receiver will see."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatsrv.faults import REORDER_HOLD, FaultInjector, Impairment, parse_delay
from lanchat.wire import SeqTracker, encode_payload, with_seq


def run(impairment: Impairment, count: int = 200, spacing: float = 0.001) -> tuple[list[int], dict[str, int]]:
    """Send `count` datagrams (their payload is their index), `spacing` s apart; return the arrival order."""
    injector = FaultInjector(impairment)
    path = injector.open_path("peer")
    arrived: list[int] = []
    now = 0.0
    for index in range(1, count + 1):
        arrived += [int(data) for _, data in injector.release_due(now)]
        arrived += [int(data) for _, data in injector.submit(path, str(index).encode(), now)]
        now += spacing
    arrived += [int(data) for _, data in injector.drain()]
    return arrived, path.counters


def test_same_seed_same_fate() -> None:
    """Two runs with the same seed lose, copy and reorder the very same datagrams."""
    settings = Impairment(loss=20, duplicate=10, reorder=10, delay=5, jitter=5, seed=7)
    assert run(settings) == run(settings)


def test_another_seed_another_fate() -> None:
    """A different seed gives a different pattern."""
    assert run(Impairment(loss=30, seed=1))[0] != run(Impairment(loss=30, seed=2))[0]


def test_loss_choice_does_not_depend_on_other_settings() -> None:
    """Turning duplication on does not change which datagrams --udp-loss drops."""
    lost_alone = set(range(1, 201)) - set(run(Impairment(loss=25, seed=3))[0])
    lost_with_dup = set(range(1, 201)) - set(run(Impairment(loss=25, duplicate=50, seed=3))[0])
    assert lost_alone == lost_with_dup and lost_alone


def test_no_impairment_passes_everything_at_once_in_order() -> None:
    """Without settings every datagram goes out immediately, once, in order."""
    injector = FaultInjector(Impairment())
    path = injector.open_path("peer")
    for index in range(1, 51):
        assert injector.submit(path, b"%d" % index, 0.0) == [("peer", b"%d" % index)]
    assert injector.next_due() is None
    assert path.counters == {"injected_lost": 0, "injected_duplicates": 0, "injected_reordered": 0}


def test_loss_rate_is_roughly_the_setting() -> None:
    """--udp-loss 30 drops about 30 % of 2000 datagrams, and counts each one."""
    arrived, counters = run(Impairment(loss=30, seed=1), count=2000)
    assert 500 < counters["injected_lost"] < 700
    assert len(arrived) == 2000 - counters["injected_lost"]


def test_duplicate_follows_its_original() -> None:
    """A duplicated datagram is sent twice in a row and counted once."""
    arrived, counters = run(Impairment(duplicate=100, seed=1), count=3)
    assert arrived == [1, 1, 2, 2, 3, 3] and counters["injected_duplicates"] == 3


def test_reordered_datagram_goes_after_the_next_one() -> None:
    """A datagram picked for reordering is held until the next one to that peer has gone."""
    injector = FaultInjector(Impairment(reorder=100, seed=1))
    path = injector.open_path("peer")
    assert injector.submit(path, b"1", 0.0) == []  # held
    assert injector.submit(path, b"2", 0.1) == [("peer", b"2"), ("peer", b"1")]
    assert path.counters["injected_reordered"] == 1


def test_held_datagram_without_successor_goes_in_order_after_the_hold() -> None:
    """With nothing to overtake it, a held datagram leaves after REORDER_HOLD and is not counted as reordered."""
    injector = FaultInjector(Impairment(reorder=100, seed=1))
    path = injector.open_path("peer")
    assert injector.submit(path, b"1", 0.0) == []
    assert injector.next_due() == pytest.approx(REORDER_HOLD)
    assert injector.release_due(REORDER_HOLD - 0.01) == []
    assert injector.release_due(REORDER_HOLD) == [("peer", b"1")]
    assert path.counters["injected_reordered"] == 0


def test_delay_holds_every_datagram_until_due() -> None:
    """--udp-delay 50 sends nothing before 50 ms and everything, in order, at 50 ms."""
    injector = FaultInjector(Impairment(delay=50, seed=1))
    path = injector.open_path("peer")
    assert injector.submit(path, b"1", 0.0) == [] and injector.submit(path, b"2", 0.0) == []
    assert injector.next_due() == pytest.approx(0.05)
    assert injector.release_due(0.049) == []
    assert injector.release_due(0.050) == [("peer", b"1"), ("peer", b"2")]


def test_jitter_stays_within_its_bounds() -> None:
    """--udp-delay 50:10 delays each datagram by 40 to 60 ms."""
    injector = FaultInjector(Impairment(delay=50, jitter=10, seed=4))
    path = injector.open_path("peer")
    for index in range(100):
        injector.submit(path, b"%d" % index, 0.0)
    dues = sorted(entry.due for entry in injector._queue)
    assert 0.040 <= dues[0] and dues[-1] <= 0.060 and dues[-1] - dues[0] > 0.015


def test_closed_path_gets_nothing_new_but_in_flight_datagrams_still_go() -> None:
    """After a peer is forgotten nothing new is taken, but what was already delayed still arrives."""
    injector = FaultInjector(Impairment(delay=50, seed=1))
    path = injector.open_path("peer")
    assert injector.submit(path, b"last words", 0.0) == []
    injector.close_path(path)
    assert injector.submit(path, b"too late", 0.0) == []
    assert injector.drain() == [("peer", b"last words")]


def test_paths_are_counted_separately() -> None:
    """Each peer has its own counters."""
    injector = FaultInjector(Impairment(loss=50, seed=5))
    first, second = injector.open_path("a"), injector.open_path("b")
    for index in range(100):
        injector.submit(first, b"%d" % index, 0.0)
    assert first.counters["injected_lost"] > 0 and second.counters["injected_lost"] == 0


@given(
    loss=st.sampled_from([0, 10, 50]),
    duplicate=st.sampled_from([0, 10, 50]),
    reorder=st.sampled_from([0, 10, 50]),
    delay=st.sampled_from([0, 2, 20]),
    jitter=st.sampled_from([0, 2, 20]),
    seed=st.integers(0, 1000),
)
def test_counters_match_what_a_receiver_counts(
    loss: float, duplicate: float, reorder: float, delay: float, jitter: float, seed: int
) -> None:
    """A SeqTracker fed the datagrams in the order they leave counts what the injector says it did."""
    arrived, counters = run(Impairment(loss, duplicate, reorder, delay, jitter, seed), count=150)
    receiver = SeqTracker()
    for index in arrived:
        receiver.add(index)
    assert receiver.received == 150 - counters["injected_lost"]
    assert receiver.duplicates == counters["injected_duplicates"]
    assert receiver.reordered == counters["injected_reordered"]


@pytest.mark.parametrize(
    ("text", "expected"), [("50", (50.0, 0.0)), ("50:10", (50.0, 10.0)), ("0", (0.0, 0.0)), ("2.5:0.5", (2.5, 0.5))]
)
def test_parse_delay(text: str, expected: tuple[float, float]) -> None:
    """MS and MS:JITTER are read as milliseconds."""
    assert parse_delay(text) == expected


@pytest.mark.parametrize("text", ["", "fast", "50:", "-5", "50:-1", "20000", "1:2:3"])
def test_parse_delay_refuses_nonsense(text: str) -> None:
    """Anything else is a ValueError with a readable message."""
    with pytest.raises(ValueError, match="MS or MS:JITTER|0 to 10000 ms"):
        parse_delay(text)


def test_impairment_is_described_for_people_and_for_welcome() -> None:
    """The start-up line and the welcome field say every setting and the seed."""
    settings = Impairment(loss=10, delay=50, jitter=10, seed=3)
    assert settings.describe() == "loss 10%, duplicate 0%, reorder 0%, delay 50±10 ms, seed 3"
    assert settings.as_dict() == {"loss": 10, "duplicate": 0, "reorder": 0, "delay_ms": 50, "jitter_ms": 10, "seed": 3}
    assert settings.active and not Impairment(seed=3).active


def lost_seqs_per_member(join_order: list[str], spacing: float, interleave: bool) -> dict[str, list[int]]:
    """Two members get 100 payloads each (a welcome, then messages); return the seqs each one lost.

    `join_order`, `spacing` (the clock between datagrams) and `interleave`
    (turns or one member after the other) stand for what timing changes
    between two runs of the same lab.
    """
    injector = FaultInjector(Impairment(loss=20, seed=3))
    paths = {nick: injector.open_path(("127.0.0.1", 40000 + number)) for number, nick in enumerate(join_order)}
    streams = {
        nick: [with_seq(encode_payload({"type": "welcome", "nick": nick, "room": "lobby"}), 1)]
        + [with_seq(encode_payload({"type": "message", "text": f"m{seq}"}), seq) for seq in range(2, 101)]
        for nick in join_order
    }
    order = (
        [(nick, index) for index in range(100) for nick in join_order]
        if interleave
        else [(nick, index) for nick in join_order for index in range(100)]
    )
    sent: dict[str, list[int]] = {nick: [] for nick in join_order}
    now = 0.0
    for nick, index in order:
        if injector.submit(paths[nick], streams[nick][index], now):
            sent[nick].append(index + 1)
        now += spacing
    return {nick: sorted(set(range(1, 101)) - set(sent[nick])) for nick in sorted(join_order)}


def test_same_seed_loses_the_same_seqs_of_the_same_member_whatever_the_timing() -> None:
    """--udp-loss 20 --seed 3: u1 and u2 lose the same seqs when they join in another order, at another pace,
    their datagrams interleaved differently (with one shared random stream, each of these changed the losses)."""
    first = lost_seqs_per_member(["u1", "u2"], spacing=0.001, interleave=True)
    second = lost_seqs_per_member(["u2", "u1"], spacing=0.013, interleave=False)
    assert first == second
    assert first["u1"] != first["u2"] and 5 < len(first["u1"]) < 40  # the members' fates differ, and ~20 % is lost


def test_seq_is_read_from_the_payload() -> None:
    """The fate belongs to the seq the datagram carries, not to its place in the submit order."""
    settings = Impairment(loss=50, seed=9)
    bodies = {seq: with_seq(encode_payload({"type": "message", "text": "x"}), seq) for seq in range(2, 60)}

    def lost(order: list[int]) -> set[int]:
        injector = FaultInjector(settings)
        path = injector.open_path("peer")
        return {seq for seq in order if not injector.submit(path, bodies[seq], 0.0)}

    assert lost(list(range(2, 60))) == lost(list(range(59, 1, -1)))


def test_a_member_can_be_named_when_the_path_opens() -> None:
    """open_path(destination, member=...) names the member for the fate hash instead of its welcome's nick."""
    settings = Impairment(loss=50, seed=2)
    body = {seq: with_seq(encode_payload({"type": "message", "text": "x"}), seq) for seq in range(1, 80)}

    def kept(member: str) -> list[int]:
        injector = FaultInjector(settings)
        path = injector.open_path("peer", member=member)
        return [seq for seq in body if injector.submit(path, body[seq], 0.0)]

    assert kept("u1") == kept("u1") != kept("u2")
