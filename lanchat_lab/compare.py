"""Scenario `compare`: the same chat workload over TCP and UDP, side by side.

Owns: choosing where the server runs (a `chatsrv` child on loopback, the
server you name with --host/--port, or inside a pair of network namespaces
with real packet loss), passing the UDP fault-injection flags to it, running
the workload (`lanchat_lab.workload`) and folding the bots' records into one
result dict that the report, `--json` and `--plot` all read.

Imports: lanchat_lab.bots, measure, netns, serverproc, workload.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from lanchat.i18n import _
from lanchat_lab.bots import LabError
from lanchat_lab.measure import apply_wire_counters, latency_series, payloads_received, summarize
from lanchat_lab.netns import NamespacePair
from lanchat_lab.serverproc import ServerProcess, child_environment
from lanchat_lab.workload import WorkloadConfig, run_workload


@dataclass
class CompareOptions:
    bots: int = 3  # per transport
    transports: tuple[str, ...] = ("tcp", "udp")
    messages: int = 300  # per transport
    rate: float = 100.0
    size: int = 0
    host: str | None = None  # an already running server (start it with --rate 0)
    port: int = 9009
    udp_loss: float | None = None
    udp_dup: float | None = None
    udp_reorder: float | None = None
    udp_delay: str | None = None
    seed: int | None = None
    netns_loss: float | None = None
    netns_rate: str | None = None
    quiet: float = 0.5
    drain_timeout: float = 15.0

    @property
    def netns(self) -> bool:
        return self.netns_loss is not None or self.netns_rate is not None

    def fault_flags(self) -> list[str]:
        """The server's fault-injection flags (issue: UDP variant), only those asked for."""
        flags: list[str] = []
        for name in ("udp_loss", "udp_dup", "udp_reorder"):
            value = getattr(self, name)
            if value is not None:
                flags += [f"--{name.replace('_', '-')}", f"{value:g}"]
        if self.udp_delay is not None:
            flags += ["--udp-delay", self.udp_delay]
        if self.seed is not None:
            flags += ["--seed", str(self.seed)]
        return flags

    def server_flags(self) -> list[str]:
        # Bots send faster than a person: no rate limit; all bots share one address.
        return ["--rate", "0", "--max-per-ip", "0", *self.fault_flags()]

    def workload(self, host: str, port: int) -> WorkloadConfig:
        delay_ms = 0.0
        if self.udp_delay:
            base, _, jitter = self.udp_delay.partition(":")
            delay_ms = float(base or 0) + float(jitter or 0)
        # Over a lossy link TCP's handshake itself is lost now and then: Linux resends a SYN after 1, 3, 7 and 15 s,
        # so a join may take seconds without anything being wrong (docs/lab.md, section 11b).
        join_timeout = 20.0 if self.netns_loss else 5.0
        return WorkloadConfig(
            host=host,
            join_timeout=join_timeout,
            port=port,
            tcp_bots=self.bots if "tcp" in self.transports else 0,
            udp_bots=self.bots if "udp" in self.transports else 0,
            messages=self.messages,
            rate=self.rate,
            size=self.size,
            quiet=self.quiet + 2 * delay_ms / 1000,
            drain_timeout=self.drain_timeout + 2 * delay_ms / 1000,
        )


def run_compare(options: CompareOptions) -> dict[str, Any]:
    """Run the scenario; returns the result (see `build_result`). LabError on a setup problem."""
    if options.netns:
        if options.host is not None:
            raise LabError(_("--netns-loss/--netns-rate start their own server: leave out --host"))
        return _run_in_namespaces(options)
    if options.host is not None:
        if options.fault_flags():
            raise LabError(
                _("--udp-* faults are flags of the server: start chatsrv with them yourself, or leave out --host")
            )
        config = options.workload(options.host, options.port)
        raw = asyncio.run(run_workload(config))
        return build_result(options, raw, mode="external", server=f"{options.host}:{options.port}")
    with ServerProcess("127.0.0.1", 0, options.server_flags()) as server:
        port = server.start()
        raw = asyncio.run(run_workload(options.workload("127.0.0.1", port)))
        return build_result(options, raw, mode="loopback", server=f"127.0.0.1:{port}")


