"""Readable terminal reports of the connection-life scenarios: restart, timewait, threads, reliable-udp,
handshake and trace-wire, from the scenario's result dict.

Pure like lanchat_lab.report (result dict in, text out: no sockets, no clocks, no matplotlib); the table
and number helpers come from there. Must not import the scenarios or the CLI.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from lanchat.i18n import N_, _, ngettext
from lanchat_lab.report import _number, table

# The words of the JSON (sides, steps, server kinds) as a student reads them; the JSON keeps them as they are.
WORDS = {
    "client": N_("client"),
    "server": N_("server"),
    "connected": N_("connected"),
    "client closes": N_("client closes"),
    "server closes": N_("server closes"),
    "(gone)": N_("(gone)"),
    "iterative": N_("iterative"),
    "threaded": N_("threaded"),
}


def word(value: str) -> str:
    """A value of the JSON in the report's language (other values, socket states such as TIME_WAIT, as they are)."""
    return _(WORDS[value]) if value in WORDS else value

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
                "chatlab restart: {bots_per_transport} bots per transport ({transports}), "
                "pinging every {interval:g} s; at {before:g} s the server is "
                "{how}, and {down:g} s later it starts again on port {port}"
            ).format(
                bots_per_transport=setup["bots_per_transport"],
                transports=", ".join(setup["transports"]).upper(),
                interval=setup["interval"],
                before=setup["before"],
                how=how,
                down=setup["down"],
                port=setup["port"],
            )
        ),
        _(
            "(a UDP bot gives up after {udp_timeout:g} s without a pong; chatclient waits the server's peer_timeout)"
        ).format(udp_timeout=setup["udp_timeout"]),
        "",
    ]
    timeline: list[tuple[float, str, str]] = [
        (t, word("server"), _server_event(text)) for t, text in result["server_events"]
    ]
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


