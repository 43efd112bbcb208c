"""The client's view of a UDP session: its SeqTracker counts loss, reordering, duplicates; /stats shows both views."""

from __future__ import annotations

from chatclient.state import ClientState, SeqTracker


def apply_seqs(state: ClientState, seqs: list[int]) -> None:
    for seq in seqs:
        state.apply({"type": "pong", "id": "keepalive", "t": None, "seq": seq}, 0.0)


def test_client_counts_gaps_reordering_and_duplicates() -> None:
    """Server payloads 1, 2, 5, 3, 5, 7 leave 4 and 6 missing, 3 reordered, one 5 duplicated."""
    state = ClientState(nick="ann", transport="udp")
    apply_seqs(state, [1, 2, 5, 3, 5, 7])
    assert isinstance(state.seq, SeqTracker)
    assert (state.seq.received, state.seq.missing, state.seq.reordered, state.seq.duplicates) == (5, 2, 1, 1)


def test_seq_zero_is_not_counted() -> None:
    """Payloads to an unregistered address carry seq 0 and do not count (docs/protocol.md §3)."""
    state = ClientState(nick="ann", transport="udp")
    state.apply({"type": "challenge", "cookie": "abc", "seq": 0}, 0.0)
    state.apply({"type": "error", "code": "not_joined", "message": "send hello first", "seq": 0}, 0.0)
    assert state.seq.received == 0 and state.seq.gaps == 0


def test_stats_shows_the_servers_view_beside_the_clients() -> None:
    """/stats prints the server's counters, the client's own, and what the fault injection caused."""
    state = ClientState(nick="ann", transport="udp")
    apply_seqs(state, [1, 2, 4, 5])
    lines = state.apply(
        {
            "type": "stats",
            "sent": 6,
            "received": 3,
            "gaps": 0,
            "reordered": 0,
            "duplicates": 0,
            "injected_lost": 1,
            "injected_duplicates": 0,
            "injected_reordered": 0,
            "send_errors": 0,
            "seq": 6,
        },
        0.0,
    )
    texts = [line.text for line in lines]
    assert texts[0].startswith("server's view: sent 6, received 3, gaps 0")
    assert texts[1] == "your view: received 4 before this answer, lost 1, reordered 0, duplicates 0"
    assert (
        texts[2]
        == "the server counts 6 sent, you 5 received or lost: "
        "1 still on the way, or lost with no later message to show the gap"
    )
    assert texts[3] == "of which the server's fault injection caused: lost 1, duplicates 0, reordered 0"


def test_stats_without_injection_has_no_injection_line() -> None:
    """Without fault injection (or over TCP) /stats shows just the two views."""
    state = ClientState(nick="ann")
    lines = state.apply({"type": "stats", "sent": 1, "received": 2, "seq": 2}, 0.0)
    assert len(lines) == 2


def test_stats_over_tcp_agree_with_the_server() -> None:
    """The answer itself is not in the server's `sent`: 19 sent before it, 19 received before it (not 20)."""
    state = ClientState(nick="ann")
    apply_seqs(state, list(range(1, 20)))
    lines = state.apply({"type": "stats", "sent": 19, "received": 7, "seq": 20}, 0.0)
    assert [line.text for line in lines] == [
        "server's view: sent 19, received 7",
        "your view: received 19 before this answer, lost 0, reordered 0, duplicates 0",
    ]
