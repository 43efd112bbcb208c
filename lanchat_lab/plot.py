"""Pictures of lab results (`--plot FILE.png`), one layout per scenario.

The only module that imports matplotlib, and only inside its functions, so
`chatlab` runs without it (matplotlib is the optional extra `lab`). Reads
the same result dict as the report; computes nothing new.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from lanchat import i18n
from lanchat.i18n import _
from lanchat_lab.connreport import word

COLORS = {"tcp": "#1f77b4", "udp": "#d62728"}
# Fonts that hold Simplified Chinese, as matplotlib names them (Linux, Windows, macOS); the first installed one is used.
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Heiti SC",
    "Hiragino Sans GB",
    "AR PL UMing CN",
    "Droid Sans Fallback",
)


def matplotlib_missing() -> str | None:
    """None when matplotlib can be imported, else a one-line install hint."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "--plot needs matplotlib: pip install 'lanchat[lab]' (or pip install matplotlib)"
    return None


def plot(result: dict[str, Any], path: str) -> None:
    """Draw `result` into the PNG file `path`."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    font = cjk_font() if i18n.language() != i18n.ENGLISH else None
    if i18n.language() != i18n.ENGLISH and font is None:
        # Without a font that has the characters, every label would be a row of boxes.
        print(
            _(
                "chatlab: no Chinese font found for the plot, its labels are in English "
                "(install one, e.g. fonts-noto-cjk)"
            ),
            file=sys.stderr,
        )
    with i18n.temporarily(i18n.language() if font or i18n.language() == i18n.ENGLISH else i18n.ENGLISH):
        _draw(plt, result, path, font)


def cjk_font() -> str | None:
    """The first installed font of CJK_FONTS (matplotlib's font list), or None."""
    from matplotlib import font_manager

    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def _draw(plt: Any, result: dict[str, Any], path: str, font: str | None) -> None:
    fonts: dict[str, Any] = {}
    if font is not None:
        # CJK fonts often lack the minus sign: the ASCII hyphen stands in for it.
        fonts = {
            "font.family": "sans-serif",
            "font.sans-serif": [font, *plt.rcParams["font.sans-serif"]],
            "axes.unicode_minus": False,
        }
    with plt.rc_context(fonts):
        _draw_with(plt, result, path)


def _draw_with(plt: Any, result: dict[str, Any], path: str) -> None:
    drawers = {
        "compare": _compare,
        "sticky": _sticky,
        "slow": _slow,
        "restart": _restart,
        "timewait": _timewait,
        "threads": _threads,
        "reliable-udp": _reliable,
        "handshake": _handshake,
        "trace-wire": _trace_wire,
    }
    figure = drawers[result["scenario"]](plt, result)
    try:
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)


def _compare_title(setup: dict[str, Any]) -> str:
    """The picture's title: the workload and every fault or limit of the run."""
    title = _("TCP vs UDP: {bots_per_transport} bots each, {messages_per_transport} messages at {rate:g}/s").format(
        bots_per_transport=setup["bots_per_transport"],
        messages_per_transport=setup["messages_per_transport"],
        rate=setup["rate"],
    )
    if setup["mode"] == "netns" and setup["netns_loss"] is not None:
        title += _(", {netns_loss:g} % packet loss in the kernel").format(netns_loss=setup["netns_loss"])
    if setup["mode"] == "netns" and setup.get("netns_rate"):
        title += _(", link limited to {rate}").format(rate=setup["netns_rate"])
    if setup["udp_faults"]:
        title += _(", server injects {udp_faults}").format(udp_faults=" ".join(setup["udp_faults"]))
    return title


