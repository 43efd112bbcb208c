"""Process statistics from /proc, the open-file limit, and rounding of figures.

Owns: reading CPU time and resident memory of a process by PID, the CPU share
of the server and of the benchmark over a measured phase, and `rnd` /
`percentile`, the two number helpers every result uses.
Must not import: any other lanchat_bench module (it is the bottom layer).
"""
from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rnd(value: float | None, digits: int = 3) -> float | None:
    """Round a figure for the report; None (not measured) stays None."""
    return None if value is None else round(value, digits)


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The value at `fraction` of a sorted sequence (nearest rank below), None if empty."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (chatsrv --workers: the nodes are children), from /proc/PID/task/*/children."""
    found = [pid]
    for parent in found:  # grows while walked: breadth first
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", "rb") as children:
                    found += [int(child) for child in children.read().split()]
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of a process and its children (the nodes of --nodes), from /proc."""
    total = None
    for member in process_tree(pid):
        used = _own_cpu_seconds(member)
        if used is not None:
            total = used + (total or 0.0)
    return total


def _own_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            data = stat_file.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its ")".
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kb(pid: int) -> int | None:
    """Resident set size in KiB of a process and its children (the nodes of --nodes), from VmRSS."""
    total = None
    for member in process_tree(pid):
        rss = _own_rss_kb(member)
        if rss is not None:
            total = rss + (total or 0)
    return total


def _own_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as status_file:
            for line in status_file:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def thread_count(pid: int) -> int | None:
    """The process's threads, from Threads in /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status_file:
            for line in status_file:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class CpuShare:
    """Percent of one core used during a phase (None: the server's share could not be read)."""

    server_cpu_pct: float | None
    bench_cpu_pct: float | None


class CpuMeter:
    """CPU share (percent of one core) of the server and of this process, from creation to result()."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.wall = time.perf_counter()
        self.own = time.process_time()
        self.server = cpu_seconds(server_pid) if server_pid else None

    def result(self) -> CpuShare:
        wall = max(time.perf_counter() - self.wall, 1e-9)
        own = (time.process_time() - self.own) / wall * 100
        server_pct: float | None = None
        if self.server_pid and self.server is not None:
            now = cpu_seconds(self.server_pid)
            if now is not None:
                server_pct = (now - self.server) / wall * 100
        return CpuShare(server_cpu_pct=rnd(server_pct, 1), bench_cpu_pct=rnd(own, 1))


def raise_nofile_limit() -> int:
    """Raise the soft open-file limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft
