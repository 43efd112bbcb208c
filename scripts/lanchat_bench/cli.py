"""The command line: arguments, the run of every planned scenario, and the output.

Owns: `parse_args` (built from the registry: scenario names, their --help
text and their size flags) and `main` (raise the open-file limit, run the
plan, stop every server left, print tables or JSON, exit 1 if a lanchat run
failed).
Must not import: nothing (it is the top of lanchat_bench; no module imports it but scripts/bench.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .launchers import RUNNING, default_db
from .procstat import raise_nofile_limit
from .report import ratios, report, round_ratios, summarize
from .runner import plan, run_one
from .scenarios import REGISTRY, TCP_SCENARIOS, UDP_SCENARIOS, lookup
from .scenarios.base import Size
from .scenarios.latency import parse_probes, parse_rates

REPO_ROOT = Path(__file__).resolve().parents[2]
DESCRIPTION = "Load benchmark for lanchat (and, with --vs, miniircd and ncat --broker --chat)."
_NAME_WIDTH = 13


def _scenario_help() -> str:
    """The epilog: one paragraph per scenario, from the registry."""
    indent = " " * (2 + _NAME_WIDTH)
    lines = ["scenarios:"]
    for scenario in REGISTRY.values():
        text = textwrap.indent(scenario.help, indent)
        lines.append("  " + scenario.name.ljust(_NAME_WIDTH) + text[len(indent):])
    udp_names = ", ".join(UDP_SCENARIOS)
    bases = " and ".join(name.removesuffix("-udp") for name in UDP_SCENARIOS)
    lines += [f"  {udp_names}",
              f"{indent}{bases} over lanchat's UDP transport (challenge /",
              f"{indent}cookie handshake, pings); fanout senders keep at most",
              f"{indent}--udp-window messages unechoed.  loss = expected - received.",
              "  " + "all".ljust(_NAME_WIDTH) + "every scenario above but those that say otherwise.",
              "",
              "Every run starts a fresh server on 127.0.0.1 and stops it afterwards.  CPU",
              "columns are percent of one core (server process and this benchmark)."]
    return "\n".join(lines)


def sizes() -> list[Size]:
    """Every scenario's size flags, in registry order, each flag once."""
    found: dict[str, Size] = {}
    for scenario in REGISTRY.values():
        for size in scenario.sizes:
            found.setdefault(size.flag, size)
    return list(found.values())


def _add_selection(parser: argparse.ArgumentParser) -> None:
    """Which scenarios, against whom, how often, printed how."""
    parser.add_argument("scenarios", nargs="*", default=["fanout", "latency"],
                        choices=[*TCP_SCENARIOS, *UDP_SCENARIOS, "all"], metavar="SCENARIO",
                        help=" ".join([*TCP_SCENARIOS, *UDP_SCENARIOS, "all"]) + " (default: fanout latency)")
    parser.add_argument("--udp", action="store_true", help="also run fanout/latency over UDP (lanchat only)")
    parser.add_argument("--vs", action="store_true",
                        help="also run each TCP scenario against miniircd and ncat "
                        "--broker --chat and print lanchat/other ratios")
    parser.add_argument("--miniircd-nodelay", action="store_true",
                        help="with --vs, set TCP_NODELAY on miniircd's sockets (it leaves Nagle on; "
                        "README, Performance)")
    parser.add_argument("--tiny", action="store_true", help="small default sizes for CI (explicit sizes still win)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--repeat", type=int, default=None, metavar="N",
                        help="rounds of each scenario but scale, every server once per round; "
                        "the tables show the round with the median key metric (fanout "
                        "deliveries/s, latency p99, slow ratio) and list every round "
                        "(default 3; 1 with --tiny)")


def _add_sizes(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sizes (defaults: normal / --tiny)")
    for size in sizes():
        group.add_argument(size.flag, type=size.kind, default=None, help=f"{size.help}; {size.normal} / {size.tiny}")


def _add_limits(parser: argparse.ArgumentParser) -> None:
    limits = parser.add_argument_group("limits")
    limits.add_argument("--timeout", type=float, default=120.0,
                        help="deadline of each phase in seconds (default 120)")
    limits.add_argument("--scale-timeout", type=float, default=600.0,
                        help="scale: deadline for all C members to join (default 600)")
    limits.add_argument("--idle", type=float, default=5.0,
                        help="stop a phase after this many seconds without any received byte (default 5)")
    limits.add_argument("--burst", type=int, default=None,
                        help="connections opened but not yet joined at a time (default: "
                        "lanchat 64, miniircd 4, ncat 8: below their listen backlogs)")
    limits.add_argument("--udp-window", type=int, default=64,
                        help="UDP fanout: unechoed messages per sender, 0 = no limit (default 64)")
    limits.add_argument("--slow-grace", type=float, default=10.0,
                        help="slow: seconds to wait for the stuck member's removal "
                        "after the others got everything (default 10)")


def _add_lanchat_server(parser: argparse.ArgumentParser) -> None:
    lanchat = parser.add_argument_group("lanchat server")
    lanchat.add_argument("--db", default=None,
                         help="passed to chatsrv as --db (default :memory:, but left "
                         "out if chatsrv --help does not know --db; '' leaves it out)")
    lanchat.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                         help="extra argument for chatsrv, repeatable (write --server-arg=--flag for dashed ones)")
    lanchat.add_argument("--server-cmd", default=None, metavar="CMD",
                         help="command that starts chatsrv (default: this python -m "
                         "chatsrv); --host/--port/--rate/... are appended")
    lanchat.add_argument("--server-dir", type=Path, default=REPO_ROOT,
                         help="working directory for chatsrv (default: the repository)")
    lanchat.add_argument("--nodes", type=int, default=1, metavar="N",
                         help="run N chatsrv nodes on one port (chatsrv --workers N, Linux), joined by --backplane; "
                         "CPU and RSS are the nodes' sum (Redis's own is not counted)")
    lanchat.add_argument("--backplane", default=None, metavar="URL",
                         help="Redis for the nodes, e.g. redis://127.0.0.1:6379/0 (docs/scale-out.md)")


