"""Scenario `restart`: the server goes away under the bots and comes back on the same port.

Owns the workload and its timeline. K bots over TCP and K over UDP ping
every `interval` seconds. The server is killed (SIGKILL by default: a crash,
not a word to anyone; `--graceful` sends SIGTERM so it says goodbye), stays
down for `down` seconds and is started again on the same port. A TCP bot
learns at once (its kernel reports the closed connection) and reconnects
until the port answers again. A UDP bot learns nothing: its datagrams leave
without an error, and only silence (no pong for `udp_timeout` s) or the new
server's `not_joined` tells it to say hello again (docs/protocol.md §2).

Imports: lanchat_lab.bots, serverproc.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from lanchat.i18n import N_, _, ngettext
from lanchat_lab.bots import Bot, LabError, TCPBot, UDPBot, until
from lanchat_lab.serverproc import ServerProcess


@dataclass
class RestartOptions:
    bots: int = 2  # per transport
    transports: tuple[str, ...] = ("tcp", "udp")
    before: float = 1.0  # seconds of normal chat before the server goes
    down: float = 2.0  # seconds the server stays away
    interval: float = 0.25  # seconds between pings (and reconnect attempts)
    udp_timeout: float = 1.5  # a UDP bot gives up on the server after this long without a pong
    graceful: bool = False
    room: str = "lab"


class _Watch:
    """One bot's view of the server's presence: spans in the room, pings unanswered, events."""

    def __init__(self, bot: Bot, t0: float) -> None:
        self.bot = bot
        self.t0 = t0
        self.in_room_since: float | None = None
        self.spans: list[list[float]] = []
        self.events: list[list[Any]] = []
        self.failed_attempts = 0
        self.noticed: float | None = None  # first time after the outage began that the bot knew
        self.back: float | None = None

    def event(self, text: str, at: float | None = None) -> None:
        self.events.append([round((at if at is not None else time.time()) - self.t0, 4), text])

    def enter(self, at: float) -> None:
        self.in_room_since = at

    def leave(self, at: float, text: str, outage_began: float | None) -> None:
        if self.in_room_since is not None:
            self.spans.append([round(self.in_room_since - self.t0, 4), round(at - self.t0, 4)])
        self.in_room_since = None
        self.event(text, at)
        if outage_began is not None and self.noticed is None:
            self.noticed = at


async def _watch_tcp(
    watch: _Watch, host: str, port: int, options: RestartOptions, state: dict[str, Any], stop: asyncio.Event
) -> None:
    bot = watch.bot
    assert isinstance(bot, TCPBot)
    ping = 0
    while not stop.is_set():
        if bot.connected and bot.joined.is_set():
            ping += 1
            bot.ping(ping)
        elif watch.in_room_since is not None:
            how = (
                _("connection closed by the server")
                if not bot.notice_texts
                else _("the server said goodbye and closed the connection")
            )
            watch.leave(bot.lost_at or time.time(), _("{how}: TCP knows at once").format(how=how), state["down_at"])
        else:
            try:
                await bot.join(host, port, timeout=1.0)
            except (OSError, asyncio.TimeoutError, LabError) as error:
                if watch.failed_attempts == 0:
                    reason = (
                        _("refused: nobody listens on the port")
                        if isinstance(error, ConnectionRefusedError)
                        else str(error)
                    )
                    watch.event(_("reconnect {reason}").format(reason=reason))
                watch.failed_attempts += 1
            else:
                now = time.time()
                if state["down_at"] is not None:
                    failed = watch.failed_attempts
                    watch.event(
                        ngettext(
                            "reconnected and back in the room ({count} attempt failed)",
                            "reconnected and back in the room ({count} attempts failed)",
                            failed,
                        ).format(count=failed),
                        now,
                    )
                    watch.back = now
                watch.enter(now)
        await _sleep(options.interval, stop)


async def _watch_udp(watch: _Watch, options: RestartOptions, state: dict[str, Any], stop: asyncio.Event) -> None:
    bot = watch.bot
    assert isinstance(bot, UDPBot)
    ping = 0
    unanswered = 0  # pings sent since the last pong came back
    last_pong_seen = bot.last_pong
    while not stop.is_set():
        now = time.time()
        if bot.last_pong != last_pong_seen:
            last_pong_seen, unanswered = bot.last_pong, 0
        if bot.joined.is_set():
            since = watch.in_room_since or now
            goodbye = [at for at, left in bot.lefts if at >= since and left.get("nick") == bot.nick]
            if goodbye:
                watch.leave(goodbye[0], _("the server said goodbye (left, reason shutdown)"), state["down_at"])
                bot.joined.clear()
                continue
            silent = now - max(bot.last_pong, since)
            if silent >= options.udp_timeout:
                watch.leave(
                    now,
                    _(
                        "no pong for {silent:.1f} s: server presumed gone "
                        "({unanswered} pings had left without any error)"
                    ).format(silent=silent, unanswered=unanswered),
                    state["down_at"],
                )
                bot.joined.clear()
                continue
            ping += 1
            unanswered += 1
            bot.ping(ping)
        else:
            if watch.in_room_since is not None:  # the new server answered not_joined
                watch.leave(
                    bot.not_joined_at or now, _("the server answered not_joined: it has forgotten us"), state["down_at"]
                )
            try:
                await bot.rejoin(timeout=options.interval * 4, retry=options.interval)
            except LabError:
                if watch.failed_attempts == 0:
                    watch.event(_("hello unanswered: still no server, trying again"))
                watch.failed_attempts += 1
                continue
            now = time.time()
            rounds = watch.failed_attempts
            watch.event(
                ngettext(
                    "hello answered: back in the room ({count} round of hellos unanswered)",
                    "hello answered: back in the room ({count} rounds of hellos unanswered)",
                    rounds,
                ).format(count=rounds),
                now,
            )
            watch.back = now
            watch.enter(now)
        await _sleep(options.interval, stop)


async def _sleep(seconds: float, stop: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def _scenario(options: RestartOptions, server: ServerProcess) -> dict[str, Any]:
    host, port = "127.0.0.1", server.port
    bots: list[Bot] = [
        TCPBot(f"tcp{n + 1}", options.room) for n in range(options.bots if "tcp" in options.transports else 0)
    ]
    bots += [UDPBot(f"udp{n + 1}", options.room) for n in range(options.bots if "udp" in options.transports else 0)]
    t0 = time.time()
    state: dict[str, Any] = {"down_at": None, "up_at": None}
    watches = [_Watch(bot, t0) for bot in bots]
    stop = asyncio.Event()
    tasks = []
    try:
        for watch in watches:
            bot = watch.bot
            assert isinstance(bot, (TCPBot, UDPBot))
            try:
                await bot.join(host, port)
            except (OSError, asyncio.TimeoutError) as error:
                raise LabError(
                    _("{nick} cannot reach {host}:{port} over {transport}: {error}").format(
                        nick=bot.nick, host=host, port=port, transport=bot.transport, error=error
                    )
                ) from None
            watch.enter(time.time())
            watch.event(_("in the room"))
        for watch in watches:
            if isinstance(watch.bot, TCPBot):
                tasks.append(asyncio.ensure_future(_watch_tcp(watch, host, port, options, state, stop)))
            else:
                tasks.append(asyncio.ensure_future(_watch_udp(watch, options, state, stop)))
        await asyncio.sleep(options.before)
        state["down_at"] = time.time()
        if options.graceful:
            await asyncio.get_running_loop().run_in_executor(None, server.stop)
        else:
            server.kill()
        await asyncio.sleep(options.down)
        # "Up" is when the new process is launched: it accepts a moment later, once Python has started.
        state["up_at"] = time.time()
        await asyncio.get_running_loop().run_in_executor(None, server.start)
        await until(lambda: all(w.back is not None for w in watches), options.udp_timeout + 10 * options.interval + 5)
        await asyncio.sleep(options.interval * 2)
    finally:
        stop.set()
        for task in tasks:
            try:
                await asyncio.wait_for(task, 5)
            except (asyncio.TimeoutError, OSError, LabError):  # a stuck watcher must not hide the scenario's own error
                task.cancel()
        for bot in bots:
            bot.close()
    end = time.time()
    for watch in watches:
        if watch.in_room_since is not None:
            watch.spans.append([round(watch.in_room_since - t0, 4), round(end - t0, 4)])
    return {"t0": t0, "end": end, "down_at": state["down_at"], "up_at": state["up_at"], "watches": watches}


def run_restart(options: RestartOptions) -> dict[str, Any]:
    with ServerProcess("127.0.0.1", 0, ["--rate", "0", "--max-per-ip", "0"]) as server:
        server.start()
        port = server.port
        raw = asyncio.run(_scenario(options, server))
    t0 = raw["t0"]
    down, up = raw["down_at"] - t0, raw["up_at"] - t0
    bots = []
    for watch in raw["watches"]:
        bots.append(
            {
                "nick": watch.bot.nick,
                "transport": watch.bot.transport,
                "noticed_after": None if watch.noticed is None else round(watch.noticed - raw["down_at"], 4),
                "back_after_restart": None if watch.back is None else round(watch.back - raw["up_at"], 4),
                "failed_attempts": watch.failed_attempts,
                "events": watch.events,
                "connected_spans": watch.spans,
            }
        )
    # English in the result (--json); the report shows them translated (lanchat_lab.connreport).
    if options.graceful:
        stopped = N_("server stopped with SIGTERM (graceful: it tells everyone)")
    else:
        stopped = N_("server stopped with SIGKILL (a crash: not a word to anyone)")
    server_events = [
        [round(down, 4), stopped],
        [round(up, 4), f"server launched again on port {port}"],
    ]
    return {
        "scenario": "restart",
        "setup": {
            "bots_per_transport": options.bots,
            "transports": list(options.transports),
            "before": options.before,
            "down": options.down,
            "interval": options.interval,
            "udp_timeout": options.udp_timeout,
            "graceful": options.graceful,
            "port": port,
        },
        "down_at": round(down, 4),
        "up_at": round(up, 4),
        "server_events": server_events,
        "bots": bots,
    }