def _server_event(text: str) -> str:
    """A server event of the restart result (English, as --json gives it) in the report's language."""
    launched = re.fullmatch(r"server launched again on port (\d+)", text)
    if launched is not None:
        return _("server launched again on port {port}").format(port=launched.group(1))
    return _(text)  # marked N_ in lanchat_lab.restart


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
                "   UDP knew at once too, but only because the server "
                "said goodbye (a `left` with reason shutdown) and that"
            ),
            _(
                "   datagram arrived: without it (a crash, or the goodbye "
                "lost) only silence or a new server's not_joined tells it."
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
            "chatlab timewait: a client and a server on 127.0.0.1 close "
            "their connection; the states the kernel shows after each step"
        ),
        _("(from /proc/net/tcp, what `ss -tan` shows)"),
        "",
    ]
    for number, case in enumerate(result["cases"], 1):
        lines.append(
            _("{number}. the {first} closes first (client port {client_port}, server port {server_port})").format(
                number=number,
                first=word(case["first"]),
                client_port=case["client_port"],
                server_port=case["server_port"],
            )
        )
        rows = []
        for step in case["steps"]:
            note = _("the other side's recv() returns b'' (end of stream)") if step.get("other_reads_eof") else ""
            rows.append([word(step["step"]), word(step["client"]), word(step["server"]), note])
        lines += ["   " + line for line in table(rows, [_("step"), _("client socket"), _("server socket"), ""], "llll")]
        holder = case["time_wait_on"]
        if holder:
            left = case["time_wait_left"]
            timer = _(", for another {left:.0f} s").format(left=left) if left is not None else ""
            lines.append(
                _("   -> the {holder} closed first and holds TIME_WAIT{timer}; the other side is gone.").format(
                    holder=word(holder), timer=timer
                )
            )
        else:
            lines.append(_("   -> no single side in TIME_WAIT (the kernel did not show the expected states in time)"))
        lines.append("")
    rebind = result["rebind"]
    lines += [
        _(
            "3. a server on port {port} closes {connections} connection(s) first and stops, like chatsrv on Ctrl-C:"
        ).format(port=rebind["port"], connections=rebind["connections"]),
        _("   connections on that port in TIME_WAIT: {time_wait_sockets}").format(
            time_wait_sockets=rebind["time_wait_sockets"]
        ),
        _("   a new socket, plain bind() to port {port}: {plain_bind}").format(
            port=rebind["port"], plain_bind=_bind_word(rebind["plain_bind"])
        ),
        _("   a new socket, SO_REUSEADDR then bind(): {reuseaddr_bind}").format(
            reuseaddr_bind=_bind_word(rebind["reuseaddr_bind"])
        ),
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
                "chatlab threads: {clients} clients arrive {stagger:.0f} ms apart; each "
                "says one line, reads the answer, stays {hold:g} s and leaves"
            ).format(clients=result["clients"], stagger=result["stagger"] * 1000, hold=result["hold"])
        ),
        "",
    ]
    for server in result["servers"]:
        label = _("one client at a time") if server["server"] == "iterative" else _("a thread per client, like chatsrv")
        lines.append(
            _("{server} server ({server_class}, {label}):").format(
                server=word(server["server"]), server_class=server["class"], label=label
            )
        )
        errors = any(client["error"] for client in server["clients"])
        rows = []
        for client in server["clients"]:
            row = [
                _("client {number}").format(number=client["client"]),
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
        lines.append(_("   -> the longest wait at accept: {longest} ms").format(longest=_number(longest)))
        lines.append("")
    lines += [
        _("connect() returns at once in both: the kernel finishes the three-way handshake from the listen backlog"),
        _("before the program calls accept(). The iterative server accepts the next client only when the one before"),
        _("has left, so a client that stays blocks everyone behind it; the threaded server accepts each one at once."),
    ]
    return "\n".join(lines)


# --- reliable-udp ----------------------------------------------------------------------


def _latency_cells(summary: dict[str, Any]) -> tuple[str, str]:
    return (
        f"{_number(summary['p50'], 2)} / {_number(summary['p90'], 2)}",
        f"{_number(summary['p99'], 2)} / {_number(summary['max'], 2)}",
    )


def reliable_report(result: dict[str, Any]) -> str:
    setup = result["setup"]
    lines = [
        (
            _(
                "chatlab reliable-udp: a UDP sender says {messages} numbered messages at {rate}/s to {receivers} "
                "UDP receivers; the server drops {loss:g} % of the datagrams it sends (seed {seed})"
            ).format(
                messages=setup["messages"],
                rate=_number(setup["rate"], 0),
                receivers=setup["receivers"],
                loss=setup["loss"],
                seed=setup["seed"],
            )
        ),
        (
            _(
                "the receivers acknowledge every copy (whisper 'ack N'), drop duplicates and deliver in order; the "
                "sender resends what is not acknowledged after {rto:.0f} ms, doubling the timer on every retry"
            ).format(rto=setup["rto"] * 1000)
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
        lines.append(_("receiver {nick}:").format(nick=receiver["nick"]))
        lines += ["   " + line for line in table(rows, ["", _("plain UDP"), _("UDP + acks, timer, order")])]
        lines.append("")
    verdict = (
        _("every receiver got every message, in order, once")
        if result["complete"]
        else _("NOT complete within the time allowed")
    )
    lines += [
        _(
            "sender: {retransmissions} retransmissions, {acks_received} "
            "acknowledgements received; {verdict} ({took:.1f} s)"
        ).format(
            retransmissions=result["retransmissions"],
            acks_received=result["acks_received"],
            verdict=verdict,
            took=result["took"],
        ),
        _("-> plain UDP loses messages but nothing waits; with acknowledgements, a retransmission timer, duplicate"),
        _("   suppression and a reordering buffer everything arrives, and every message behind a lost one waits for"),
        _("   its retransmission: the latency tail of TCP. You end up rebuilding TCP."),
    ]
    return "\n".join(lines)


# --- handshake -------------------------------------------------------------------------


def handshake_report(result: dict[str, Any]) -> str:
    where = _("on loopback")
    if result.get("mode") == "netns":
        where = _("between two network namespaces")
    lines = [
        _(
            "chatlab handshake: every TCP segment of one chat session {where} (client "
            "port {client_port}, server port {server_port}): connect, hello, welcome, say, bye, close"
        ).format(where=where, client_port=result["client_port"], server_port=result["server_port"]),
    ]
    if result.get("mode") == "netns":
        lines.append(
            _(
                "the server's side drops the first {count} SYN(s) that arrive (nftables); "
                "captured on the client's veth, so a dropped SYN is still in the ladder"
            ).format(count=result["syn_drops"])
        )
    lines += [_("sequence numbers are relative to each side's SYN, as Wireshark shows them; len = bytes of data"), ""]
    rows = []
    for segment in result["segments"]:
        arrow = (
            _("client  ------>  server") if segment["direction"] == "client -> server" else _("client  <------  server")
        )
        carries = ", ".join(segment["carries"])
        notes = [carries] if carries else []
        if segment.get("retransmission"):
            notes.append(_("sent again"))
        if segment.get("dropped"):
            notes.append(_("dropped on arrival (nftables)"))
        carries = ", ".join(notes)
        rows.append(
            [
                str(segment["number"]),
                f"{segment['ms']:.3f}",
                arrow,
                segment["flags"],
                "-" if segment["seq"] is None else str(segment["seq"]),
                "-" if segment["ack"] is None else str(segment["ack"]),
                str(segment["length"]),
                carries,
            ]
        )
    lines += table(rows, ["#", "ms", "", "flags", "seq", "ack", "len", "lanchat"], align="rrllrrrl")
    segments = result["segments"]
    syn = [segment for segment in segments if "SYN" in segment["flags"]]
    fins = [segment for segment in segments if "FIN" in segment["flags"]]
    lines.append("")
    if len(syn) >= 2:
        lines.append(
            _(
                "-> three-way handshake: segments {value} and the ACK after "
                "them (a SYN and a FIN each count as one sequence number)."
            ).format(value=", ".join(str(s["number"]) for s in syn))
        )
    client_syns = [s for s in syn if s["flags"] == "SYN"]
    if len(client_syns) >= 2:
        gaps = [later["ms"] - earlier["ms"] for earlier, later in itertools.pairwise(client_syns)]
        waits = _(", then ").join(_("{ms:,.0f} ms").format(ms=gap) for gap in gaps)
        answers = [s for s in syn if s["flags"] == "SYN-ACK"]
        finished = (
            _("; the SYN-ACK came only {ms:,.0f} ms after the first SYN").format(ms=answers[0]["ms"]) if answers else ""
        )
        lines.append(
            _(
                "-> {count} SYN(s) lost: the client's kernel sent its SYN again after {waits} "
                "(TCP's initial retransmission timeout is 1 s; classic TCP doubles it on each retry, "
                "Linux since 6.5 keeps 1 s for the first 4 SYN retries: sysctl net.ipv4.tcp_syn_linear_timeouts)"
                "{finished}."
            ).format(count=len(client_syns) - 1, waits=waits, finished=finished)
        )
    if len(fins) >= 2:
        first_fin = fins[0]["number"]
        teardown = [s for s in segments if s["number"] >= first_fin and not s["length"]]
        lines.append(
            _(
                "-> teardown: FINs in segments {value}, each acknowledged by the other side: "
                "{count} segments here (四次挥手 is four when no ACK rides along with the second FIN)."
            ).format(value=", ".join(str(s["number"]) for s in fins), count=len(teardown))
        )
    return "\n".join(lines)


def trace_wire_report(result: dict[str, Any]) -> str:
    if result["mode"] == "netns":
        link = _("between two network namespaces over a veth limited to {rate} (tc tbf)").format(rate=result["rate"])
    else:
        link = _("on loopback")
    lines = [
        _(
            "chatlab trace-wire: a room with {history} messages of {size} characters in its history; "
            "chatclient --trace-wire joins {link}, pastes a line of {paste:,} characters and leaves"
        ).format(history=result["history"], size=result["size"], link=link, paste=result["paste"]),
        _("chatclient's stderr, one line per recv ({recvs} recvs, {seconds:.2f} s):").format(
            recvs=len(result["recvs"]), seconds=result["seconds"]
        ),
        "",
    ]
    lines += [f"   wire: {trace_line(recv['line'])}" for recv in result["recvs"]]
    lines.append("")
    split = result["split_frames"]
    if split:
        pieces = sum(
            1 for recv in result["recvs"] if recv["middle"] or recv["starts_frame"] or recv["ends_split_frame"]
        )
        lines.append(
            _(
                "-> {split} frame(s) arrived split across recvs ({pieces} recvs held a piece of one): "
                "the link hands the bytes over a segment at a time,"
            ).format(split=split, pieces=pieces)
        )
        lines.append(_("   and the client's decoder keeps the start of a frame until its last byte is in (拆包)."))
    else:
        lines.append(
            _(
                "-> all {frames} frames arrived whole, each within one recv: "
                "on loopback the kernel hands a whole write over at once."
            ).format(frames=result["frames"])
        )
        lines.append(_("   Try it over a slow link: sudo chatlab trace-wire --netns-rate 1mbit"))
    return "\n".join(lines)


_TRACE_HEAD = re.compile(r"^recv (\d+) bytes, (\d+) complete frames?: ?(.*)$")
_TRACE_PARTS = (
    (re.compile(r"^end of a frame begun earlier \((\d+) bytes, \[4\+(\d+)\] in all\)$"),
     N_("end of a frame begun earlier ({size} bytes, [4+{payload}] in all)"), ("size", "payload")),
    (re.compile(r"^middle of a frame \((\d+) bytes; (\d+) of it so far\)$"),
     N_("middle of a frame ({size} bytes; {after} of it so far)"), ("size", "after")),
    (re.compile(r"^start of the next frame \((\d+) bytes\)$"),
     N_("start of the next frame ({after} bytes)"), ("after",)),
)


def trace_line(line: str) -> str:
    """chatclient's English `--trace-wire` line (the lab reads it with --lang en) in the report's language.

    Made from the same messages as chatclient.transport.trace_chunk; a line of another shape is shown as it came.
    """
    head = _TRACE_HEAD.match(line)
    if head is None:
        return line
    parts = []
    for part in head.group(3).split(" | ") if head.group(3) else []:
        for pattern, template, names in _TRACE_PARTS:
            match = pattern.match(part)
            if match:
                part = _(template).format(**dict(zip(names, match.groups())))
                break
        parts.append(part)
    count = int(head.group(2))
    frames = ngettext("{count} complete frame", "{count} complete frames", count).format(count=count)
    return _("recv {size} bytes, {count}: ").format(size=head.group(1), count=frames) + " | ".join(parts)
