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
            parts.append(f"message {run[0]}" if len(run) == 1 else f"messages {run[0]}-{run[-1]}")
            run.clear()

    for index, part, size in pieces:
        if part == "whole":
            run.append(index)
            continue
        flush()
        label = {"start": f"first {size} bytes", "end": f"last {size} bytes", "middle": f"{size} bytes from the middle"}[part]
        parts.append(f"message {index}: {label}")
    flush()
    return ", ".join(parts)


def sticky_report(result: dict[str, Any]) -> str:
    naive = result["tcp_naive"]
    framed = result["tcp_framed"]
    udp = result["udp"]
    count = result["messages"]
    big = result["big"]
    what = f"{count - 1} short messages like {result_example(result)!r} and one of {big:,} bytes" if big else f"{count} short messages like {result_example(result)!r}"
    lines = [
        f"chatlab sticky: {what}, sent with {count} separate send() calls ({result['sent_bytes']:,} bytes)",
        _nagle_line(result),
        "",
        f"1. TCP, naive receiver: recv({naive['recv_size']}) and print what it returns",
    ]
    for number, chunk in enumerate(naive["chunks"], 1):
        lines.append(f"   recv #{number}: {chunk['size']} bytes = {_describe_pieces(chunk['pieces'])}")
        lines.append(f"      {_preview(chunk['text'])}")
    lines += [
        (f"   -> {count} messages came out as {len(naive['chunks'])} chunks: {naive['merged_chunks']} held several "
        f"messages merged, {naive['split_messages']} message(s) were cut into pieces."),
        "      TCP is a byte stream: it keeps the bytes and their order, not where one send() ended.",
        "",
        f"2. TCP with a 4-byte length prefix before each message (docs/protocol.md §2), the same recv({framed['recv_size']}):",
    ]
    for number, chunk in enumerate(framed["recvs"], 1):
        held = f", {chunk['held']} bytes kept for the next frame" if chunk["held"] else ""
        lines.append(f"   recv #{number}: {chunk['size']} bytes -> {chunk['frames']} complete message(s){held}")
    shown = framed["messages"]
    sample = ", ".join(_preview(text, 40) for text in shown[:2]) + (f", ... {_preview(shown[-1], 40)}" if len(shown) > 2 else "")
    verdict = "exactly the messages sent, one by one" if framed["exact"] else "NOT the messages sent"
    lines += [
        f"   -> {len(shown)} messages: {sample}",
        f"      {verdict}: the receiver loops until it has 4 header bytes, then until it has N payload bytes.",
        "",
        f"3. UDP: {udp['datagrams']} sendto() calls, one recvfrom({udp['recv_size']}) each",
        f"   -> {udp['received']} datagrams, {udp['received']} messages, "
        + ("every boundary kept: one recvfrom = one datagram = one message." if udp["boundaries_kept"] else "boundaries NOT kept"),
    ]
    for index in udp["truncated"]:
        sent = result["message_sizes"][index]
        got = udp["sizes"][index]
        lines.append(
            f"   message {index} ({sent:,} bytes) read with recvfrom({udp['recv_size']}): {got:,} bytes arrive, "
            f"MSG_TRUNC is set, the other {sent - got:,} bytes are gone for good."
        )
    if udp["truncated"]:
        lines.append("      So a UDP receiver reads with a buffer larger than any datagram it accepts (chatsrv: its limit + 1, to notice).")
    return "\n".join(lines)


def _nagle_line(result: dict[str, Any]) -> str:
    """How the sender's kernel cut the sends into segments, and why."""
    naive = result["tcp_naive"]
    segments = naive.get("segments_sent")
    calls = naive.get("send_calls", result["messages"])
    if result.get("nagle"):
        why = "Nagle on: while sent data waits for its ACK, small writes are held back and sent together"
    else:
        why = "Nagle off (TCP_NODELAY)"
        if result.get("autocorking"):
            why += "; Linux autocorking still merges small writes while one waits in the device queue"
    if segments is None:
        return f"sender: {why} (this system does not report the segments sent)"
    return f"sender: {calls} send() calls left as {segments} TCP data segments ({why})"