def _compare(plt: Any, result: dict[str, Any]) -> Any:
    transports = result["transports"]
    names = [name for name in ("tcp", "udp") if name in transports]
    setup = result["setup"]
    figure, ((timeline, cdf), (bars, wire)) = plt.subplots(2, 2, figsize=(13, 8.5))
    figure.suptitle(_compare_title(setup))

    for name in names:
        series = result["latency_series"].get(name, [])
        if series:
            timeline.scatter(
                [i for i, _ in series], [ms for _, ms in series], s=6, alpha=0.6, color=COLORS[name], label=name.upper()
            )
    # Lost deliveries have no latency: mark them as x at the bottom, one per missing copy.
    floor = min((ms for name in names for _, ms in result["latency_series"].get(name, []) if ms > 0), default=0.1) / 2
    for name in names:
        bots = transports[name]["bots"]
        counts: dict[int, int] = {}
        for index, _latency in result["latency_series"].get(name, []):
            counts[index] = counts.get(index, 0) + 1
        lost = [index for index in range(transports[name]["sent"]) if counts.get(index, 0) < bots]
        if lost:
            timeline.scatter(
                lost, [floor] * len(lost), marker="x", s=14, color=COLORS[name], label=f"{name.upper()} lost"
            )
    timeline.set_yscale("log")
    timeline.set_xlabel(_("message number"))
    timeline.set_ylabel(_("one-way latency, ms (log)"))
    timeline.set_title(_timeline_title(transports, names))
    timeline.legend()

    for name in names:
        values = sorted(ms for _, ms in result["latency_series"].get(name, []))
        if values:
            fraction = [(n + 1) / len(values) for n in range(len(values))]
            cdf.step(values, fraction, where="post", color=COLORS[name], label=name.upper())
    cdf.set_xscale("log")
    _plain_log_labels(cdf.xaxis)
    cdf.set_xlabel(_("one-way latency, ms (log)"))
    cdf.set_ylabel(_("fraction of deliveries"))
    cdf.set_title(_tail_title(transports, names))
    cdf.grid(True, alpha=0.3)
    cdf.legend()

    # Chat messages lost end to end (up to the server and down again), then what seq shows
    # of every payload the server sent (docs/protocol.md §3).
    kinds = [
        (_("messages lost\n(end to end)"), "lost"),
        (_("payloads lost\n(seq gaps)"), "seq_lost"),
        ("reordered\n(seq)", "reordered"),
        ("duplicated\n(seq)", "duplicated"),
    ]
    width = 0.38
    tallest = 0.0
    for offset, name in enumerate(names):
        summary = transports[name]
        values = [
            100 * summary[key] / ((summary["expected"] if key == "lost" else summary["seq_total"]) or 1)
            for _, key in kinds
        ]
        tallest = max([tallest, *values])
        positions = [k + (offset - (len(names) - 1) / 2) * width for k in range(len(kinds))]
        drawn = bars.bar(positions, values, width, color=COLORS[name], label=name.upper())
        bars.bar_label(drawn, labels=[f"{v:.1f}%" for v in values], fontsize=8)
    bars.set_ylim(0, max(1.0, tallest * 1.25))
    bars.set_xticks(range(len(kinds)), [label for label, _ in kinds])
    bars.set_ylabel(_("% of expected messages / of payloads sent"))
    bars.set_title(_("what arrived wrong (measured with seq)"))
    bars.legend()

    parts = [
        ("payload", "payload_bytes"),
        ("framing", "framing_bytes"),
        (_("own sends"), "sent_bytes"),
        ("headers", "header_bytes"),
    ]
    bottoms = [0.0] * len(names)
    shades = ["#4c72b0", "#dd8452", "#8c8c8c", "#55a868"]
    for (label, key), shade in zip(parts, shades):
        values = [float(transports[name].get(key) or 0.0) for name in names]
        wire.bar([n.upper() for n in names], values, 0.5, bottom=bottoms, color=shade, label=label)
        bottoms = [b + v for b, v in zip(bottoms, values)]
    for position, total in enumerate(bottoms):
        wire.text(position, total, f"{total:.0f} B", ha="center", va="bottom")
    wire.set_ylabel(_("bytes on the wire per payload received"))
    wire.set_title(_("cost of one chat message"))
    wire.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _timeline_title(transports: dict[str, Any], names: list[str]) -> str:
    """What the timeline shows, from the numbers: who lost how many, who had the slowest delivery."""
    parts = []
    for name in names:
        summary = transports[name]
        slowest = summary["latency_ms"]["max"]
        slow = _(", slowest {slowest:.0f} ms").format(slowest=slowest) if _finite(slowest) else ""
        parts.append(f"{name.upper()} lost {summary['lost']}{slow}")
    return _("every delivery: ") + "; ".join(parts)


def _tail_title(transports: dict[str, Any], names: list[str]) -> str:
    """Which transport has the longer latency tail (p99), said from the data rather than assumed."""
    tails = {
        name: transports[name]["latency_ms"]["p99"] for name in names if _finite(transports[name]["latency_ms"]["p99"])
    }
    if len(tails) < 2:
        return _("latency distribution")
    longer = max(tails, key=lambda name: tails[name])
    shorter = min(tails, key=lambda name: tails[name])
    if tails[longer] < 2 * tails[shorter] + 1:
        return _("latency distribution: tails alike (p99 {value:.1f} vs {value2:.1f} ms)").format(
            value=tails[longer], value2=tails[shorter]
        )
    return _("latency distribution: the long tail is {longer}'s (p99 {value2:.0f} ms vs {value3:.1f} ms)").format(
        longer=longer.upper(), value2=tails[longer], value3=tails[shorter]
    )


