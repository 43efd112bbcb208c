"""Readable terminal reports of every scenario, from the scenario's result dict.

Pure: result dict in, text out (no sockets, no clocks, no matplotlib), so the
same numbers appear in the report, in `--json` and in the plot.
"""

from __future__ import annotations

import math
from typing import Any, Sequence


def _number(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> list[str]:
    """Left column left-aligned, the others right-aligned, two spaces apart."""
    everything = [list(header)] if header else []
    everything += [list(row) for row in rows]
    widths = [max(len(row[column]) for row in everything if column < len(row)) for column in range(len(everything[0]))]
    lines = []
    for number, row in enumerate(everything):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if header and number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


# --- compare -------------------------------------------------------------------------


def compare_report(result: dict[str, Any]) -> str:
    setup = result["setup"]
    transports: dict[str, dict[str, Any]] = result["transports"]
    names = [name for name in ("tcp", "udp") if name in transports]
    where = {"loopback": "a chatsrv child on loopback", "external": "your server", "netns": "a chatsrv in a network namespace"}
    lines = [
        f"chatlab compare: {setup['bots_per_transport']} bots per transport in one room, "
        f"{setup['messages_per_transport']} messages per transport at {_number(setup['rate'], 0)}/s",
        f"server: {where.get(setup['mode'], setup['mode'])}, {setup['server']}",
    ]
    if setup["udp_faults"]:
        lines.append(f"server-side UDP fault injection: {' '.join(setup['udp_faults'])}")
    if setup["mode"] == "netns":
        link = []
        if setup["netns_loss"] is not None:
            link.append(f"{setup['netns_loss']:g} % of packets dropped at random on arrival, each side (nftables)")
        if setup["netns_rate"]:
            link.append(f"rate limited to {setup['netns_rate']} (tbf)")
        lines.append("link: veth between two namespaces, offloads off; " + "; ".join(link))
    lines.append(f"run took {setup['duration']:.1f} s ({setup['when']})")
    lines.append("")

    def row(label: str, render: Any) -> list[str]:
        return [label] + [render(transports[name]) for name in names]

    rows = [
        row("delivered / expected", lambda s: f"{_number(s['delivered'])} / {_number(s['expected'])}"),
        row("lost messages", lambda s: f"{_number(s['lost'])} ({_percent(s['lost'], s['expected'])})"),
        row("  server payloads lost (seq gaps)", lambda s: f"{_number(s['seq_lost'])} of {_number(s['seq_total'])}"),
        row("  lost on the way up (server's gaps)", lambda s: _number(s["upstream_gaps"]) if s["transport"] == "udp" else "0"),
        row("reordered (seq)", lambda s: _number(s["reordered"])),
        row("duplicated (seq)", lambda s: _number(s["duplicated"])),
        row("latency p50 / p90, ms", lambda s: f"{_number(s['latency_ms'].get('p50'), 2)} / {_number(s['latency_ms'].get('p90'), 2)}"),
        row("latency p99 / max, ms", lambda s: f"{_number(s['latency_ms'].get('p99'), 2)} / {_number(s['latency_ms'].get('max'), 2)}"),
        row("jitter (RFC 3550), ms", lambda s: _number(s["jitter_ms"], 3)),
        row("messages/s received per bot", lambda s: _number(s["messages_per_second"])),
        row("bytes per payload received: JSON", lambda s: _number(s["payload_bytes"])),
        row("  + framing (length prefix)", lambda s: _number(s["framing_bytes"])),
        row("  + the bot's own sends (say, ping)", lambda s: _number(s["sent_bytes"])),
        row("  + IP and TCP/UDP headers, both ways", lambda s: _number(s["header_bytes"])),
        row("  = on the wire", lambda s: _number(s["wire_bytes"])),
        row("packets per payload (both ways)", lambda s: _number(s["packets_per_message"], 2)),
        row("TCP retransmissions (bots' side)", lambda s: _number(s["retransmits"]) if s["transport"] == "tcp" else "-"),
        row("time to join, mean / max, ms", lambda s: f"{_number(s['join_ms'].get('mean'), 2)} / {_number(s['join_ms'].get('max'), 2)}"),
        row("other transport's messages", lambda s: f"{_number(s['from_other'][0])} / {_number(s['from_other'][1])}"),
    ]
    drops = result.get("kernel_drops")
    if drops:
        rows.append(row("dropped by the kernel (to server / to bots)", lambda s: f"{drops[s['transport']]['to_server']} / {drops[s['transport']]['to_bots']}"))
    injected = {name: transports[name]["server"] for name in names if transports[name]["server"]}
    if injected:
        keys = sorted({key for counters in injected.values() for key in counters})
        for key in keys:
            rows.append(row(f"server: {key.replace('_', ' ')}", lambda s, key=key: _number(s["server"].get(key))))
    errors = {name: transports[name]["errors"] for name in names if transports[name]["errors"]}
    if errors:
        rows.append(row("errors from the server", lambda s: ", ".join(f"{k} x{v}" for k, v in s["errors"].items()) or "-"))
    lines += table(rows, ["", *[name.upper() for name in names]])
    wire = {transports[name]["wire_source"] for name in names}
    lines.append("")
    lines.append(
        "bytes on the wire: "
        + ("counted by nftables on the bots' side (IP packets, ACKs included)" if wire == {"nftables counters"} else
           "payload and framing measured; headers estimated as 52 bytes per TCP segment (TCP_INFO counts) and 28 per UDP datagram")
    )
    lines.append("")
    lines += ["What this run shows:", *("  " + text for text in compare_findings(result))]
    return "\n".join(lines)


def compare_findings(result: dict[str, Any]) -> list[str]:
    """Plain-language sentences about the run, computed from its numbers."""
    findings = []
    transports = result["transports"]
    tcp, udp = transports.get("tcp"), transports.get("udp")
    if tcp:
        text = f"TCP delivered {tcp['delivered']} of {tcp['expected']} messages"
        if tcp["lost"] == 0 and tcp["reordered"] == 0 and tcp["duplicated"] == 0:
            text += ", every one, in order, once"
        slowest = tcp["latency_ms"].get("max")
        median = tcp["latency_ms"].get("p50")
        if slowest is not None and median:
            text += f"; the slowest took {slowest:.1f} ms against a median of {median:.2f} ms"
            if tcp.get("retransmits"):
                text += f" ({tcp['retransmits']} retransmitted segments: a lost packet holds up everything behind it)"
        findings.append(text + ".")
    if udp:
        text = f"UDP delivered {udp['delivered']} of {udp['expected']} ({_percent(udp['delivered'], udp['expected'])})"
        problems = []
        if udp["lost"]:
            problems.append(f"{udp['lost']} lost")
        if udp["reordered"]:
            problems.append(f"{udp['reordered']} out of order")
        if udp["duplicated"]:
            problems.append(f"{udp['duplicated']} duplicated")
        text += (": " + ", ".join(problems)) if problems else ": nothing lost on this link"
        slowest = udp["latency_ms"].get("max")
        if slowest is not None:
            text += f"; the slowest took {slowest:.1f} ms (nothing waits for a lost datagram)"
        findings.append(text + ".")
    if tcp and udp and tcp.get("wire_bytes") and udp.get("wire_bytes"):
        findings.append(
            f"Each chat message cost about {tcp['wire_bytes']:.0f} bytes on the wire over TCP and "
            f"{udp['wire_bytes']:.0f} over UDP (TCP adds a 4-byte frame header, longer headers and ACK packets)."
        )
    return findings
