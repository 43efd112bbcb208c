"""Scenario `slow`: one member stops reading; the room must not wait for it.

Owns the workload: K reading bots and a stuck member that joins and then
never reads again (over TCP with a 4 KB receive buffer so its kernel soon
fills; optionally a stuck UDP member too). One reader sends M messages at R
per second. The server queues for the stuck TCP member until its outbox limit
(`--outbox`; its kernel send buffer is `--send-buffer`), then removes it with
`left` reason `slow` (docs/protocol.md §5); the readers' rate and latency
should not change. A stuck UDP member is never noticed: its own kernel
throws away what does not fit its buffer.

Imports: lanchat_lab.bots, measure, serverproc.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

from lanchat.i18n import _
from lanchat.wire import SeqTracker
from lanchat_lab.bots import Bot, LabError, TCPBot, UDPBot, sync_and_collect, until
from lanchat_lab.measure import lab_text, percentile
from lanchat_lab.serverproc import ServerProcess

STUCK_BUFFER = 4096  # bytes: a small receive window fills after about 10 KB (docs/testing.md #5)


@dataclass
class SlowOptions:
    readers: int = 3
    messages: int = 1000
    rate: float = 500.0
    size: int = 500
    outbox: int = 65536
    send_buffer: int = 65536  # the server's kernel send buffer per member (its --send-buffer)
    stuck: tuple[str, ...] = ("tcp",)
    room: str = "lab"


async def _workload(options: SlowOptions, host: str, port: int) -> dict[str, Any]:
    readers = [TCPBot(f"reader{n + 1}", options.room) for n in range(options.readers)]
    stuck_tcp = TCPBot("stuck-tcp", options.room, receive_buffer=STUCK_BUFFER) if "tcp" in options.stuck else None
    stuck_udp = UDPBot("stuck-udp", options.room, receive_buffer=STUCK_BUFFER) if "udp" in options.stuck else None
    stuck: list[Bot] = [bot for bot in (stuck_tcp, stuck_udp) if bot is not None]
    everyone: list[Bot] = [*readers, *stuck]
    try:
        for bot in everyone:
            assert isinstance(bot, (TCPBot, UDPBot))
            try:
                await bot.join(host, port)
            except (OSError, asyncio.TimeoutError) as error:
                raise LabError(
                    _("{nick} cannot reach {host}:{port} over {transport}: {error}").format(
                        nick=bot.nick, host=host, port=port, transport=bot.transport, error=error
                    )
                ) from None
        for bot in stuck:
            bot.pause_reading()
        sender = readers[0]
        started = time.time()
        start = time.monotonic()
        for index in range(options.messages):
            delay = start + index / options.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sender.say(lab_text("tcp", index, time.time(), options.size))
        await until(lambda: all(len(bot.arrivals) >= options.messages for bot in readers), 10.0)
        removed = _removal(readers, "stuck-tcp")
        # Now the stuck members read again: what had they taken in before the end?
        for bot in stuck:
            bot.resume_reading()
        if stuck_tcp is not None:
            await until(lambda: stuck_tcp.closed.is_set(), 5.0)
        if stuck_udp is not None:
            await until(lambda: time.time() - stuck_udp.last_arrival > 0.3, 3.0)
        # A pong (higher seq than anything dropped) turns the stuck UDP member's losses into gaps.
        await sync_and_collect([*readers, *([stuck_udp] if stuck_udp is not None else [])])
        return {
            "started": started,
            "finished": time.time(),
            "readers": [bot.record() for bot in readers],
            "stuck": [_stuck_record(bot) for bot in stuck],
            "removed": removed,
        }
    finally:
        for bot in everyone:
            bot.close()


def _stuck_record(bot: Bot) -> dict[str, Any]:
    record = bot.record()
    record["closed_by_server"] = bot.closed.is_set() if isinstance(bot, TCPBot) else False
    return record


def _removal(readers: list[TCPBot], nick: str) -> dict[str, Any] | None:
    """When and why the readers were told `nick` left, and which message they had just got."""
    reader = readers[0]
    for arrived, payload in reader.lefts:
        if payload.get("nick") == nick:
            before = [index for _, index, _, received in reader.arrivals if received <= arrived]
            return {"reason": payload.get("reason"), "at": arrived, "after_message": max(before) if before else None}
    return None


def run_slow(options: SlowOptions) -> dict[str, Any]:
    flags = [
        "--rate",
        "0",
        "--max-per-ip",
        "0",
        "--outbox",
        str(options.outbox),
        "--send-buffer",
        str(options.send_buffer),
    ]
    with ServerProcess("127.0.0.1", 0, flags) as server:
        port = server.start()
        raw = asyncio.run(_workload(options, "127.0.0.1", port))
    return build_result(options, raw)


def build_result(options: SlowOptions, raw: dict[str, Any]) -> dict[str, Any]:
    removed = raw["removed"]
    first_sent = min((sent for r in raw["readers"] for _, _, sent, _ in r["arrivals"]), default=raw["started"])
    cut = removed["at"] if removed else None
    readers = []
    progress: dict[str, list[list[float]]] = {}
    for record in raw["readers"]:
        arrivals = sorted(record["arrivals"], key=lambda item: item[3])
        before = [a for a in arrivals if cut is None or a[3] <= cut]
        after = [a for a in arrivals if cut is not None and a[3] > cut]
        # Of the messages sent at least 50 ms before the removal, how many had this reader
        # already received? Near 100 % means it never waited for the stuck member.
        sent_early = {a[1] for a in arrivals if cut is None or a[2] <= cut - 0.05}
        had_early = {a[1] for a in before} & sent_early
        readers.append(
            {
                "nick": record["nick"],
                "received": len({a[1] for a in arrivals}),
                "expected": options.messages,
                "kept_up": round(len(had_early) / len(sent_early), 4) if sent_early else None,
                "rate_before": _rate(before),
                "rate_after": _rate(after),
                "latency_ms_before": _latencies(before),
                "latency_ms_after": _latencies(after),
                "latency_ms": _latencies(arrivals),
                "longest_gap_ms": _longest_gap(arrivals),
            }
        )
        progress[record["nick"]] = _progress(arrivals, first_sent)
    if raw["readers"]:
        sent_times = sorted(sent for _, _, sent, _ in {a[1]: a for a in raw["readers"][0]["arrivals"]}.values())
        progress["sent"] = _progress([[None, None, None, t] for t in sent_times], first_sent)
    stuck = []
    for record in raw["stuck"]:
        arrivals = sorted(record["arrivals"], key=lambda item: item[3])
        stuck.append(
            {
                "nick": record["nick"],
                "transport": record["transport"],
                "received": len({a[1] for a in arrivals}),
                "bytes_taken": record["bytes_in"],
                "closed_by_server": record.get("closed_by_server", False),
                "seq_gaps": _gaps(record["seqs"]),
            }
        )
        progress[record["nick"]] = _progress(arrivals, first_sent)
    return {
        "scenario": "slow",
        "setup": {
            "readers": options.readers,
            "messages": options.messages,
            "rate": options.rate,
            "size": options.size,
            "outbox": options.outbox,
            "send_buffer": options.send_buffer,
            "stuck_buffer": STUCK_BUFFER,
            "stuck": list(options.stuck),
            "duration": round(raw["finished"] - raw["started"], 3),
        },
        "removed": None
        if removed is None
        else {
            "reason": removed["reason"],
            "seconds": round(removed["at"] - first_sent, 3),
            "after_message": removed["after_message"],
        },
        "readers": readers,
        "stuck_members": stuck,
        "stuck": "stuck-tcp" if "tcp" in options.stuck else "stuck-udp",
        "removed_at": None if removed is None else removed["at"] - first_sent,
        "progress": progress,
    }


def _rate(arrivals: list[list[Any]]) -> float | None:
    """Messages per second over a stretch of arrivals (None when too short to tell)."""
    if len(arrivals) < 2:
        return None
    span = arrivals[-1][3] - arrivals[0][3]
    return (len(arrivals) - 1) / span if span > 0 else None


def _longest_gap(arrivals: list[list[Any]]) -> float | None:
    """The longest time between two consecutive arrivals, in ms: how long the reader was kept waiting."""
    times = [a[3] for a in arrivals]
    return max((later - earlier) * 1000 for earlier, later in itertools.pairwise(times)) if len(times) > 1 else None


def _latencies(arrivals: list[list[Any]]) -> dict[str, float] | None:
    values = [(received - sent) * 1000 for _, _, sent, received in arrivals]
    if not values:
        return None
    return {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99), "max": max(values)}


def _progress(arrivals: list[list[Any]], start: float, points: int = 400) -> list[list[float]]:
    """(seconds since the first message, messages received so far), thinned for a plot."""
    step = max(1, len(arrivals) // points)
    series = [
        [round(a[3] - start, 4), n + 1] for n, a in enumerate(arrivals) if n % step == 0 or n == len(arrivals) - 1
    ]
    return series


def _gaps(seqs: list[int]) -> int:
    tracker = SeqTracker(window=1 << 20)
    for seq in seqs:
        tracker.add(seq)
    return tracker.missing
