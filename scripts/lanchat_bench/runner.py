"""Running scenarios: the order of rounds, and one run against a fresh server.

Owns: `plan` (which scenario against which server in which round) and
`run_one` (start a fresh server, run one scenario with the garbage collector
off, always stop the server, and give the result as a JSON row).
Must not import: the report or the CLI.
"""
from __future__ import annotations

import argparse
import gc
import time
import traceback
from pathlib import Path
from typing import Any

from .launchers import SERVER_KINDS, ServerError, ServerProcess, make_server
from .procstat import rnd
from .records import as_row
from .scenarios import RunContext, lookup


def plan(opts: argparse.Namespace) -> list[tuple[str, str, int | None, int]]:
    """(scenario, server kind, connections, round) in the order they run.

    Repeated scenarios run in rounds, each round every server once, so that
    a noisy moment of a shared machine hits one round of all servers rather
    than all rounds of one. A per-connection-count scenario (scale) runs once
    per count (it takes minutes).
    """
    kinds = list(SERVER_KINDS) if opts.vs else ["lanchat"]
    runs: list[tuple[str, str, int | None, int]] = []
    for name in opts.scenarios:
        scenario, udp = lookup(name)
        if scenario.per_conns:
            for count in opts.conns:
                runs += [(name, kind, count, 1) for kind in kinds]
            continue
        for round_ in range(1, opts.repeat + 1):
            if udp or scenario.lanchat_only:
                runs.append((name, "lanchat", None, round_))
            else:
                runs += [(name, kind, None, round_) for kind in kinds]
    return runs


def run_one(name: str, kind: str, opts: argparse.Namespace, workdir: Path,
            conns: int | None = None) -> dict[str, Any]:
    """Start a fresh server, run one scenario against it, always stop it."""
    scenario, udp = lookup(name)
    row: dict[str, Any] = {"scenario": scenario.name, "transport": "udp" if udp else "tcp", "server": kind}
    biggest = max([opts.clients, opts.slow_clients, *(opts.conns if scenario.per_conns else [])])
    servers: list[ServerProcess] = []

    def launch() -> ServerProcess:
        server = make_server(kind, workdir, opts, conns or biggest, scenario.server_args)
        servers.append(server)
        server.start()
        row.setdefault("server_pid", server.pid)
        return server

    started = time.perf_counter()
    # The cyclic garbage collector would stop this loop for ~8 ms now and then
    # (a full collection), and the latency tail measured that, not the server.
    # Measured phases create no garbage cycles worth collecting; collect between.
    gc.collect()
    gc.disable()
    try:
        row.update(as_row(scenario.run(RunContext(launch=launch, opts=opts, udp=udp, conns=conns))))
    except (ServerError, OSError) as error:
        row["error"] = str(error)
    except Exception as error:   # noqa: BLE001 - a bug must not lose the other results
        row["error"] = f"benchmark failed: {error!r}"
        traceback.print_exc()
    finally:
        gc.enable()
        for server in servers:
            server.stop()
    row["run_s"] = rnd(time.perf_counter() - started, 2)
    return row
