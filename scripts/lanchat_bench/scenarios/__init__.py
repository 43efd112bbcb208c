"""The scenario registry: every scenario the benchmark knows, in the order reports show them.

Owns: `REGISTRY` and the names the command line accepts (`TCP_SCENARIOS`,
`UDP_SCENARIOS`). To add a scenario, write scenarios/NAME.py with a
`SCENARIO = Scenario(...)` (see base.py) and add `NAME.SCENARIO` to the tuple
below; the CLI, the runner and the report take everything else from it.
Must not import: the runner, the report or the CLI.
"""
from __future__ import annotations

from . import abuse, ceiling, cluster, fanout, latency, scale, slow, store
from .base import RunContext, Scenario

REGISTRY: dict[str, Scenario] = {scenario.name: scenario for scenario in (
    fanout.SCENARIO,
    latency.SCENARIO,
    scale.SCENARIO,
    slow.SCENARIO,
    abuse.SCENARIO,
    store.SCENARIO,
    ceiling.SCENARIO,
    cluster.SCENARIO,
)}

TCP_SCENARIOS = tuple(REGISTRY)
UDP_SCENARIOS = tuple(f"{scenario.name}-udp" for scenario in REGISTRY.values() if scenario.udp)


def lookup(name: str) -> tuple[Scenario, bool]:
    """The scenario behind a command-line name, and whether it runs over UDP ("fanout-udp")."""
    if name in UDP_SCENARIOS:
        return REGISTRY[name.removesuffix("-udp")], True
    return REGISTRY[name], False


__all__ = ["REGISTRY", "TCP_SCENARIOS", "UDP_SCENARIOS", "RunContext", "Scenario", "lookup"]
