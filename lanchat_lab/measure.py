"""Pure arithmetic of the lab: from what the bots recorded to the figures a class reads.

Owns: lab message text (`lab_text` / `parse_lab_text`), percentiles, RFC 3550
interarrival jitter, sequence-number analysis (docs/protocol.md §3, through
`lanchat.wire.SeqTracker`) and the per-transport summary of the `compare`
scenario. Input is plain JSON-able data (a bot's record), so the same code
reads results produced in another network namespace.

Must not import: sockets, asyncio, clocks, matplotlib. Imports only
`lanchat.wire` from lanchat.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lanchat.wire import SeqTracker

# Bytes of protocol headers under one payload, for IPv4 (the lab's addresses):
# IP 20 + TCP 20 + 12 of the timestamp option Linux puts on every segment,
# IP 20 + UDP 8. Ethernet framing is not counted (loopback has none).
TCP_HEADER_BYTES = 52
UDP_HEADER_BYTES = 28
TCP_FRAMING_BYTES = 4  # the length prefix of docs/protocol.md §2

LAB_PREFIX = "lab"


def lab_text(origin: str, index: int, sent_at: float, size: int = 0) -> str:
    """The text of lab message `index` sent over `origin` at `sent_at`, padded to `size` characters.

    The send time travels inside the message so the receiver can compute the
    one-way latency (sender and receiver share one clock: same machine).
    """
    text = f"{LAB_PREFIX} {origin} {index} {sent_at:.6f}"
    if len(text) < size:
        text += " " + "." * (size - len(text) - 1)
    return text


def parse_lab_text(text: str) -> tuple[str, int, float] | None:
    """(origin, index, sent_at) of a lab message, or None for any other text."""
    parts = text.split(" ", 4)
    if len(parts) < 4 or parts[0] != LAB_PREFIX:
        return None
    try:
        return parts[1], int(parts[2]), float(parts[3])
    except ValueError:
        return None


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (0 <= fraction <= 1); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rfc3550_jitter(pairs: Iterable[tuple[float, float]]) -> float:
    """Interarrival jitter of RFC 3550 §6.4.1 for one stream, in seconds.

    `pairs` are (sent, received) in arrival order. For consecutive arrivals
    i-1, i the transit difference is D = (R_i - R_{i-1}) - (S_i - S_{i-1});
    the estimate moves 1/16 of the way towards |D| each time, a smoothed
    "how unevenly do packets arrive" that ignores any constant delay.
    """
    jitter = 0.0
    previous: tuple[float, float] | None = None
    for sent, received in pairs:
        if previous is not None:
            difference = (received - previous[1]) - (sent - previous[0])
            jitter += (abs(difference) - jitter) / 16
        previous = (sent, received)
    return jitter


def binomial_bound(trials: int, probability: float, sigmas: float = 4.0) -> tuple[float, float]:
    """Range a fraction of `trials` Bernoulli(`probability`) outcomes falls in, `sigmas` wide."""
    if trials <= 0:
        return (0.0, 1.0)
    spread = sigmas * math.sqrt(probability * (1 - probability) / trials)
    return (max(0.0, probability - spread), min(1.0, probability + spread))


# --- what a bot records --------------------------------------------------------
#
# A bot record is a dict (it crosses a process boundary as JSON):
#   nick, transport ("tcp"/"udp"), join_seconds (float or None),
#   seqs: the server seq of every payload, in arrival order,
#   arrivals: [origin, index, sent_at, received_at] per lab message received,
#   sent_messages, bytes_in, bytes_out (application bytes, TCP framing included),
#   packets_in, packets_out (UDP datagrams; TCP segments from TCP_INFO, or None),
#   retransmits (TCP segments this bot retransmitted, or None),
#   stats: the server's `stats` payload for this bot (or None), errors: {code: count}.


@dataclass
class TransportSummary:
    """Everything the `compare` table shows for one transport."""

    transport: str
    bots: int
    sent: int  # lab messages sent by this transport's bots
    expected: int  # sent x bots: each message is broadcast to every member, sender included
    delivered: int  # unique lab messages from this transport received by its bots
    lost: int
    lost_fraction: float
    seq_total: int  # server payloads the bots should have had (highest seq seen, summed)
    seq_lost: int  # of those, never received (docs/protocol.md §3 gaps not filled later)
    reordered: int
    duplicated: int
    upstream_gaps: int  # client seq gaps the server counted (UDP only, in `stats`)
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p90, p99, max
    jitter_ms: float = math.nan
    messages_per_second: float = math.nan  # delivered per bot per second
    payload_bytes: float = math.nan  # JSON payload per received payload, on average
    framing_bytes: int = 0
    header_bytes: float = math.nan  # IP + TCP/UDP header bytes per received payload
    sent_bytes: float = math.nan  # what the bots sent themselves (says, pings), per received payload
    packets_per_message: float = math.nan  # packets both ways per received payload
    wire_bytes: float = math.nan  # payload + framing + headers per received payload
    wire_source: str = "estimated"
    retransmits: int | None = None
    join_ms: dict[str, float] = field(default_factory=dict)  # mean, max
    from_other: tuple[int, int] = (0, 0)  # (delivered, expected) of the other transport's messages
    server: dict[str, Any] = field(default_factory=dict)  # server-side counters (fault injection)
    errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["from_other"] = list(self.from_other)
        finite: dict[str, Any] = _finite(data)
        return finite


def _finite(value: Any) -> Any:
    """NaN -> None, recursively: JSON has no NaN (docs/protocol.md §1 forbids it too)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