def result_example(result: dict[str, Any]) -> str:
    messages = result["tcp_framed"]["messages"]
    return messages[0] if messages else ""


# --- slow ------------------------------------------------------------------------------


def slow_report(result: dict[str, Any]) -> str:
    setup = result["setup"]
    removed = result["removed"]
    lines = [
        (f"chatlab slow: {setup['readers']} readers and a member that stops reading "
        f"({', '.join(setup['stuck']).upper()}, receive buffer {setup['stuck_buffer']:,} bytes); "
        f"reader1 sends {setup['messages']} messages of {setup['size']} characters at {_number(setup['rate'], 0)}/s; "
        f"server: outbox limit {setup['outbox']:,} bytes, kernel send buffer {setup.get('send_buffer', 0):,} bytes per member"),
        "",
    ]
    for member in result["stuck_members"]:
        if member["transport"] == "tcp":
            if removed:
                lines.append(
                    f"{member['nick']}: removed by the server with reason \"{removed['reason']}\" "
                    f"{removed['seconds']:.2f} s after the first message (the readers had message {removed['after_message']} by then)"
                )
            else:
                lines.append(f"{member['nick']}: NOT removed (the server kept queueing for it)")
            lines.append(
                f"   when it read again it found {member['bytes_taken']:,} bytes ({member['received']} messages) in its kernel buffer"
                + (", then the server's hang-up." if member["closed_by_server"] else ".")
            )
        else:
            lines.append(
                f"{member['nick']}: never removed and never missed by the server; when it read again it had "
                f"{member['received']} of {setup['messages']} messages: its own kernel dropped the rest "
                f"({member['seq_gaps']} seq numbers missing)."
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
                f"{_number(latency.get('p50'), 2)} / {_number(latency.get('p99'), 2)} / {_number(latency.get('max'), 2)}",
                _number(reader.get("longest_gap_ms"), 0),
            ]
        )
    lines += table(
        rows, ["reader", "received", "kept up before removal", "msgs/s before / after", "latency p50 / p99 / max, ms", "longest wait, ms"]
    )
    lines.append("")
    complete = all(r["received"] == r["expected"] for r in result["readers"])
    gaps = [r["longest_gap_ms"] for r in result["readers"] if r.get("longest_gap_ms") is not None]
    pause = max(gaps) if gaps else 0.0
    normal = 3000 / setup["rate"]  # three sending intervals, in ms
    if not complete:
        lines.append("-> some readers missed messages: look at the server's log.")
    elif pause <= max(normal, 50):
        lines.append("-> every reader got every message at the sending rate: nobody waited for the stuck member.")
    else:
        lines.append(
            f"-> every reader got every message; the room waited once, at most {pause:.0f} ms: while the stuck member's"
        )
        lines.append("   queue grew, the server held the sender back (backpressure: a slow reader may still catch up),")
        lines.append("   then, as it took nothing, dropped it; after that the room went on at full rate.")
    lines.append("   Each TCP member has its own bounded outbox: a member that does not read goes, the room does not stop.")
    return "\n".join(lines)


# --- restart ---------------------------------------------------------------------------


