"""Scenario `reliable-udp`: UDP bots that rebuild TCP's guarantees on top of the chat, under injected loss.

A `chatsrv` child drops `--udp-loss` % of the datagrams it sends (seeded, as
in `compare`). One UDP bot, the sender, says N numbered messages at R per
second; K UDP bots receive them. The receivers add, at the application
layer, what TCP does in the kernel:

- an acknowledgement for every copy of a message they get (a `whisper`
  `ack N` to the sender, through the server: it can be lost as well);
- duplicate suppression: a message whose number they already have is
  acknowledged again but not delivered twice;
- a reordering buffer: message N is delivered only once 1 .. N-1 have
  been, so everything behind a lost message waits (head-of-line blocking).

The sender keeps every message until each receiver has acknowledged it
and sends it again when its retransmission timer runs out (starting at
`rto`, doubling on every retry, as TCP's timer does).

Each receiver also writes down what plain UDP would have given it: the
first copies of first transmissions, delivered at once. The report puts
the two side by side: plain UDP loses messages and is fast; with the
reliability layer everything arrives, in order, once, and the latency tail
is the retransmission timer, the price TCP pays too.

Owns the two bot classes and the analysis. Imports: lanchat_lab.bots,
lanchat_lab.measure, lanchat_lab.serverproc.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from lanchat.i18n import _
from lanchat_lab.bots import LabError, UDPBot, until
from lanchat_lab.measure import lab_text, parse_lab_text, percentile
from lanchat_lab.serverproc import ServerProcess

ORIGIN = "rel"
ROOM = "reliable"
SENDER = "sender"
MAX_RTO = 2.0  # seconds: the retransmission timer stops doubling here


@dataclass
class ReliableOptions:
    receivers: int = 2
    messages: int = 200
    rate: float = 50.0
    loss: float = 10.0
    seed: int = 1
    rto: float = 0.2  # Linux TCP's smallest retransmission timeout
    timeout: float = 30.0  # seconds the whole exchange may take after the last first send


def _attempt(text: str) -> int:
    """The transmission number written after the lab fields (`... try2`)."""
    last = text.rsplit(" ", 1)[-1]
    return int(last[3:]) if last.startswith("try") and last[3:].isdigit() else 1


class ReliableReceiver(UDPBot):
    """Acknowledges every copy, suppresses duplicates, delivers in order; also notes what plain UDP gave."""

    def __init__(self, nick: str, sender: str) -> None:
        super().__init__(nick, ROOM)
        self.sender = sender
        self.sent_at: dict[int, float] = {}
        self.first_copy: dict[int, float] = {}  # message number -> when its first copy arrived
        self.plain: dict[int, float] = {}  # first transmissions that arrived: what plain UDP delivers
        self.delivered: dict[int, float] = {}  # message number -> when the in-order delivery handed it up
        self.waiting: set[int] = set()  # the reordering buffer: arrived, an earlier one missing
        self.held: set[int] = set()  # messages that ever had to wait in it
        self.duplicates = 0
        self.acks_sent = 0
        self.next_expected = 1

    def handle(self, payload: dict[str, Any], now: float) -> None:
        super().handle(payload, now)
        if payload.get("type") != "message" or payload.get("from") != self.sender:
            return
        text = str(payload.get("text", ""))
        parsed = parse_lab_text(text)
        if parsed is None or parsed[0] != ORIGIN:
            return
        _, number, sent_at = parsed
        # Acknowledge every copy: the ack of the first one may have been lost.
        self.send({"type": "whisper", "to": self.sender, "text": f"ack {number}"})
        self.acks_sent += 1
        if number in self.first_copy or number < self.next_expected:
            self.duplicates += 1
            return
        self.first_copy[number] = now
        self.sent_at[number] = sent_at
        if _attempt(text) == 1:
            self.plain[number] = now
        self.waiting.add(number)
        if number != self.next_expected:
            self.held.add(number)
        while self.next_expected in self.waiting:
            self.waiting.remove(self.next_expected)
            self.delivered[self.next_expected] = now
            self.next_expected += 1


class ReliableSender(UDPBot):
    """Sends numbered messages and resends each one until every receiver has acknowledged it."""

    def __init__(self, receivers: list[str], rto: float) -> None:
        super().__init__(SENDER, ROOM)
        self.receivers = set(receivers)
        self.rto = rto
        self.acked: dict[int, set[str]] = {}
        self.first_sent: dict[int, float] = {}
        self.attempts: dict[int, int] = {}
        self.due: dict[int, float] = {}
        self.retransmissions = 0
        self.acks_received = 0

    def handle(self, payload: dict[str, Any], now: float) -> None:
        super().handle(payload, now)
        if payload.get("type") != "whisper" or payload.get("to") != self.nick:
            return
        words = str(payload.get("text", "")).split()
        if len(words) == 2 and words[0] == "ack" and words[1].isdigit():
            self.acks_received += 1
            self.acked.setdefault(int(words[1]), set()).add(str(payload.get("from")))

    def transmit(self, number: int, now: float) -> None:
        attempt = self.attempts.get(number, 0) + 1
        self.attempts[number] = attempt
        sent_at = self.first_sent.setdefault(number, now)
        self.say(f"{lab_text(ORIGIN, number, sent_at)} try{attempt}")
        timer = min(MAX_RTO, self.rto * 2 ** (attempt - 1))
        self.due[number] = now + timer

    def unacknowledged(self) -> list[int]:
        return [number for number in self.due if not self.receivers <= self.acked.get(number, set())]

    def resend_due(self, now: float) -> None:
        for number in self.unacknowledged():
            if self.due[number] <= now:
                self.retransmissions += 1
                self.transmit(number, now)


async def _exchange(options: ReliableOptions, port: int) -> dict[str, Any]:
    names = [f"r{number}" for number in range(1, options.receivers + 1)]
    sender = ReliableSender(names, options.rto)
    receivers = [ReliableReceiver(name, SENDER) for name in names]
    bots: list[UDPBot] = [sender, *receivers]
    try:
        for bot in bots:
            await bot.join("127.0.0.1", port, timeout=10.0)
        start = time.monotonic()
        interval = 1.0 / options.rate
        number = 0
        deadline = start + options.messages / options.rate + options.timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            while number < options.messages and now >= start + number * interval:
                number += 1
                sender.transmit(number, sender.clock())
            sender.resend_due(sender.clock())
            if number == options.messages and not sender.unacknowledged():
                break
            await asyncio.sleep(min(interval, 0.01))
        # The last acks are in; give the last deliveries a moment to be counted (bounded).
        await until(lambda: all(len(r.delivered) == options.messages for r in receivers), 1.0)
        took = time.monotonic() - start
    finally:
        for bot in bots:
            bot.close()
    return {
        "took": took,
        "complete": not sender.unacknowledged() and number == options.messages,
        "retransmissions": sender.retransmissions,
        "acks_received": sender.acks_received,
        "receivers": [_receiver_result(receiver, options.messages) for receiver in receivers],
    }


def _latencies(arrivals: dict[int, float], sent_at: dict[int, float]) -> list[float]:
    return [(arrivals[number] - sent_at[number]) * 1000 for number in sorted(arrivals) if number in sent_at]


def _since(sent_at: dict[int, float], arrivals: dict[int, float], number: int) -> float | None:
    if number not in arrivals or number not in sent_at:
        return None
    return round((arrivals[number] - sent_at[number]) * 1000, 3)


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.5),
        "p90": percentile(values, 0.9),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else float("nan"),
    }


def _receiver_result(receiver: ReliableReceiver, expected: int) -> dict[str, Any]:
    plain = _latencies(receiver.plain, receiver.sent_at)
    reliable = _latencies(receiver.delivered, receiver.sent_at)
    return {
        "nick": receiver.nick,
        "expected": expected,
        "plain_delivered": len(receiver.plain),
        "plain_latency_ms": _summary(plain),
        "reliable_delivered": len(receiver.delivered),
        "in_order": list(receiver.delivered) == sorted(receiver.delivered),
        "reliable_latency_ms": _summary(reliable),
        "duplicates_suppressed": receiver.duplicates,
        "held_for_order": len(receiver.held),
        "acks_sent": receiver.acks_sent,
        # Per message: [number, plain UDP latency ms or None (lost), latency ms with the reliability layer or None].
        "series": [
            [
                number,
                _since(receiver.sent_at, receiver.plain, number),
                _since(receiver.sent_at, receiver.delivered, number),
            ]
            for number in range(1, expected + 1)
        ],
    }


def run_reliable(options: ReliableOptions) -> dict[str, Any]:
    flags = ["--rate", "0", "--max-per-ip", "0", "--udp-loss", f"{options.loss:g}", "--seed", str(options.seed)]
    with ServerProcess("127.0.0.1", 0, flags) as server:
        port = server.start()
        try:
            raw = asyncio.run(_exchange(options, port))
        except LabError:
            raise
        except OSError as error:
            raise LabError(_("loopback sockets failed: {reason}").format(reason=error.strerror or error)) from None
    return {
        "scenario": "reliable-udp",
        "setup": {
            "receivers": options.receivers,
            "messages": options.messages,
            "rate": options.rate,
            "loss": options.loss,
            "seed": options.seed,
            "rto": options.rto,
        },
        **raw,
    }
