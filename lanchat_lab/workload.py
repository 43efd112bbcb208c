"""The `compare` workload: K bots over TCP and K over UDP in one room, M messages each at R/s.

Owns: joining the bots one after another (so each join time is clean),
sending each transport's messages round-robin from its bots on a fixed
schedule, waiting for the stragglers, the final sync (`ping`, then `stats`)
and returning every bot's record (see `lanchat_lab.measure`).

Runs in the lab's own process on loopback, or as
`python -m lanchat_lab.workload` inside the bots' network namespace (config
as JSON on stdin, result as JSON on stdout), so the same code measures both.
Imports: `lanchat_lab.bots`, `lanchat_lab.measure`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from lanchat_lab.bots import Bot, LabError, TCPBot, UDPBot, sync_and_collect, until
from lanchat_lab.measure import lab_text


@dataclass
class WorkloadConfig:
    host: str = "127.0.0.1"
    port: int = 9009
    tcp_bots: int = 3
    udp_bots: int = 3
    messages: int = 300  # per transport
    rate: float = 100.0  # messages per second, per transport
    size: int = 0  # pad each text to this many characters
    room: str = "lab"
    join_timeout: float = 5.0
    quiet: float = 0.5  # after the last send, stop waiting for UDP once nothing arrived this long
    drain_timeout: float = 10.0  # hard limit on waiting for stragglers after the last send

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkloadConfig:
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        return cls(**known)


async def _send_series(bots: list[Bot], origin: str, count: int, rate: float, size: int, start: float) -> float:
    """Send `count` lab messages from `bots` in turn, message i at start + i/rate; returns when done."""
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        bot = bots[index % len(bots)]
        bot.say(lab_text(origin, index, bot.clock(), size))
    return time.monotonic()


def _unique_arrivals(bot: Bot, origin: str | None = None) -> int:
    return len({(o, i) for o, i, _, _ in bot.arrivals if origin is None or o == origin})


async def run_workload(config: WorkloadConfig) -> dict[str, Any]:
    """Run the whole workload against the server at config.host:config.port."""
    tcp = [TCPBot(f"tcp{n + 1}", config.room) for n in range(config.tcp_bots)]
    udp = [UDPBot(f"udp{n + 1}", config.room) for n in range(config.udp_bots)]
    bots: list[Bot] = [*tcp, *udp]
    try:
        for bot in bots:
            assert isinstance(bot, (TCPBot, UDPBot))
            try:
                await bot.join(config.host, config.port, config.join_timeout)
            except (OSError, asyncio.TimeoutError) as error:
                reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
                raise LabError(
                    f"{bot.nick} cannot reach {config.host}:{config.port} over {bot.transport}: {reason}"
                ) from None
        started = time.time()
        start = time.monotonic() + 0.05
        series = []
        if tcp:
            series.append(_send_series(list(tcp), "tcp", config.messages, config.rate, config.size, start))
        if udp:
            series.append(_send_series(list(udp), "udp", config.messages, config.rate, config.size, start))
        await asyncio.gather(*series)
        expected_each = config.messages * ((1 if tcp else 0) + (1 if udp else 0))

        def everything_arrived() -> bool:
            return all(_unique_arrivals(bot) >= expected_each for bot in bots)

        def tcp_complete_and_quiet() -> bool:
            # TCP delivers everything sooner or later (retransmissions); UDP may never.
            tcp_done = all(_unique_arrivals(bot, "tcp") >= config.messages for bot in tcp)
            last = max((bot.last_arrival for bot in bots), default=0.0)
            return tcp_done and time.time() - last >= config.quiet

        await until(lambda: everything_arrived() or tcp_complete_and_quiet(), config.drain_timeout)
        await sync_and_collect(bots, timeout=max(5.0, config.join_timeout))
        records = [bot.record() for bot in bots]
        for bot in bots:
            bot.bye()
        await until(lambda: all(bot.closed.is_set() for bot in tcp), 1.0)
        return {"config": asdict(config), "started": started, "finished": time.time(), "records": records}
    finally:
        for bot in bots:
            bot.close()


def main() -> int:
    """`python -m lanchat_lab.workload`: JSON config on stdin, JSON result on stdout."""
    try:
        config = WorkloadConfig.from_dict(json.load(sys.stdin))
        result = asyncio.run(run_workload(config))
    except LabError as error:
        json.dump({"error": str(error)}, sys.stdout)
        return 1
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