def restart_report(result: dict[str, Any]) -> str:
    setup = result["setup"]
    how = "stopped with SIGTERM (it says goodbye)" if setup["graceful"] else "killed with SIGKILL (a crash: no goodbye)"
    lines = [
        (f"chatlab restart: {setup['bots_per_transport']} bots per transport ({', '.join(setup['transports']).upper()}), "
        f"pinging every {setup['interval']:g} s; at {setup['before']:g} s the server is {how}, "
        f"and {setup['down']:g} s later it starts again on port {setup['port']}"),
        f"(a UDP bot gives up after {setup['udp_timeout']:g} s without a pong; chatclient waits the server's peer_timeout)",
        "",
    ]
    timeline: list[tuple[float, str, str]] = [(t, "server", text) for t, text in result["server_events"]]
    for bot in result["bots"]:
        for t, text in bot["events"]:
            timeline.append((t, bot["nick"], text))
    timeline.sort(key=lambda item: item[0])
    rows = [[f"{t:7.3f}", who, text] for t, who, text in timeline]
    lines += table(rows, ["time, s", "who", "what happened"], align="rll")
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
    lines += table(rows, ["bot", "noticed after the server went", "back after it returned"])
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
        lines.append("-> TCP knows at once: the kernel ends the connection and reports it.")
    if udp and all(after is not None and after < quick for after in udp):
        lines += [
            "   UDP knew at once too, but only because the server said goodbye (a `left` with reason shutdown) and that",
            "   datagram arrived: without it (a crash, or the goodbye lost) only silence or a new server's not_joined tells it.",
        ]
    elif udp:
        lines += [
            "   UDP has no connection to end: its datagrams leave without an error, and only silence (a timeout) or",
            "   a new server's not_joined tells it.",
        ]
    return lines


# --- timewait --------------------------------------------------------------------------


def timewait_report(result: dict[str, Any]) -> str:
    lines = ["chatlab timewait: a client and a server on 127.0.0.1 close their connection; the states the kernel shows after each step",
             "(from /proc/net/tcp, what `ss -tan` shows)", ""]
    for number, case in enumerate(result["cases"], 1):
        lines.append(f"{number}. the {case['first']} closes first (client port {case['client_port']}, server port {case['server_port']})")
        rows = []
        for step in case["steps"]:
            note = "the other side's recv() returns b'' (end of stream)" if step.get("other_reads_eof") else ""
            rows.append([step["step"], step["client"], step["server"], note])
        lines += ["   " + line for line in table(rows, ["step", "client socket", "server socket", ""], "llll")]
        holder = case["time_wait_on"]
        if holder:
            left = case["time_wait_left"]
            timer = f", for another {left:.0f} s" if left is not None else ""
            lines.append(f"   -> the {holder} closed first and holds TIME_WAIT{timer}; the other side is gone.")
        else:
            lines.append("   -> no single side in TIME_WAIT (the kernel did not show the expected states in time)")
        lines.append("")
    rebind = result["rebind"]
    lines += [
        f"3. a server on port {rebind['port']} closes {rebind['connections']} connection(s) first and stops, like chatsrv on Ctrl-C:",
        f"   connections on that port in TIME_WAIT: {rebind['time_wait_sockets']}",
        f"   a new socket, plain bind() to port {rebind['port']}: {_bind_word(rebind['plain_bind'])}",
        f"   a new socket, SO_REUSEADDR then bind(): {_bind_word(rebind['reuseaddr_bind'])}",
    ]
    if rebind["plain_bind"] == "EADDRINUSE" and rebind["reuseaddr_bind"] == "ok":
        lines.append("   -> restarting a server at once needs SO_REUSEADDR (chatsrv sets it; so does socket.create_server).")
    return "\n".join(lines)


def _bind_word(outcome: str) -> str:
    return "succeeds" if outcome == "ok" else f"fails with {outcome}"


# --- threads ---------------------------------------------------------------------------


def threads_report(result: dict[str, Any]) -> str:
    lines = [
        (f"chatlab threads: {result['clients']} clients arrive {result['stagger'] * 1000:.0f} ms apart; each says one line, "
         f"reads the answer, stays {result['hold']:g} s and leaves"),
        "",
    ]
    for server in result["servers"]:
        label = "one client at a time" if server["server"] == "iterative" else "a thread per client, like chatsrv"
        lines.append(f"{server['server']} server ({server['class']}, {label}):")
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
        header = ["", "arrived at, ms", "connect() took, ms", "accept() after, ms", "first answer after, ms"]
        header += ["error"] if errors else []
        lines += ["   " + line for line in table(rows, header)]
        longest = max((client["accepted_after_ms"] or 0.0 for client in server["clients"]), default=0.0)
        lines.append(f"   -> the longest wait at accept: {_number(longest)} ms")
        lines.append("")
    lines += [
        "connect() returns at once in both: the kernel finishes the three-way handshake from the listen backlog",
        "before the program calls accept(). The iterative server accepts the next client only when the one before",
        "has left, so a client that stays blocks everyone behind it; the threaded server accepts each one at once.",
    ]
    return "\n".join(lines)


