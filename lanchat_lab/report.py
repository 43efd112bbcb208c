"""Readable terminal reports of every scenario, from the scenario's result dict.

Pure: result dict in, text out (no sockets, no clocks, no matplotlib), so the
same numbers appear in the report, in `--json` and in the plot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lanchat.i18n import N_, _, display_width, pad_left, pad_right

# The server's own counters in a bot's `stats` (docs/protocol.md §8), as the table names them.
SERVER_COUNTERS = {
    "bad_token": N_("bad token"),
    "injected_duplicates": N_("injected duplicates"),
    "injected_lost": N_("injected lost"),
    "injected_reordered": N_("injected reordered"),
    "send_errors": N_("send errors"),
}


def _number(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None, align: str | None = None) -> list[str]:
    """Columns two spaces apart; `align` has an "l" or "r" per column (default: first left, others right).

    Widths are terminal cells (lanchat.i18n.display_width), so Chinese labels line up.
    """
    everything = [list(header)] if header else []
    everything += [list(row) for row in rows]
    widths = [
        max(display_width(row[column]) for row in everything if column < len(row))
        for column in range(len(everything[0]))
    ]
    lines = []
    for number, row in enumerate(everything):
        sides = align or "l" + "r" * (len(widths) - 1)
        cells = [
            pad_right(cell, width) if side == "l" else pad_left(cell, width)
            for cell, width, side in zip(row, widths, sides)
        ]
        lines.append("  ".join(cells).rstrip())
        if header and number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


# --- compare -------------------------------------------------------------------------


def compare_report(result: dict[str, Any]) -> str:
    setup = result["setup"]
    transports: dict[str, dict[str, Any]] = result["transports"]
    names = [name for name in ("tcp", "udp") if name in transports]
    where = {
        "loopback": _("a chatsrv child on loopback"),
        "external": _("your server"),
        "netns": _("a chatsrv in a network namespace"),
    }
    lines = [
        (
            _(
                "chatlab compare: {bots} bots per transport in one room, {messages} messages per transport at {rate}/s"
            ).format(
                bots=setup["bots_per_transport"],
                messages=setup["messages_per_transport"],
                rate=_number(setup["rate"], 0),
            )
        ),
        _("server: {what}, {address}").format(what=where.get(setup["mode"], setup["mode"]), address=setup["server"]),
    ]
    if setup["udp_faults"]:
        lines.append(_("server-side UDP fault injection: {flags}").format(flags=" ".join(setup["udp_faults"])))
    if setup["mode"] == "netns":
        link = []
        if setup["netns_loss"] is not None:
            link.append(
                _("{loss:g} % of packets dropped at random on arrival, each side (nftables)").format(
                    loss=setup["netns_loss"]
                )
            )
        if setup["netns_rate"]:
            link.append(_("rate limited to {rate} (tbf)").format(rate=setup["netns_rate"]))
        lines.append(_("link: veth between two namespaces, offloads off; ") + "; ".join(link))
    lines.append(_("run took {seconds:.1f} s ({when})").format(seconds=setup["duration"], when=setup["when"]))
    lines.append("")

    def row(label: str, render: Any) -> list[str]:
        return [label] + [render(transports[name]) for name in names]

    rows = [
        row(_("delivered / expected"), lambda s: f"{_number(s['delivered'])} / {_number(s['expected'])}"),
        row(_("lost messages"), lambda s: f"{_number(s['lost'])} ({_percent(s['lost'], s['expected'])})"),
        row(
            _("  server payloads lost (seq gaps)"),
            lambda s: _("{lost} of {total}").format(lost=_number(s["seq_lost"]), total=_number(s["seq_total"])),
        ),
        row(
            _("  lost on the way up (server's gaps)"),
            lambda s: _number(s["upstream_gaps"]) if s["transport"] == "udp" else "0",
        ),
        row(_("reordered (seq)"), lambda s: _number(s["reordered"])),
        row(_("duplicated (seq)"), lambda s: _number(s["duplicated"])),
        row(
            _("latency p50 / p90, ms"),
            lambda s: f"{_number(s['latency_ms'].get('p50'), 2)} / {_number(s['latency_ms'].get('p90'), 2)}",
        ),
        row(
            _("latency p99 / max, ms"),
            lambda s: f"{_number(s['latency_ms'].get('p99'), 2)} / {_number(s['latency_ms'].get('max'), 2)}",
        ),
        row(_("jitter (RFC 3550), ms"), lambda s: _number(s["jitter_ms"], 3)),
        row(_("messages/s received per bot"), lambda s: _number(s["messages_per_second"])),
        row(_("bytes per payload received: JSON"), lambda s: _number(s["payload_bytes"])),
        row(_("  + framing (length prefix)"), lambda s: _number(s["framing_bytes"])),
        row(_("  + the bot's own sends (say, ping)"), lambda s: _number(s["sent_bytes"])),
        row(_("  + IP and TCP/UDP headers, both ways"), lambda s: _number(s["header_bytes"])),
        row(_("  = on the wire"), lambda s: _number(s["wire_bytes"])),
        row(_("packets per payload (both ways)"), lambda s: _number(s["packets_per_message"], 2)),
        row(
            _("TCP retransmissions (bots' side)"),
            lambda s: _number(s["retransmits"]) if s["transport"] == "tcp" else "-",
        ),
        row(
            _("time to join, mean / max, ms"),
            lambda s: f"{_number(s['join_ms'].get('mean'), 2)} / {_number(s['join_ms'].get('max'), 2)}",
        ),
        row(
            _("other transport's messages"), lambda s: f"{_number(s['from_other'][0])} / {_number(s['from_other'][1])}"
        ),
    ]
    drops = result.get("kernel_drops")
    if drops and result["setup"].get("netns_loss") is not None:  # nftables drops only with --netns-loss
        rows.append(
            row(
                _("dropped by the kernel (to server / to bots)"),
                lambda s: f"{drops[s['transport']]['to_server']} / {drops[s['transport']]['to_bots']}",
            )
        )
    injected = {name: transports[name]["server"] for name in names if transports[name]["server"]}
    if injected:
        keys = sorted({key for counters in injected.values() for key in counters})
        for key in keys:
            rows.append(
                row(
                    _("server: {counter}").format(
                        counter=_(SERVER_COUNTERS[key]) if key in SERVER_COUNTERS else key.replace("_", " ")
                    ),
                    lambda s, key=key: _number(s["server"].get(key)),
                )
            )
    errors = {name: transports[name]["errors"] for name in names if transports[name]["errors"]}
    if errors:
        rows.append(
            row(_("errors from the server"), lambda s: ", ".join(f"{k} x{v}" for k, v in s["errors"].items()) or "-")
        )
    lines += table(rows, ["", *[name.upper() for name in names]])
    wire = {transports[name]["wire_source"] for name in names}
    lines.append("")
    lines.append(
        _("bytes on the wire: ")
        + (
            _("counted by nftables on the bots' side (IP packets, ACKs included)")
            if wire == {"nftables counters"}
            else _(
                "payload and framing measured; headers estimated as 52 bytes "
                "per TCP segment (TCP_INFO counts) and 28 per UDP datagram"
            )
        )
    )
    link_drops = result.get("link_drops")
    if link_drops:
        lines.append(
            _(
                "rate limit {rate}: the tbf queue (at most 400 ms of data) was full and dropped {to_bots:,} packets "
                "on the way to the bots and {to_server:,} on the way to the server (TCP and UDP share it)"
            ).format(
                rate=result["setup"]["netns_rate"], to_bots=link_drops["to_bots"], to_server=link_drops["to_server"]
            )
        )
    lines.append("")
    lines += [_("What this run shows:"), *("  " + text for text in compare_findings(result))]
    return "\n".join(lines)


def compare_findings(result: dict[str, Any]) -> list[str]:
    """Plain-language sentences about the run, computed from its numbers."""
    findings = []
    transports = result["transports"]
    tcp, udp = transports.get("tcp"), transports.get("udp")
    if tcp:
        text = _("TCP delivered {delivered} of {expected} messages").format(
            delivered=tcp["delivered"], expected=tcp["expected"]
        )
        if tcp["lost"] == 0 and tcp["reordered"] == 0 and tcp["duplicated"] == 0:
            text += _(", every one, in order, once")
        slowest = tcp["latency_ms"].get("max")
        median = tcp["latency_ms"].get("p50")
        if slowest is not None and median:
            text += _("; the slowest took {slowest:.1f} ms against a median of {median:.2f} ms").format(
                slowest=slowest, median=median
            )
            if tcp.get("retransmits"):
                text += _(" ({count} retransmitted segments: a lost packet holds up everything behind it)").format(
                    count=tcp["retransmits"]
                )
        findings.append(text + _("."))
    if udp:
        text = _("UDP delivered {delivered} of {expected} ({percent})").format(
            delivered=udp["delivered"], expected=udp["expected"], percent=_percent(udp["delivered"], udp["expected"])
        )
        problems = []
        if udp["lost"]:
            problems.append(_("{count} lost").format(count=udp["lost"]))
        if udp["reordered"]:
            problems.append(_("{count} out of order").format(count=udp["reordered"]))
        if udp["duplicated"]:
            problems.append(_("{count} duplicated").format(count=udp["duplicated"]))
        text += (_(": ") + _(", ").join(problems)) if problems else _(": nothing lost on this link")
        slowest = udp["latency_ms"].get("max")
        if slowest is not None:
            text += _("; the slowest took {slowest:.1f} ms").format(slowest=slowest) + (
                _(" (nothing waits for a lost datagram)") if udp["lost"] else ""
            )
        findings.append(text + _("."))
    if tcp and udp and tcp.get("wire_bytes") and udp.get("wire_bytes"):
        findings.append(
            _(
                "Each chat message cost about {tcp:.0f} bytes on the wire over TCP and "
                "{udp:.0f} over UDP (TCP adds a 4-byte frame header, longer headers and ACK packets)."
            ).format(tcp=tcp["wire_bytes"], udp=udp["wire_bytes"])
        )
    findings += _link_findings(result)
    return findings


def _link_findings(result: dict[str, Any]) -> list[str]:
    """With --netns-rate: whether the link was the bottleneck, and where each transport's messages waited."""
    drops = result.get("link_drops")
    if not drops:
        return []
    rate = result["setup"]["netns_rate"]
    dropped = drops["to_bots"] + drops["to_server"]
    if not dropped:
        return [_("The {rate} link carried this load: its queue never overflowed.").format(rate=rate)]
    text = _(
        "The {rate} link was the bottleneck: its queue overflowed and dropped {dropped:,} packets "
        "(UDP's are lost; TCP sent its own again)."
    ).format(rate=rate, dropped=dropped)
    tcp, udp = result["transports"].get("tcp"), result["transports"].get("udp")
    if tcp and udp:
        tcp_median, udp_median = tcp["latency_ms"].get("p50"), udp["latency_ms"].get("p50")
        if tcp_median is not None and udp_median is not None and tcp_median > udp_median:
            text += _(
                " UDP's median of {udp_median:,.0f} ms is the wait in "
                "that queue; TCP's {tcp_median:,.0f} ms is longer: "
                "TCP slowed the server's sending down, and its messages waited at the server as well."
            ).format(udp_median=udp_median, tcp_median=tcp_median)
    return [text]