def _run_in_namespaces(options: CompareOptions) -> dict[str, Any]:
    with NamespacePair(loss=options.netns_loss or 0.0, rate=options.netns_rate) as pair:
        prefix = pair.exec_prefix(pair.server_ns)
        with ServerProcess(pair.server_address, 0, options.server_flags(), prefix=prefix) as server:
            port = server.start()
            config = options.workload(pair.server_address, port)
            command = [*pair.exec_prefix(pair.client_ns), sys.executable, "-m", "lanchat_lab.workload"]
            limit = 60 + options.messages / options.rate + options.drain_timeout
            try:
                done = subprocess.run(
                    command,
                    check=False,
                    input=json.dumps(asdict(config)),
                    capture_output=True,
                    text=True,
                    timeout=limit,
                    env=child_environment(),
                )
            except subprocess.TimeoutExpired:
                raise LabError(_("the bots did not finish within {limit:g} s").format(limit=limit)) from None
            try:
                raw = json.loads(done.stdout)
            except ValueError:
                last = done.stderr.strip().splitlines()
                raise LabError(
                    _("the bots failed: {reason}").format(reason=last[-1] if last else f"exit {done.returncode}")
                ) from None
            if "error" in raw:
                raise LabError(str(raw["error"]))
            counters = {"server": pair.counters(pair.server_ns), "bots": pair.counters(pair.client_ns)}
            link_drops = None
            if pair.rate:
                # The tbf queue sits on each side's way out: the server's side holds what goes to the bots.
                link_drops = {
                    "to_bots": pair.rate_drops(pair.server_ns, pair.server_device),
                    "to_server": pair.rate_drops(pair.client_ns, pair.client_device),
                }
        result = build_result(
            options,
            raw,
            mode="netns",
            server=f"{pair.server_address}:{port} (namespace {pair.server_ns}; bots in {pair.client_ns})",
            counters=counters,
        )
        result["link_drops"] = link_drops
        return result


def build_result(
    options: CompareOptions,
    raw: dict[str, Any],
    mode: str,
    server: str,
    counters: dict[str, dict[str, dict[str, int]]] | None = None,
) -> dict[str, Any]:
    """The scenario's result: setup, one summary per transport, plot series, kernel counters."""
    records = raw["records"]
    by_transport = {name: [r for r in records if r["transport"] == name] for name in ("tcp", "udp")}
    sent = {name: sum(int(r["sent_messages"]) for r in group) for name, group in by_transport.items()}
    transports: dict[str, Any] = {}
    for name, group in by_transport.items():
        if not group:
            continue
        other = "udp" if name == "tcp" else "tcp"
        summary = summarize(name, group, sent[other], len(by_transport[other]))
        if counters is not None:
            bots_side = counters.get("bots", {})
            packets = sum(bots_side.get(f"{name}-{way}", {}).get("packets", 0) for way in ("in", "out"))
            ip_bytes = sum(bots_side.get(f"{name}-{way}", {}).get("bytes", 0) for way in ("in", "out"))
            apply_wire_counters(summary, packets, ip_bytes, sum(payloads_received(r) for r in group))
        transports[name] = summary.as_dict()
    dropped = None
    if counters is not None:
        dropped = {
            name: {
                "to_server": counters.get("server", {}).get(f"{name}-dropped", {}).get("packets", 0),
                "to_bots": counters.get("bots", {}).get(f"{name}-dropped", {}).get("packets", 0),
            }
            for name in ("tcp", "udp")
        }
    return {
        "scenario": "compare",
        "setup": {
            "mode": mode,
            "server": server,
            "bots_per_transport": options.bots,
            "messages_per_transport": options.messages,
            "rate": options.rate,
            "size": options.size,
            "udp_faults": options.fault_flags(),
            "netns_loss": options.netns_loss,
            "netns_rate": options.netns_rate,
            "duration": round(raw["finished"] - raw["started"], 3),
            "when": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(raw["started"])),
        },
        "transports": transports,
        "kernel_drops": dropped,
        "latency_series": {name: latency_series(group, name) for name, group in by_transport.items() if group},
    }