SERVER_COUNTER_KEYS = ("gaps", "reordered", "duplicates", "sent", "received")


def summarize(transport: str, records: list[dict[str, Any]], other_sent: int, other_bots: int) -> TransportSummary:
    """Fold the records of one transport's bots into a `TransportSummary`.

    `other_sent` is how many lab messages the other transport's bots sent;
    with `other_bots` it gives the cross-transport delivery line.
    """
    bots = len(records)
    sent = sum(int(record.get("sent_messages", 0)) for record in records)
    expected = sent * bots
    latencies: list[float] = []
    jitters: list[float] = []
    delivered = 0
    cross = 0
    seq_total = seq_lost = reordered = duplicated = upstream = 0
    payloads = 0
    bytes_in = bytes_out = 0
    packets: int | None = 0
    retransmits: int | None = 0
    first_sent = math.inf
    last_received = -math.inf
    server: dict[str, float] = {}
    errors: dict[str, int] = {}
    for record in records:
        seen: set[tuple[str, int]] = set()
        streams: dict[str, list[tuple[float, float]]] = {}
        for origin, index, sent_at, received_at in record.get("arrivals", []):
            key = (origin, int(index))
            if key in seen:
                continue  # a duplicate: counted through seq below
            seen.add(key)
            if origin != transport:
                cross += 1
                continue
            delivered += 1
            latencies.append(received_at - sent_at)
            first_sent = min(first_sent, sent_at)
            last_received = max(last_received, received_at)
            streams.setdefault(str(index % max(1, bots)), []).append((sent_at, received_at))
        # Jitter is per sending stream (RFC 3550 is per source); messages are
        # sent round-robin, so index % bots names the sender.
        jitters.extend(rfc3550_jitter(pairs) for pairs in streams.values() if len(pairs) > 1)
        tracker = SeqTracker(window=1 << 20)
        for seq in record.get("seqs", []):
            tracker.add(int(seq))
        seq_total += tracker.highest
        seq_lost += tracker.missing
        reordered += tracker.reordered
        duplicated += tracker.duplicates
        payloads += tracker.received + tracker.duplicates
        bytes_in += int(record.get("bytes_in", 0))
        bytes_out += int(record.get("bytes_out", 0))
        if packets is not None and record.get("packets_in") is not None and record.get("packets_out") is not None:
            packets += int(record["packets_in"]) + int(record["packets_out"])
        else:
            packets = None
        if retransmits is not None and record.get("retransmits") is not None:
            retransmits += int(record["retransmits"])
        else:
            retransmits = None
        stats = record.get("stats") or {}
        upstream += int(stats.get("gaps", 0)) if isinstance(stats.get("gaps", 0), int) else 0
        for key, value in stats.items():
            if key in ("type", "seq") or key in SERVER_COUNTER_KEYS or not isinstance(value, (int, float)):
                continue
            server[key] = server.get(key, 0) + value  # e.g. injected fault counts
        for code, count in (record.get("errors") or {}).items():
            errors[code] = errors.get(code, 0) + int(count)
    lost = expected - delivered
    framing = TCP_FRAMING_BYTES if transport == "tcp" else 0
    header = TCP_HEADER_BYTES if transport == "tcp" else UDP_HEADER_BYTES
    payload_bytes = (bytes_in / payloads - framing) if payloads else math.nan
    packets_per_message = packets / payloads if (packets is not None and payloads) else math.nan
    # Headers: every packet carries one, in and out (ACKs included for TCP).
    header_bytes = header * packets / payloads if (packets is not None and payloads) else math.nan
    wire_bytes = (bytes_in + bytes_out) / payloads + header_bytes if payloads else math.nan
    span = last_received - first_sent
    joins = [float(record["join_seconds"]) * 1000 for record in records if record.get("join_seconds") is not None]
    return TransportSummary(
        transport=transport,
        bots=bots,
        sent=sent,
        expected=expected,
        delivered=delivered,
        lost=lost,
        lost_fraction=lost / expected if expected else math.nan,
        seq_total=seq_total,
        seq_lost=seq_lost,
        reordered=reordered,
        duplicated=duplicated,
        upstream_gaps=upstream,
        latency_ms={
            "p50": percentile(latencies, 0.50) * 1000,
            "p90": percentile(latencies, 0.90) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "max": max(latencies) * 1000 if latencies else math.nan,
        },
        jitter_ms=(sum(jitters) / len(jitters) * 1000) if jitters else math.nan,
        messages_per_second=(delivered / bots / span) if (bots and span > 0) else math.nan,
        payload_bytes=payload_bytes,
        framing_bytes=framing,
        header_bytes=header_bytes,
        sent_bytes=bytes_out / payloads if payloads else math.nan,
        packets_per_message=packets_per_message,
        wire_bytes=wire_bytes,
        retransmits=retransmits,
        join_ms={"mean": sum(joins) / len(joins), "max": max(joins)} if joins else {},
        from_other=(cross, other_sent * bots),
        server=server,
        errors=errors,
    )


def apply_wire_counters(summary: TransportSummary, packets: int, ip_bytes: int, payloads: int) -> None:
    """Replace the estimated wire figures with real packet counters (nftables, netns mode)."""
    if payloads <= 0:
        return
    summary.packets_per_message = packets / payloads
    summary.wire_bytes = ip_bytes / payloads
    summary.header_bytes = summary.wire_bytes - summary.payload_bytes - summary.framing_bytes - summary.sent_bytes
    summary.wire_source = "nftables counters"


def payloads_received(record: dict[str, Any]) -> int:
    """Server payloads a bot received, duplicates included."""
    return len(record.get("seqs", []))


def latency_series(records: list[dict[str, Any]], transport: str) -> list[tuple[int, float]]:
    """(message index, latency in ms) of every first arrival of `transport`'s messages, for plots."""
    points: list[tuple[int, float]] = []
    for record in records:
        seen: set[int] = set()
        for origin, index, sent_at, received_at in record.get("arrivals", []):
            if origin == transport and index not in seen:
                seen.add(index)
                points.append((int(index), (received_at - sent_at) * 1000))
    points.sort()
    return points