# --- sticky --------------------------------------------------------------------------


def _preview(text: str, width: int = 72) -> str:
    shown = text if len(text) <= width else text[: width // 2 - 1] + " ... " + text[-(width // 2 - 4) :]
    return repr(shown)


def _describe_pieces(pieces: list[list[Any]]) -> str:
    """'messages 0-35 whole, message 36: first 16 bytes' from a chunk's pieces."""
    parts: list[str] = []
    run: list[int] = []

    def flush() -> None:
        if run:
            parts.append(
                _("message {index}").format(index=run[0])
                if len(run) == 1
                else _("messages {value}-{value2}").format(value=run[0], value2=run[-1])
            )
            run.clear()

    for index, part, size in pieces:
        if part == "whole":
            run.append(index)
            continue
        flush()
        label = {
            "start": _("first {size} bytes").format(size=size),
            "end": _("last {size} bytes").format(size=size),
            "middle": _("{size} bytes from the middle").format(size=size),
        }[part]
        parts.append(_("message {index}: {label}").format(index=index, label=label))
    flush()
    return ", ".join(parts)


def sticky_report(result: dict[str, Any]) -> str:
    naive = result["tcp_naive"]
    framed = result["tcp_framed"]
    udp = result["udp"]
    count = result["messages"]
    big = result["big"]
    what = (
        _("{count} short messages like {value2!r} and one of {big:,} bytes").format(
            count=count - 1, value2=result_example(result), big=big
        )
        if big
        else _("{count} short messages like {value!r}").format(count=count, value=result_example(result))
    )
    lines = [
        _("chatlab sticky: {what}, sent with {count} separate send() calls ({sent_bytes:,} bytes)").format(
            what=what, count=count, sent_bytes=result["sent_bytes"]
        ),
        _nagle_line(result),
        "",
        _("1. TCP, naive receiver: recv({recv_size}) and print what it returns").format(recv_size=naive["recv_size"]),
    ]
    for number, chunk in enumerate(naive["chunks"], 1):
        lines.append(
            _("   recv #{number}: {size} bytes = {pieces}").format(
                number=number, size=chunk["size"], pieces=_describe_pieces(chunk["pieces"])
            )
        )
        lines.append(f"      {_preview(chunk['text'])}")
    lines += [
        (
            _(
                "   -> {count} messages came out as {count2} chunks: {merged_chunks} held "
                "several messages merged, {split_messages} message(s) were cut into pieces."
            ).format(
                count=count,
                count2=len(naive["chunks"]),
                merged_chunks=naive["merged_chunks"],
                split_messages=naive["split_messages"],
            )
        ),
        _("      TCP is a byte stream: it keeps the bytes and their order, not where one send() ended."),
        "",
        _(
            "2. TCP with a 4-byte length prefix before each message (docs/protocol.md §2), the same recv({recv_size}):"
        ).format(recv_size=framed["recv_size"]),
    ]
    for number, chunk in enumerate(framed["recvs"], 1):
        held = _(", {held} bytes kept for the next frame").format(held=chunk["held"]) if chunk["held"] else ""
        lines.append(
            _("   recv #{number}: {size} bytes -> {frames} complete message(s){held}").format(
                number=number, size=chunk["size"], frames=chunk["frames"], held=held
            )
        )
    shown = framed["messages"]
    sample = ", ".join(_preview(text, 40) for text in shown[:2]) + (
        _(", ... {value}").format(value=_preview(shown[-1], 40)) if len(shown) > 2 else ""
    )
    verdict = _("exactly the messages sent, one by one") if framed["exact"] else _("NOT the messages sent")
    lines += [
        _("   -> {count} messages: {sample}").format(count=len(shown), sample=sample),
        _("      {verdict}: the receiver loops until it has 4 header bytes, then until it has N payload bytes.").format(
            verdict=verdict
        ),
        "",
        _("3. UDP: {datagrams} sendto() calls, one recvfrom({recv_size}) each").format(
            datagrams=udp["datagrams"], recv_size=udp["recv_size"]
        ),
        _("   -> {received} datagrams, {received} messages, ").format(received=udp["received"])
        + (
            _("every boundary kept: one recvfrom = one datagram = one message.")
            if udp["boundaries_kept"]
            else _("boundaries NOT kept")
        ),
    ]
    for index in udp["truncated"]:
        sent = result["message_sizes"][index]
        got = udp["sizes"][index]
        lines.append(
            _(
                "   message {index} ({sent:,} bytes) read with recvfrom({recv_size}): {got:,} "
                "bytes arrive, MSG_TRUNC is set, the other {sent2:,} bytes are gone for good."
            ).format(index=index, sent=sent, recv_size=udp["recv_size"], got=got, sent2=sent - got)
        )
    if udp["truncated"]:
        lines.append(
            _(
                "      So a UDP receiver reads with a buffer larger than any "
                "datagram it accepts (chatsrv: its limit + 1, to notice)."
            )
        )
    return "\n".join(lines)


def _nagle_line(result: dict[str, Any]) -> str:
    """How the sender's kernel cut the sends into segments, and why."""
    naive = result["tcp_naive"]
    segments = naive.get("segments_sent")
    calls = naive.get("send_calls", result["messages"])
    if result.get("nagle"):
        why = _("Nagle on: while sent data waits for its ACK, small writes are held back and sent together")
    else:
        why = _("Nagle off (TCP_NODELAY)")
        if result.get("autocorking"):
            why += _("; Linux autocorking still merges small writes while one waits in the device queue")
    if segments is None:
        return _("sender: {why} (this system does not report the segments sent)").format(why=why)
    return _("sender: {calls} send() calls left as {segments} TCP data segments ({why})").format(
        calls=calls, segments=segments, why=why
    )


def result_example(result: dict[str, Any]) -> str:
    messages = result["tcp_framed"]["messages"]
    return messages[0] if messages else ""


# --- slow ------------------------------------------------------------------------------


def slow_report(result: dict[str, Any]) -> str:
    setup = result["setup"]
    removed = result["removed"]
    lines = [
        (
            _(
                "chatlab slow: {readers} readers and a member that stops reading "
                "({stuck}, receive buffer {stuck_buffer:,} bytes); reader1 sends {messages} "
                "messages of {size} characters at {rate}/s; server: outbox limit "
                "{outbox:,} bytes, kernel send buffer {send_buffer:,} bytes per member"
            ).format(
                readers=setup["readers"],
                stuck=", ".join(setup["stuck"]).upper(),
                stuck_buffer=setup["stuck_buffer"],
                messages=setup["messages"],
                size=setup["size"],
                rate=_number(setup["rate"], 0),
                outbox=setup["outbox"],
                send_buffer=setup.get("send_buffer", 0),
            )
        ),
        "",
    ]
    for member in result["stuck_members"]:
        if member["transport"] == "tcp":
            if removed:
                lines.append(
                    _(
                        '{nick}: removed by the server with reason "{reason}" {seconds:.2f} s '
                        "after the first message (the readers had message {after_message} by then)"
                    ).format(
                        nick=member["nick"],
                        reason=removed["reason"],
                        seconds=removed["seconds"],
                        after_message=removed["after_message"],
                    )
                )
            else:
                lines.append(_("{nick}: NOT removed (the server kept queueing for it)").format(nick=member["nick"]))
            lines.append(
                _(
                    "   when it read again it found {bytes_taken:,} bytes ({received} messages) in its kernel buffer"
                ).format(bytes_taken=member["bytes_taken"], received=member["received"])
                + (_(", then the server's hang-up.") if member["closed_by_server"] else ".")
            )
        else:
            lines.append(
                _(
                    "{nick}: never removed and never missed by the server; when "
                    "it read again it had {received} of {messages} messages: its own "
                    "kernel dropped the rest ({seq_gaps} seq numbers missing)."
                ).format(
                    nick=member["nick"],
                    received=member["received"],
                    messages=setup["messages"],
                    seq_gaps=member["seq_gaps"],
                )
            )
    lines.append("")
    rows = []
    for reader in result["readers"]:
        latency = reader["latency_ms"] or {}
        rows.append(
            [
                reader["nick"],
                f"{reader['received']} / {reader['expected']}",
                "-" if reader.get("kept_up") is None else f"{100 * reader['kept_up']:.0f} %",
                f"{_number(reader['rate_before'])} / {_number(reader['rate_after'])}",
                _("{p50} / {p99} / {max}").format(
                    p50=_number(latency.get("p50"), 2),
                    p99=_number(latency.get("p99"), 2),
                    max=_number(latency.get("max"), 2),
                ),
                _number(reader.get("longest_gap_ms"), 0),
            ]
        )
    lines += table(
        rows,
        [
            _("reader"),
            _("received"),
            _("kept up before removal"),
            _("msgs/s before / after"),
            _("latency p50 / p99 / max, ms"),
            _("longest wait, ms"),
        ],
    )
    lines.append("")
    complete = all(r["received"] == r["expected"] for r in result["readers"])
    gaps = [r["longest_gap_ms"] for r in result["readers"] if r.get("longest_gap_ms") is not None]
    pause = max(gaps) if gaps else 0.0
    normal = 3000 / setup["rate"]  # three sending intervals, in ms
    if not complete:
        lines.append(_("-> some readers missed messages: look at the server's log."))
    elif pause <= max(normal, 50):
        lines.append(_("-> every reader got every message at the sending rate: nobody waited for the stuck member."))
    else:
        lines.append(
            _(
                "-> every reader got every message; the room waited "
                "once, at most {pause:.0f} ms: while the stuck member's"
            ).format(pause=pause)
        )
        lines.append(
            _("   queue grew, the server held the sender back (backpressure: a slow reader may still catch up),")
        )
        lines.append(_("   then, as it took nothing, dropped it; after that the room went on at full rate."))
    lines.append(
        _("   Each TCP member has its own bounded outbox: a member that does not read goes, the room does not stop.")
    )
    return "\n".join(lines)
