"""Readable terminal reports of every scenario, from the scenario's result dict.

Pure: result dict in, text out (no sockets, no clocks, no matplotlib), so the
same numbers appear in the report, in `--json` and in the plot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lanchat.i18n import _, display_width, pad_left, pad_right


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
        lines.append(_("server-side UDP fault injection: {flags}").format(flags=' '.join(setup['udp_faults'])))
    if setup["mode"] == "netns":
        link = []
        if setup["netns_loss"] is not None:
            link.append(
                _("{loss:g} % of packets dropped at random on arrival, each side (nftables)").format(
                    loss=setup["netns_loss"]
                )
            )
        if setup["netns_rate"]:
            link.append(_("rate limited to {rate} (tbf)").format(rate=setup['netns_rate']))
        lines.append(_("link: veth between two namespaces, offloads off; ") + "; ".join(link))
    lines.append(_("run took {seconds:.1f} s ({when})").format(seconds=setup['duration'], when=setup['when']))
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
    if drops:
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
                    _("server: {counter}").format(counter=key.replace("_", " ")),
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
                "payload and framing measured; headers estimated as 52 bytes per TCP segment (TCP_INFO counts) and 28 per UDP datagram"
            )
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
        findings.append(text + ".")
    if udp:
        text = _("UDP delivered {delivered} of {expected} ({percent})").format(
            delivered=udp["delivered"], expected=udp["expected"], percent=_percent(udp["delivered"], udp["expected"])
        )
        problems = []
        if udp["lost"]:
            problems.append(_("{count} lost").format(count=udp['lost']))
        if udp["reordered"]:
            problems.append(_("{count} out of order").format(count=udp['reordered']))
        if udp["duplicated"]:
            problems.append(_("{count} duplicated").format(count=udp['duplicated']))
        text += (": " + ", ".join(problems)) if problems else _(": nothing lost on this link")
        slowest = udp["latency_ms"].get("max")
        if slowest is not None:
            text += _("; the slowest took {slowest:.1f} ms").format(slowest=slowest) + (
                _(" (nothing waits for a lost datagram)") if udp["lost"] else ""
            )
        findings.append(text + ".")
    if tcp and udp and tcp.get("wire_bytes") and udp.get("wire_bytes"):
        findings.append(
            _(
                "Each chat message cost about {tcp:.0f} bytes on the wire over TCP and "
                "{udp:.0f} over UDP (TCP adds a 4-byte frame header, longer headers and ACK packets)."
            ).format(tcp=tcp["wire_bytes"], udp=udp["wire_bytes"])
        )
    return findings


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
        _("{value} short messages like {value2!r} and one of {big:,} bytes").format(
            value=count - 1, value2=result_example(result), big=big
        )
        if big
        else _("{count} short messages like {value!r}").format(count=count, value=result_example(result))
    )
    lines = [
        _("chatlab sticky: {what}, sent with {count} separate send() calls ({value:,} bytes)").format(
            what=what, count=count, value=result["sent_bytes"]
        ),
        _nagle_line(result),
        "",
        _("1. TCP, naive receiver: recv({value}) and print what it returns").format(value=naive["recv_size"]),
    ]
    for number, chunk in enumerate(naive["chunks"], 1):
        lines.append(
            _("   recv #{number}: {value} bytes = {value2}").format(
                number=number, value=chunk["size"], value2=_describe_pieces(chunk["pieces"])
            )
        )
        lines.append(f"      {_preview(chunk['text'])}")
    lines += [
        (
            _(
                "   -> {count} messages came out as {count2} chunks: {value} held "
                "several messages merged, {value2} message(s) were cut into pieces."
            ).format(
                count=count, count2=len(naive["chunks"]), value=naive["merged_chunks"], value2=naive["split_messages"]
            )
        ),
        _("      TCP is a byte stream: it keeps the bytes and their order, not where one send() ended."),
        "",
        _(
            "2. TCP with a 4-byte length prefix before each message (docs/protocol.md §2), the same recv({value}):"
        ).format(value=framed["recv_size"]),
    ]
    for number, chunk in enumerate(framed["recvs"], 1):
        held = _(", {value} bytes kept for the next frame").format(value=chunk['held']) if chunk["held"] else ""
        lines.append(
            _("   recv #{number}: {value} bytes -> {value2} complete message(s){held}").format(
                number=number, value=chunk["size"], value2=chunk["frames"], held=held
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
        _("3. UDP: {value} sendto() calls, one recvfrom({value2}) each").format(
            value=udp["datagrams"], value2=udp["recv_size"]
        ),
        _("   -> {value} datagrams, {value} messages, ").format(value=udp["received"])
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
                "   message {index} ({sent:,} bytes) read with recvfrom({value}): {got:,} "
                "bytes arrive, MSG_TRUNC is set, the other {value2:,} bytes are gone for good."
            ).format(index=index, sent=sent, value=udp["recv_size"], got=got, value2=sent - got)
        )
    if udp["truncated"]:
        lines.append(
            _(
                "      So a UDP receiver reads with a buffer larger than any datagram it accepts (chatsrv: its limit + 1, to notice)."
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
                "chatlab slow: {value} readers and a member that stops reading "
                "({value2}, receive buffer {value3:,} bytes); reader1 sends {value4} "
                "messages of {value5} characters at {value6}/s; server: outbox limit "
                "{value7:,} bytes, kernel send buffer {value8:,} bytes per member"
            ).format(
                value=setup["readers"],
                value2=", ".join(setup["stuck"]).upper(),
                value3=setup["stuck_buffer"],
                value4=setup["messages"],
                value5=setup["size"],
                value6=_number(setup["rate"], 0),
                value7=setup["outbox"],
                value8=setup.get("send_buffer", 0),
            )
        ),
        "",
    ]
    for member in result["stuck_members"]:
        if member["transport"] == "tcp":
            if removed:
                lines.append(
                    _(
                        '{value}: removed by the server with reason "{value2}" {value3:.2f} s '
                        "after the first message (the readers had message {value4} by then)"
                    ).format(
                        value=member["nick"],
                        value2=removed["reason"],
                        value3=removed["seconds"],
                        value4=removed["after_message"],
                    )
                )
            else:
                lines.append(_("{value}: NOT removed (the server kept queueing for it)").format(value=member['nick']))
            lines.append(
                _("   when it read again it found {value:,} bytes ({value2} messages) in its kernel buffer").format(
                    value=member["bytes_taken"], value2=member["received"]
                )
                + (_(", then the server's hang-up.") if member["closed_by_server"] else ".")
            )
        else:
            lines.append(
                _(
                    "{value}: never removed and never missed by the server; when "
                    "it read again it had {value2} of {value3} messages: its own "
                    "kernel dropped the rest ({value4} seq numbers missing)."
                ).format(
                    value=member["nick"], value2=member["received"], value3=setup["messages"], value4=member["seq_gaps"]
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
                _("{value} / {value2} / {value3}").format(
                    value=_number(latency.get("p50"), 2),
                    value2=_number(latency.get("p99"), 2),
                    value3=_number(latency.get("max"), 2),
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
                "-> every reader got every message; the room waited once, at most {pause:.0f} ms: while the stuck member's"
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


# --- restart ---------------------------------------------------------------------------


def restart_report(result: dict[str, Any]) -> str:
    setup = result["setup"]
    how = (
        _("stopped with SIGTERM (it says goodbye)")
        if setup["graceful"]
        else _("killed with SIGKILL (a crash: no goodbye)")
    )
    lines = [
        (
            _(
                "chatlab restart: {value} bots per transport ({value2}), "
                "pinging every {value3:g} s; at {value4:g} s the server is "
                "{how}, and {value5:g} s later it starts again on port {value6}"
            ).format(
                value=setup["bots_per_transport"],
                value2=", ".join(setup["transports"]).upper(),
                value3=setup["interval"],
                value4=setup["before"],
                how=how,
                value5=setup["down"],
                value6=setup["port"],
            )
        ),
        _("(a UDP bot gives up after {value:g} s without a pong; chatclient waits the server's peer_timeout)").format(
            value=setup["udp_timeout"]
        ),
        "",
    ]
    timeline: list[tuple[float, str, str]] = [(t, "server", text) for t, text in result["server_events"]]
    for bot in result["bots"]:
        for t, text in bot["events"]:
            timeline.append((t, bot["nick"], text))
    timeline.sort(key=lambda item: item[0])
    rows = [[f"{t:7.3f}", who, text] for t, who, text in timeline]
    lines += table(rows, [_("time, s"), _("who"), _("what happened")], align="rll")
    lines.append("")
    rows = []
    for bot in result["bots"]:
        rows.append(
            [
                bot["nick"],
                "-" if bot["noticed_after"] is None else f"{bot['noticed_after']:.3f} s",
                "-" if bot["back_after_restart"] is None else f"{bot['back_after_restart']:.3f} s",
            ]
        )
    lines += table(rows, [_("bot"), _("noticed after the server went"), _("back after it returned")])
    lines.append("")
    lines += restart_summary(result)
    return "\n".join(lines)


def restart_summary(result: dict[str, Any]) -> list[str]:
    """The closing lines, from what the bots noticed (a fixed sentence was wrong for --graceful)."""
    quick = 0.5  # seconds: noticed "at once" (a UDP timeout is longer than this)

    def noticed(transport: str) -> list[float | None]:
        return [bot["noticed_after"] for bot in result["bots"] if bot["transport"] == transport]

    udp = noticed("udp")
    lines = []
    if noticed("tcp"):
        lines.append(_("-> TCP knows at once: the kernel ends the connection and reports it."))
    if udp and all(after is not None and after < quick for after in udp):
        lines += [
            _(
                "   UDP knew at once too, but only because the server said goodbye (a `left` with reason shutdown) and that"
            ),
            _(
                "   datagram arrived: without it (a crash, or the goodbye lost) only silence or a new server's not_joined tells it."
            ),
        ]
    elif udp:
        lines += [
            _("   UDP has no connection to end: its datagrams leave without an error, and only silence (a timeout) or"),
            _("   a new server's not_joined tells it."),
        ]
    return lines


# --- timewait --------------------------------------------------------------------------


def timewait_report(result: dict[str, Any]) -> str:
    lines = [
        _(
            "chatlab timewait: a client and a server on 127.0.0.1 close their connection; the states the kernel shows after each step"
        ),
        _("(from /proc/net/tcp, what `ss -tan` shows)"),
        "",
    ]
    for number, case in enumerate(result["cases"], 1):
        lines.append(
            _("{number}. the {value} closes first (client port {value2}, server port {value3})").format(
                number=number, value=case["first"], value2=case["client_port"], value3=case["server_port"]
            )
        )
        rows = []
        for step in case["steps"]:
            note = _("the other side's recv() returns b'' (end of stream)") if step.get("other_reads_eof") else ""
            rows.append([step["step"], step["client"], step["server"], note])
        lines += ["   " + line for line in table(rows, [_("step"), _("client socket"), _("server socket"), ""], "llll")]
        holder = case["time_wait_on"]
        if holder:
            left = case["time_wait_left"]
            timer = _(", for another {left:.0f} s").format(left=left) if left is not None else ""
            lines.append(
                _("   -> the {holder} closed first and holds TIME_WAIT{timer}; the other side is gone.").format(
                    holder=holder, timer=timer
                )
            )
        else:
            lines.append(_("   -> no single side in TIME_WAIT (the kernel did not show the expected states in time)"))
        lines.append("")
    rebind = result["rebind"]
    lines += [
        _("3. a server on port {value} closes {value2} connection(s) first and stops, like chatsrv on Ctrl-C:").format(
            value=rebind["port"], value2=rebind["connections"]
        ),
        _("   connections on that port in TIME_WAIT: {value}").format(value=rebind["time_wait_sockets"]),
        _("   a new socket, plain bind() to port {value}: {value2}").format(
            value=rebind["port"], value2=_bind_word(rebind["plain_bind"])
        ),
        _("   a new socket, SO_REUSEADDR then bind(): {value}").format(value=_bind_word(rebind["reuseaddr_bind"])),
    ]
    if rebind["plain_bind"] == "EADDRINUSE" and rebind["reuseaddr_bind"] == "ok":
        lines.append(
            _("   -> restarting a server at once needs SO_REUSEADDR (chatsrv sets it; so does socket.create_server).")
        )
    return "\n".join(lines)


def _bind_word(outcome: str) -> str:
    return _("succeeds") if outcome == "ok" else _("fails with {outcome}").format(outcome=outcome)


# --- threads ---------------------------------------------------------------------------


def threads_report(result: dict[str, Any]) -> str:
    lines = [
        (
            _(
                "chatlab threads: {value} clients arrive {value2:.0f} ms apart; each "
                "says one line, reads the answer, stays {value3:g} s and leaves"
            ).format(value=result["clients"], value2=result["stagger"] * 1000, value3=result["hold"])
        ),
        "",
    ]
    for server in result["servers"]:
        label = _("one client at a time") if server["server"] == "iterative" else _("a thread per client, like chatsrv")
        lines.append(
            _("{value} server ({value2}, {label}):").format(value=server["server"], value2=server["class"], label=label)
        )
        errors = any(client["error"] for client in server["clients"])
        rows = []
        for client in server["clients"]:
            row = [
                f"client {client['client']}",
                _number(client["arrived_ms"]),
                _number(client["connect_ms"]),
                _number(client["accepted_after_ms"]),
                _number(client["answer_after_ms"]),
            ]
            rows.append(row + [client["error"] or ""] if errors else row)
        header = [
            "",
            _("arrived at, ms"),
            _("connect() took, ms"),
            _("accept() after, ms"),
            _("first answer after, ms"),
        ]
        header += ["error"] if errors else []
        lines += ["   " + line for line in table(rows, header)]
        longest = max((client["accepted_after_ms"] or 0.0 for client in server["clients"]), default=0.0)
        lines.append(_("   -> the longest wait at accept: {value} ms").format(value=_number(longest)))
        lines.append("")
    lines += [
        _("connect() returns at once in both: the kernel finishes the three-way handshake from the listen backlog"),
        _("before the program calls accept(). The iterative server accepts the next client only when the one before"),
        _("has left, so a client that stays blocks everyone behind it; the threaded server accepts each one at once."),
    ]
    return "\n".join(lines)


# --- reliable-udp ----------------------------------------------------------------------


def _latency_cells(summary: dict[str, Any]) -> tuple[str, str]:
    return (f"{_number(summary['p50'], 2)} / {_number(summary['p90'], 2)}", f"{_number(summary['p99'], 2)} / {_number(summary['max'], 2)}")


def reliable_report(result: dict[str, Any]) -> str:
    setup = result["setup"]
    lines = [
        (
            _(
                "chatlab reliable-udp: a UDP sender says {value} numbered messages at {value2}/s to {value3} "
                "UDP receivers; the server drops {value4:g} % of the datagrams it sends (seed {value5})"
            ).format(
                value=setup["messages"],
                value2=_number(setup["rate"], 0),
                value3=setup["receivers"],
                value4=setup["loss"],
                value5=setup["seed"],
            )
        ),
        (
            _(
                "the receivers acknowledge every copy (whisper 'ack N'), drop duplicates and deliver in order; the "
                "sender resends what is not acknowledged after {value:.0f} ms, doubling the timer on every retry"
            ).format(value=setup["rto"] * 1000)
        ),
        "",
    ]
    for receiver in result["receivers"]:
        expected = receiver["expected"]
        plain_50, plain_99 = _latency_cells(receiver["plain_latency_ms"])
        reliable_50, reliable_99 = _latency_cells(receiver["reliable_latency_ms"])
        rows = [
            [
                _("delivered / expected"),
                f"{receiver['plain_delivered']} / {expected}",
                f"{receiver['reliable_delivered']} / {expected}",
            ],
            [_("in order, each once"), "-", _("yes") if receiver["in_order"] else _("NO")],
            [_("latency p50 / p90, ms"), plain_50, reliable_50],
            [_("latency p99 / max, ms"), plain_99, reliable_99],
            [_("duplicates suppressed"), "-", _number(receiver["duplicates_suppressed"])],
            [_("waited in the reordering buffer"), "-", _number(receiver["held_for_order"])],
            [_("acknowledgements sent"), "-", _number(receiver["acks_sent"])],
        ]
        lines.append(_("receiver {value}:").format(value=receiver['nick']))
        lines += ["   " + line for line in table(rows, ["", _("plain UDP"), _("UDP + acks, timer, order")])]
        lines.append("")
    verdict = (
        _("every receiver got every message, in order, once")
        if result["complete"]
        else _("NOT complete within the time allowed")
    )
    lines += [
        _("sender: {value} retransmissions, {value2} acknowledgements received; {verdict} ({value3:.1f} s)").format(
            value=result["retransmissions"], value2=result["acks_received"], verdict=verdict, value3=result["took"]
        ),
        _("-> plain UDP loses messages but nothing waits; with acknowledgements, a retransmission timer, duplicate"),
        _("   suppression and a reordering buffer everything arrives, and every message behind a lost one waits for"),
        _("   its retransmission: the latency tail of TCP. You end up rebuilding TCP."),
    ]
    return "\n".join(lines)


# --- handshake -------------------------------------------------------------------------


def handshake_report(result: dict[str, Any]) -> str:
    lines = [
        (
            _(
                "chatlab handshake: every TCP segment of one chat session on loopback (client "
                "port {value}, server port {value2}): connect, hello, welcome, say, bye, close"
            ).format(value=result["client_port"], value2=result["server_port"])
        ),
        _("sequence numbers are relative to each side's SYN, as Wireshark shows them; len = bytes of data"),
        "",
    ]
    rows = []
    for segment in result["segments"]:
        arrow = (
            _("client  ------>  server") if segment["direction"] == "client -> server" else _("client  <------  server")
        )
        rows.append(
            [
                str(segment["number"]),
                f"{segment['ms']:.3f}",
                arrow,
                segment["flags"],
                "-" if segment["seq"] is None else str(segment["seq"]),
                "-" if segment["ack"] is None else str(segment["ack"]),
                str(segment["length"]),
                ", ".join(segment["carries"]),
            ]
        )
    lines += table(rows, ["#", "ms", "", "flags", "seq", "ack", "len", "lanchat"], align="rrllrrrl")
    syn = [segment for segment in result["segments"] if "SYN" in segment["flags"]]
    fins = [segment for segment in result["segments"] if "FIN" in segment["flags"]]
    lines.append("")
    if len(syn) >= 2:
        lines.append(
            _(
                "-> three-way handshake: segments {value} and the ACK after "
                "them (a SYN and a FIN each count as one sequence number)."
            ).format(value=", ".join(str(s["number"]) for s in syn))
        )
    if len(fins) >= 2:
        first_fin = fins[0]["number"]
        teardown = [s for s in result["segments"] if s["number"] >= first_fin and not s["length"]]
        lines.append(
            _(
                "-> teardown: FINs in segments {value}, each acknowledged by the other side: "
                "{count} segments here (四次挥手 is four when no ACK rides along with the second FIN)."
            ).format(value=", ".join(str(s["number"]) for s in fins), count=len(teardown))
        )
    return "\n".join(lines)