# --- reliable-udp ----------------------------------------------------------------------


def _latency_cells(summary: dict[str, Any]) -> tuple[str, str]:
    return (f"{_number(summary['p50'], 2)} / {_number(summary['p90'], 2)}", f"{_number(summary['p99'], 2)} / {_number(summary['max'], 2)}")


def reliable_report(result: dict[str, Any]) -> str:
    setup = result["setup"]
    lines = [
        (f"chatlab reliable-udp: a UDP sender says {setup['messages']} numbered messages at {_number(setup['rate'], 0)}/s to "
         f"{setup['receivers']} UDP receivers; the server drops {setup['loss']:g} % of the datagrams it sends (seed {setup['seed']})"),
        (f"the receivers acknowledge every copy (whisper 'ack N'), drop duplicates and deliver in order; the sender resends "
         f"what is not acknowledged after {setup['rto'] * 1000:.0f} ms, doubling the timer on every retry"),
        "",
    ]
    for receiver in result["receivers"]:
        expected = receiver["expected"]
        plain_50, plain_99 = _latency_cells(receiver["plain_latency_ms"])
        reliable_50, reliable_99 = _latency_cells(receiver["reliable_latency_ms"])
        rows = [
            ["delivered / expected", f"{receiver['plain_delivered']} / {expected}", f"{receiver['reliable_delivered']} / {expected}"],
            ["in order, each once", "-", "yes" if receiver["in_order"] else "NO"],
            ["latency p50 / p90, ms", plain_50, reliable_50],
            ["latency p99 / max, ms", plain_99, reliable_99],
            ["duplicates suppressed", "-", _number(receiver["duplicates_suppressed"])],
            ["waited in the reordering buffer", "-", _number(receiver["held_for_order"])],
            ["acknowledgements sent", "-", _number(receiver["acks_sent"])],
        ]
        lines.append(f"receiver {receiver['nick']}:")
        lines += ["   " + line for line in table(rows, ["", "plain UDP", "UDP + acks, timer, order"])]
        lines.append("")
    verdict = "every receiver got every message, in order, once" if result["complete"] else "NOT complete within the time allowed"
    lines += [
        f"sender: {result['retransmissions']} retransmissions, {result['acks_received']} acknowledgements received; {verdict} ({result['took']:.1f} s)",
        "-> plain UDP loses messages but nothing waits; with acknowledgements, a retransmission timer, duplicate",
        "   suppression and a reordering buffer everything arrives, and every message behind a lost one waits for",
        "   its retransmission: the latency tail of TCP. You end up rebuilding TCP.",
    ]
    return "\n".join(lines)


# --- handshake -------------------------------------------------------------------------


def handshake_report(result: dict[str, Any]) -> str:
    lines = [
        (f"chatlab handshake: every TCP segment of one chat session on loopback (client port {result['client_port']}, "
         f"server port {result['server_port']}): connect, hello, welcome, say, bye, close"),
        "sequence numbers are relative to each side's SYN, as Wireshark shows them; len = bytes of data",
        "",
    ]
    rows = []
    for segment in result["segments"]:
        arrow = "client  ------>  server" if segment["direction"] == "client -> server" else "client  <------  server"
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
        lines.append(f"-> three-way handshake: segments {', '.join(str(s['number']) for s in syn)} and the ACK after them "
                     "(a SYN and a FIN each count as one sequence number).")
    if len(fins) >= 2:
        first_fin = fins[0]["number"]
        teardown = [s for s in result["segments"] if s["number"] >= first_fin and not s["length"]]
        lines.append(
            f"-> teardown: FINs in segments {', '.join(str(s['number']) for s in fins)}, each acknowledged by the other side: "
            f"{len(teardown)} segments here (四次挥手 is four when no ACK rides along with the second FIN)."
        )
    return "\n".join(lines)
