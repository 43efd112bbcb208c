"""Pure arithmetic of the lab: percentiles, RFC 3550 jitter, sticky pieces, summaries."""

from __future__ import annotations

import math

import pytest

from lanchat_lab.measure import (
    binomial_bound,
    lab_text,
    parse_lab_text,
    percentile,
    rfc3550_jitter,
    summarize,
)
from lanchat_lab.report import compare_report, table
from lanchat_lab.sticky import pieces_of_chunks


def test_lab_text_round_trip_and_padding() -> None:
    """A lab message carries origin, index and send time, padded to the asked size."""
    text = lab_text("udp", 17, 1712345678.123456, size=60)
    assert len(text) == 60
    assert parse_lab_text(text) == ("udp", 17, 1712345678.123456)
    assert parse_lab_text("hello there") is None
    assert parse_lab_text("lab tcp x 1.0") is None


def test_percentile_nearest_rank() -> None:
    """Nearest-rank percentiles of 1..100 are the values themselves; empty gives NaN."""
    values = list(range(100, 0, -1))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert math.isnan(percentile([], 0.5))


def test_jitter_is_zero_for_constant_delay_and_grows_with_variation() -> None:
    """RFC 3550 jitter ignores a constant delay and follows |D| with gain 1/16."""
    steady = [(i * 0.01, i * 0.01 + 0.005) for i in range(50)]
    assert rfc3550_jitter(steady) == pytest.approx(0.0)
    # One arrival 16 ms late: D = 0.016 once, then -0.016 back: J = 0.001 then 0.001 + (0.016 - 0.001)/16.
    bumpy = [(0.0, 0.0), (0.01, 0.026), (0.02, 0.02)]
    assert rfc3550_jitter(bumpy) == pytest.approx(0.001 + (0.016 - 0.001) / 16)


def test_binomial_bound_narrows_with_more_trials() -> None:
    """The band around p shrinks like 1/sqrt(n)."""
    low_small, high_small = binomial_bound(100, 0.2)
    low_big, high_big = binomial_bound(10_000, 0.2)
    assert low_small < low_big < 0.2 < high_big < high_small


def test_pieces_of_chunks_finds_merged_and_split_messages() -> None:
    """Sender boundaries inside receiver chunks: whole, start, middle and end pieces."""
    pieces = pieces_of_chunks([3, 3, 10], [5, 4, 3, 4])
    assert pieces == [
        [(0, "whole", 3), (1, "start", 2)],
        [(1, "end", 1), (2, "start", 3)],
        [(2, "middle", 3)],
        [(2, "end", 4)],
    ]


def _record(transport: str, arrivals: list[list[object]], seqs: list[int], **extra: object) -> dict[str, object]:
    record: dict[str, object] = {
        "nick": "b",
        "transport": transport,
        "join_seconds": 0.002,
        "seqs": seqs,
        "arrivals": arrivals,
        "sent_messages": 2,
        "bytes_in": 1000,
        "bytes_out": 100,
        "packets_in": 10,
        "packets_out": 5,
        "retransmits": None,
        "stats": {"type": "stats", "sent": 9, "received": 3, "gaps": 1, "injected_lost": 2},
        "errors": {},
    }
    record.update(extra)
    return record


def test_summarize_counts_loss_reorder_and_duplicates_from_seq() -> None:
    """A UDP bot that saw seq 1,2,4,3,4 and missed 6 reports 1 missing, 1 reordered, 1 duplicate."""
    arrivals = [
        ["udp", 0, 10.0, 10.001],
        ["udp", 1, 10.01, 10.013],
        ["udp", 1, 10.01, 10.014],
        ["tcp", 0, 10.0, 10.002],
    ]
    record = _record("udp", arrivals, [1, 2, 4, 3, 4, 5, 7])
    summary = summarize("udp", [record], other_sent=1, other_bots=1)
    assert (summary.sent, summary.expected, summary.delivered, summary.lost) == (2, 2, 2, 0)
    assert (summary.seq_total, summary.seq_lost, summary.reordered, summary.duplicated) == (7, 1, 1, 1)
    assert summary.upstream_gaps == 1
    assert summary.server == {"injected_lost": 2}
    assert summary.from_other == (1, 1)
    assert summary.latency_ms["max"] == pytest.approx(3.0)
    assert summary.header_bytes == pytest.approx(28 * 15 / 7)
    text = compare_report(
        {
            "setup": {
                "bots_per_transport": 1,
                "messages_per_transport": 2,
                "rate": 10.0,
                "mode": "loopback",
                "server": "127.0.0.1:1",
                "udp_faults": [],
                "netns_loss": None,
                "netns_rate": None,
                "duration": 1.0,
                "when": "now",
            },
            "transports": {"udp": summary.as_dict()},
        }
    )
    assert "server: injected lost" in text and "UDP delivered 2 of 2" in text


def test_table_aligns_columns() -> None:
    """Numbers line up on the right, labels on the left."""
    lines = table([["a", "1"], ["long label", "100"]], ["what", "n"])
    assert lines[2] == "a             1"
    assert lines[3] == "long label  100"