def _plain_log_labels(axis: Any) -> None:
    """Label a log axis at powers of ten only, as plain numbers (minor labels overlap on short ranges)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _sticky(plt: Any, result: dict[str, Any]) -> Any:
    sizes = result["message_sizes"]
    naive = [chunk["size"] for chunk in result["tcp_naive"]["chunks"]]
    framed = [chunk["size"] for chunk in result["tcp_framed"]["recvs"]]
    figure, axis = plt.subplots(figsize=(13, 4))
    palette = ["#4c72b0", "#dd8452"]

    def lane(y: float, widths: list[int], label: str, colors: list[str]) -> None:
        left = 0
        for number, width in enumerate(widths):
            axis.barh(
                y, width, left=left, height=0.6, color=colors[number % len(colors)], edgecolor="black", linewidth=0.4
            )
            left += width
        axis.text(-20, y, label, ha="right", va="center")

    from matplotlib.patches import Patch

    lane(3, sizes, _("sent: one send() per message"), palette)
    lane(2, naive, _("naive recv(1024) chunks"), ["#c7e9c0", "#74c476"])
    lane(1, [len(text) for text in result["tcp_framed"]["messages"]], _("framed: messages decoded"), palette)
    lane(0, framed, _("framed: recv(1024) chunks"), ["#c7e9c0", "#74c476"])
    axis.set_yticks([])
    axis.set_xlabel(_("byte position in the TCP stream (framed stream also holds 4-byte headers)"))
    segments = result["tcp_naive"].get("segments_sent")
    sender = (
        ""
        if segments is None
        else _(" ({segments} TCP segments, Nagle {value})").format(
            segments=segments, value="on" if result.get("nagle") else "off"
        )
    )
    axis.set_title(
        _(
            "sticky packets: {messages} sends{sender} became {count} recv "
            "chunks; {merged_chunks} merged, {split_messages} message(s) cut"
        ).format(
            messages=result["messages"],
            sender=sender,
            count=len(naive),
            merged_chunks=result["tcp_naive"]["merged_chunks"],
            split_messages=result["tcp_naive"]["split_messages"],
        )
    )
    axis.set_xlim(-0.02 * max(sum(sizes), 1), max(sum(sizes), sum(framed)) * 1.02)
    axis.legend(
        handles=[
            Patch(facecolor=palette[0], edgecolor="black", label=_("one message (colours alternate)")),
            Patch(facecolor="#74c476", edgecolor="black", label=_("what one recv() returned (colours alternate)")),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
        ncol=2,
    )
    figure.subplots_adjust(left=0.22, right=0.98, bottom=0.3)
    return figure


def _slow(plt: Any, result: dict[str, Any]) -> Any:
    figure, axis = plt.subplots(figsize=(11, 5))
    for name, points in result["progress"].items():
        if points:
            style = {"sent": ":", result["stuck"]: "--"}.get(name, "-")
            color = "gray" if name == "sent" else None
            label = _("sent by reader1") if name == "sent" else name
            axis.plot([t for t, _ in points], [n for _, n in points], style, color=color, label=label)
    removed = result.get("removed_at")
    if removed is not None:
        axis.axvline(
            removed, color="red", linestyle=":", label=_("{stuck} removed (slow)").format(stuck=result["stuck"])
        )
    axis.set_xlabel(_("seconds since the first message"))
    axis.set_ylabel(_("messages received"))
    axis.set_title(
        _("one member stops reading: at most a short pause (backpressure), then the room goes on without it")
    )
    axis.legend()
    figure.tight_layout()
    return figure


def _restart(plt: Any, result: dict[str, Any]) -> Any:
    figure, axis = plt.subplots(figsize=(11, 4.5))
    bots = result["bots"]
    for row, bot in enumerate(bots):
        color = COLORS.get(bot["transport"], "gray")
        for start, end in bot.get("connected_spans", []):
            axis.barh(row, end - start, left=start, height=0.5, color=color, alpha=0.7)
        for t, _event in bot.get("events", []):
            axis.plot(t, row, "k|", markersize=14)
    axis.axvspan(result["down_at"], result["up_at"], color="gray", alpha=0.2, label=_("server down"))
    axis.set_yticks(range(len(bots)), [b["nick"] for b in bots])
    axis.set_xlabel("seconds")
    axis.set_title(_("server restart: bars = bot in the room (as far as it knows), ticks = events"))
    axis.legend(loc="lower right")
    figure.tight_layout()
    return figure


STATE_COLORS = {
    "ESTABLISHED": "#b8e186",
    "FIN_WAIT2": "#fdb863",
    "CLOSE_WAIT": "#fee090",
    "TIME_WAIT": "#d73027",
    "(gone)": "#f0f0f0",
}


def _timewait(plt: Any, result: dict[str, Any]) -> Any:
    cases = result["cases"]
    figure, axes = plt.subplots(1, len(cases), figsize=(12, 3.6))
    for axis, case in zip(axes, cases):
        steps = case["steps"]
        for row, step in enumerate(steps):
            y = len(steps) - 1 - row
            for column, side in enumerate(("client", "server")):
                state = step[side]
                axis.add_patch(plt.Rectangle((column, y), 0.95, 0.85, color=STATE_COLORS.get(state, "#cccccc")))
                axis.text(column + 0.475, y + 0.42, state, ha="center", va="center", fontsize=10)
            axis.text(-0.05, y + 0.42, step["step"], ha="right", va="center", fontsize=9)
        axis.set_xlim(-1.1, 2)
        axis.set_ylim(0, len(steps))
        axis.set_xticks([0.475, 1.475], ["client", "server"])
        axis.xaxis.tick_top()
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_visible(False)
        holder = case["time_wait_on"] or "nobody"
        axis.set_title(
            _("{first} closes first: {holder} holds TIME_WAIT").format(first=case["first"], holder=holder), pad=24
        )
    rebind = result["rebind"]
    figure.suptitle(
        _(
            "after the server closed {connections} connection(s) first: "
            "plain bind {plain_bind}, with SO_REUSEADDR {reuseaddr_bind}"
        ).format(
            connections=rebind["connections"], plain_bind=rebind["plain_bind"], reuseaddr_bind=rebind["reuseaddr_bind"]
        ),
        y=0.06,
        fontsize=10,
    )
    figure.subplots_adjust(left=0.1, right=0.98, top=0.78, bottom=0.14, wspace=0.5)
    return figure


def _threads(plt: Any, result: dict[str, Any]) -> Any:
    servers = result["servers"]
    figure, axes = plt.subplots(len(servers), 1, figsize=(11, 2 + 1.2 * result["clients"] * len(servers)), sharex=True)
    hold_ms = result["hold"] * 1000
    for axis, server in zip(axes, servers):
        for row, client in enumerate(server["clients"]):
            arrived = client["arrived_ms"]
            waited = client["accepted_after_ms"] or 0.0
            axis.barh(
                row,
                waited,
                left=arrived,
                color="#d62728",
                height=0.5,
                label=_("waiting at accept()") if row == 0 else None,
            )
            axis.barh(
                row,
                hold_ms,
                left=arrived + waited,
                color="#1f77b4",
                height=0.5,
                label=_("talking to the server") if row == 0 else None,
            )
        ticks = [_("client {number}").format(number=c["client"]) for c in server["clients"]]
        axis.set_yticks(range(len(server["clients"])), ticks)
        axis.invert_yaxis()
        longest = max((c["accepted_after_ms"] or 0.0 for c in server["clients"]), default=0.0)
        axis.set_title(
            _("{server} server ({server_class}): longest wait at accept {longest:.0f} ms").format(
                server=word(server["server"]), server_class=server["class"], longest=longest
            )
        )
        axis.legend(loc="upper right")
    axes[-1].set_xlabel(_("time since the first client arrived, ms"))
    figure.tight_layout()
    return figure


def _reliable(plt: Any, result: dict[str, Any]) -> Any:
    receiver = result["receivers"][0]
    series = receiver["series"]
    figure, axis = plt.subplots(figsize=(11, 5))
    plain = [(number, latency) for number, latency, _ in series if latency is not None]
    lost = [number for number, latency, _ in series if latency is None]
    reliable = [(number, latency) for number, _, latency in series if latency is not None]
    axis.plot(
        [n for n, _ in reliable],
        [v for _, v in reliable],
        ".",
        color="#1f77b4",
        label=_("UDP + acks, timer, order: delivered"),
    )
    axis.plot([n for n, _ in plain], [v for _, v in plain], ".", color="#d62728", label=_("plain UDP: arrived"))
    floor = 0.05
    axis.plot(
        lost, [floor] * len(lost), "x", color="#d62728", label=_("plain UDP: lost ({count})").format(count=len(lost))
    )
    axis.set_yscale("log")
    axis.set_xlabel(_("message number"))
    axis.set_ylabel(_("latency, ms (log scale)"))
    reliable_summary = receiver["reliable_latency_ms"]
    axis.set_title(
        _(
            "{nick}, {loss:g} % loss: plain UDP {plain_delivered}/{expected} "
            "delivered; rebuilt TCP {reliable_delivered}/{expected}, p99 {p99:.0f} ms"
        ).format(
            nick=receiver["nick"],
            loss=result["setup"]["loss"],
            plain_delivered=receiver["plain_delivered"],
            expected=receiver["expected"],
            reliable_delivered=receiver["reliable_delivered"],
            p99=reliable_summary["p99"],
        )
    )
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    figure.tight_layout()
    return figure


def _handshake(plt: Any, result: dict[str, Any]) -> Any:
    segments = result["segments"]
    figure, axis = plt.subplots(figsize=(9, 1.2 + 0.45 * len(segments)))
    for row, segment in enumerate(segments):
        y = -row
        start, end = (0.0, 1.0) if segment["direction"] == "client -> server" else (1.0, 0.0)
        color = "#d62728" if ("SYN" in segment["flags"] or "FIN" in segment["flags"]) else "#1f77b4"
        axis.annotate("", xy=(end, y - 0.35), xytext=(start, y), arrowprops={"arrowstyle": "->", "color": color})
        ack = "" if segment["ack"] is None else f" ack={segment['ack']}"
        label = _("{number}. {flags} seq={seq}{ack} len={length}").format(
            number=segment["number"], flags=segment["flags"], seq=segment["seq"], ack=ack, length=segment["length"]
        )
        if segment["carries"]:
            label += f"  [{', '.join(segment['carries'])}]"
        if segment.get("retransmission"):
            label += "  (sent again)"
        if segment.get("dropped"):
            label += "  (dropped on arrival)"
        axis.text(0.5, y - 0.1, label, ha="center", va="bottom", fontsize=8, backgroundcolor="white")
    axis.set_xlim(-0.15, 1.15)
    axis.set_ylim(-len(segments), 0.8)
    axis.set_xticks([0, 1], ["client", "server"])
    axis.xaxis.tick_top()
    axis.set_yticks([])
    for x in (0, 1):
        axis.axvline(x, color="black", linewidth=0.8)
    handshakes = sum(1 for segment in segments if "SYN" in segment["flags"])
    fins = sum(1 for segment in segments if "FIN" in segment["flags"])
    title = _("one chat session: {count} segments, {handshakes} with SYN, {fins} with FIN").format(
        count=len(segments), handshakes=handshakes, fins=fins
    )
    again = sum(1 for segment in segments if segment.get("retransmission"))
    if again:
        title += _(", {count} sent again").format(count=again)
    axis.set_title(title, pad=20)
    figure.tight_layout()
    return figure


def _trace_wire(plt: Any, result: dict[str, Any]) -> Any:
    recvs = result["recvs"]
    figure, axis = plt.subplots(figsize=(10, 4.5))
    whole = "#1f77b4"
    piece = "#d62728"
    colors = [piece if recv["middle"] or recv["starts_frame"] or recv["ends_split_frame"] else whole for recv in recvs]
    axis.bar(range(1, len(recvs) + 1), [recv["bytes"] for recv in recvs], color=colors)
    axis.set_xlabel(_("recv number"))
    axis.set_ylabel(_("bytes returned by recv"))
    link = _("a {rate} link").format(rate=result["rate"]) if result["mode"] == "netns" else _("loopback")
    axis.set_title(
        _("chatclient --trace-wire over {link}: {frames} frames in {recvs} recvs, {split} split across recvs").format(
            link=link, frames=result["frames"], recvs=len(recvs), split=result["split_frames"]
        )
    )
    from matplotlib.patches import Patch

    handles = [
        Patch(color=whole, label=_("only whole frames")),
        Patch(color=piece, label=_("holds a piece of a frame")),
    ]
    axis.legend(handles=handles, loc="upper right")
    figure.tight_layout()
    return figure