def _complete(opts: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill in defaults that depend on other flags, expand `all` and --udp, check the sizes."""
    for size in sizes():
        if getattr(opts, size.dest) is None:
            setattr(opts, size.dest, size.tiny if opts.tiny else size.normal)
    try:
        opts.conns = [int(c) for c in str(opts.conns).split(",") if c.strip()]
    except ValueError:
        parser.error("--conns takes numbers separated by commas")
    if opts.repeat is None:
        opts.repeat = 1 if opts.tiny else 3
    if opts.repeat < 1:
        parser.error("--repeat must be at least 1")
    if opts.nodes < 1 or (opts.nodes > 1 and not opts.backplane):
        parser.error("--nodes N needs N >= 1, and --backplane redis://HOST:PORT/DB when N > 1")
    if "all" in opts.scenarios:
        opts.scenarios = [*(s for s in TCP_SCENARIOS if REGISTRY[s].in_all), *UDP_SCENARIOS]
    if opts.udp:
        extra = [f"{s}-udp" for s in TCP_SCENARIOS if f"{s}-udp" in UDP_SCENARIOS and s in opts.scenarios]
        opts.scenarios += [s for s in extra if s not in opts.scenarios]
    opts.scenarios = list(dict.fromkeys(opts.scenarios))
    if opts.clients < 2 or opts.senders < 1 or opts.senders > opts.clients:
        parser.error("need --clients >= 2 and 1 <= --senders <= --clients")
    if opts.slow_clients < 3:
        parser.error("--slow-clients must be at least 3")
    if opts.messages < 1 or opts.cluster_messages < 1 or opts.slow_messages < 1 or opts.duration <= 0:
        parser.error("sizes must be positive")
    try:
        opts.rates, opts.probe = parse_rates(opts.rates), parse_probes(opts.probe)
    except ValueError as error:
        parser.error(str(error))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION, epilog=_scenario_help(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_selection(parser)
    _add_sizes(parser)
    _add_limits(parser)
    _add_lanchat_server(parser)
    opts = parser.parse_args(argv)
    _complete(opts, parser)
    return opts


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _run_plan(opts: argparse.Namespace) -> list[dict[str, Any]]:
    """Every planned run, in order, with progress on stderr; stops any server left running."""
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="lanchat-bench-") as workdir:
            for name, kind, conns, round_ in plan(opts):
                repeated = opts.repeat > 1 and not lookup(name)[0].per_conns
                label = (f"{name} vs {kind}" + (f" C={conns}" if conns else "")
                         + (f" (round {round_} of {opts.repeat})" if repeated else ""))
                print(f"[bench] {label} ...", file=sys.stderr, flush=True)
                row = run_one(name, kind, opts, Path(workdir), conns)
                row["round"] = round_
                rows.append(row)
                note = f" ERROR: {row['error']}" if row.get("error") else ""
                print(f"[bench] {label}: {row['run_s']} s{note}", file=sys.stderr, flush=True)
    finally:
        while RUNNING:
            RUNNING[-1].stop()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    nofile = raise_nofile_limit()
    if opts.db is None:
        opts.db = default_db(opts)
        if not opts.db:
            print("[bench] this chatsrv has no --db option: not passing one", file=sys.stderr)
    if any(lookup(name)[0].per_conns for name in opts.scenarios) and max(opts.conns) + 200 > nofile:
        print(f"warning: open-file limit {nofile} is below --conns + 200", file=sys.stderr)
    started = time.time()
    load_at_start = os.getloadavg()
    rows = _run_plan(opts)
    summary = summarize(rows)
    compared = ratios(summary)
    by_round = round_ratios(rows)
    if opts.json:
        meta = {"started": started, "python": platform.python_version(),
                "cpus": os.cpu_count(), "argv": sys.argv[1:] if argv is None else list(argv),
                "nofile": nofile, "db": opts.db or None, "repeat": opts.repeat,
                "load_avg_at_start": load_at_start}
        print(json.dumps({"bench": meta, "results": summary, "ratios": compared,
                          "ratios_by_round": by_round, "all_rounds": rows}, indent=2))
    else:
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in load_at_start)}; "
              f"repeated scenarios: median of {opts.repeat} rounds\n")
        print(report(summary, compared, by_round))
    return 1 if any(r.get("error") for r in rows if r["server"] == "lanchat") else 0
