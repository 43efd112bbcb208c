"""Real packet loss in the kernel: two network namespaces joined by a veth pair.

Owns: checking the prerequisites (root, `ip`, `nft`, `ethtool`, and `tc`
for a rate limit) with a one-line reason when one is missing; building the
pair (server side `chatlab<pid>s` with 10.77.0.1, bots' side `chatlab<pid>c`
with 10.77.0.2; addresses exist only inside these namespaces); nftables
rules that drop PCT % of arriving packets at random on both sides and count
the packets and bytes each transport really puts on the wire; veth offloads
off so the loss applies to every packet and not to 64 KB super-packets;
an optional `tbf` rate limit (this kernel has no netem); an optional rule
that drops exactly the first N SYNs arriving at the server (a lost SYN,
reproducibly); entering a namespace from this process (`inside`, for sockets
that must live there); and removing it all again, also on Ctrl-C, also what
an earlier run killed with SIGKILL left behind.

A missing tool raises `LabUnavailable` (chatlab exits 2); missing root is a
plain `LabError` (exit 1: run it again with sudo).

Imports only `lanchat_lab.bots` (LabError, LabUnavailable).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lanchat.i18n import N_, _
from lanchat_lab.bots import LabError, LabUnavailable

SERVER_ADDRESS = "10.77.0.1"
CLIENT_ADDRESS = "10.77.0.2"
PREFIX_LENGTH = 24
TABLE = "chatlab"
# tbf lets a burst of 4 KB through at once (a few segments; less would hold back every full-size one),
# then the rate; what would wait longer than RATE_QUEUE in its queue is dropped (the report says "400 ms").
RATE_BURST = "32kbit"
RATE_QUEUE = "400ms"
_NAME = re.compile(r"^chatlab(\d+)[sc]$")


ROOT_REASON = N_(
    "needs root (network namespaces, nftables and ethtool change the kernel's network setup): run it with sudo"
)


def missing_prerequisites(need_tc: bool = False) -> str | None:
    """One line saying why the netns scenario cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return _(ROOT_REASON)
    return missing_tools(need_tc)


def missing_tools(need_tc: bool = False) -> str | None:
    """One line naming the missing tools and the Debian packages that bring them, or None."""
    tools = {"ip": "iproute2", "nft": "nftables", "ethtool": "ethtool"}
    if need_tc:
        tools["tc"] = "iproute2"
    missing = [name for name in tools if shutil.which(name) is None]
    if missing:
        packages = " ".join(sorted({tools[name] for name in missing}))
        return f"needs {', '.join(missing)} (Debian/Ubuntu: apt-get install -y {packages})"
    return None


def namespaces_unavailable() -> str | None:
    """None when this machine lets us create a network namespace; else why not, in one line.

    Root and the tools are not always enough: a container without
    CAP_SYS_ADMIN refuses `ip netns add`. The probe namespace is removed at once.
    """
    reason = missing_prerequisites()
    if reason:
        return reason
    probe = f"chatlab{os.getpid()}probe"
    try:
        _run(["ip", "netns", "add", probe])
    except LabError as error:
        return f"cannot create network namespaces here ({error})"
    subprocess.run(["ip", "netns", "del", probe], check=False, capture_output=True, timeout=10)
    return None


def _run(command: list[str], stdin: str | None = None) -> str:
    """Run one setup command; LabError with its own complaint (one line) when it fails."""
    try:
        done = subprocess.run(command, check=False, input=stdin, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LabError(f"{' '.join(command[:4])}: {error}") from None
    if done.returncode != 0:
        complaint = (done.stderr or done.stdout).strip().splitlines()
        raise LabError(f"{' '.join(command)}: {complaint[-1] if complaint else f'exit {done.returncode}'}")
    return done.stdout


def list_namespaces() -> list[str]:
    try:
        done = subprocess.run(["ip", "netns", "list"], check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete chatlab namespaces whose creating process is gone (a run killed by SIGKILL)."""
    removed = []
    for name in list_namespaces():
        match = _NAME.match(name)
        if match and not _pid_alive(int(match.group(1))):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True, timeout=10)
            removed.append(name)
    return removed


def _ruleset(device: str, loss: float, syn_drops: int = 0) -> str:
    """nftables: drop `loss` % of arriving packets at random; count what each transport sends and gets.

    `numgen random mod 1000` draws 0..999 per packet (nftables' own random
    number), so `< 50` drops 5 % (and 0.5 % can be asked for too). Counting rules come after the drop, so they
    count what really got through; every rule has a comment to find it by.

    `syn_drops` N > 0 drops exactly the first N SYNs (connection requests:
    SYN without ACK) arriving here: `numgen inc` counts 0, 1, 2 ... only for
    the packets that reach it, and the flag test before it lets only SYNs
    reach it. A fixed count repeats in every run, where random loss hits a
    SYN only now and then.
    """
    drop = ""
    if syn_drops > 0:
        drop += (
            f'        iifname "{device}" tcp flags & (syn | ack) == syn numgen inc mod 1000000 < {syn_drops}'
            ' counter drop comment "syn-dropped"\n'
        )
    if loss > 0:
        for protocol in ("tcp", "udp"):
            drop += (
                f'        iifname "{device}" meta l4proto {protocol} numgen random mod 1000 < {round(loss * 10)}'
                f' counter drop comment "{protocol}-dropped"\n'
            )
    return (
        f"table inet {TABLE} {{\n"
        "    chain input {\n"
        "        type filter hook input priority 0; policy accept;\n"
        f"{drop}"
        f'        iifname "{device}" meta l4proto tcp counter comment "tcp-in"\n'
        f'        iifname "{device}" meta l4proto udp counter comment "udp-in"\n'
        "    }\n"
        "    chain output {\n"
        "        type filter hook output priority 0; policy accept;\n"
        f'        oifname "{device}" meta l4proto tcp counter comment "tcp-out"\n'
        f'        oifname "{device}" meta l4proto udp counter comment "udp-out"\n'
        "    }\n"
        "}\n"
    )


@dataclass
class NamespacePair:
    """The two namespaces and the lossy veth link between them. A context manager."""

    loss: float = 0.0  # percent of packets dropped on arrival, each side
    rate: str | None = None  # tbf rate, e.g. "1mbit"
    syn_drops: int = 0  # the server's side drops the first N SYNs that arrive
    pid: int = field(default_factory=os.getpid)
    created: list[str] = field(default_factory=list)

    @property
    def server_ns(self) -> str:
        return f"chatlab{self.pid}s"

    @property
    def client_ns(self) -> str:
        return f"chatlab{self.pid}c"

    @property
    def server_device(self) -> str:
        return f"clv{self.pid}s"  # interface names are at most 15 characters

    @property
    def client_device(self) -> str:
        return f"clv{self.pid}c"

    server_address = SERVER_ADDRESS
    client_address = CLIENT_ADDRESS

    def exec_prefix(self, namespace: str) -> list[str]:
        return ["ip", "netns", "exec", namespace]

    def __enter__(self) -> NamespacePair:  # noqa: PYI034 (typing.Self needs Python 3.11)
        if os.geteuid() != 0:
            raise LabError(_(ROOT_REASON))
        reason = missing_tools(need_tc=self.rate is not None)
        if reason:
            raise LabUnavailable(reason)
        if not 0 <= self.loss <= 100:
            raise LabError(_("--netns-loss is a percentage from 0 to 100, not {loss:g}").format(loss=self.loss))
        remove_stale()
        try:
            self._build()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _build(self) -> None:
        for namespace in (self.server_ns, self.client_ns):
            _run(["ip", "netns", "add", namespace])
            self.created.append(namespace)
        _run(["ip", "link", "add", self.server_device, "type", "veth", "peer", "name", self.client_device])
        sides = (
            (self.server_ns, self.server_device, self.server_address),
            (self.client_ns, self.client_device, self.client_address),
        )
        for namespace, device, address in sides:
            inside = self.exec_prefix(namespace)
            syn_drops = self.syn_drops if namespace == self.server_ns else 0
            _run(["ip", "link", "set", device, "netns", namespace])
            _run([*inside, "ip", "link", "set", "lo", "up"])
            _run([*inside, "ip", "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", device])
            _run([*inside, "ip", "link", "set", device, "up"])
            # Without this the kernel hands TCP 64 KB super-packets (GSO/GRO/TSO)
            # and one random drop would take out dozens of real packets.
            _run([*inside, "ethtool", "-K", device, "gro", "off", "gso", "off", "tso", "off"])
            _run([*inside, "nft", "-f", "-"], stdin=_ruleset(device, self.loss, syn_drops))
            if self.rate:
                tbf = ["tbf", "rate", self.rate, "burst", RATE_BURST, "latency", RATE_QUEUE]
                _run([*inside, "tc", "qdisc", "add", "dev", device, "root", *tbf])

    def counters(self, namespace: str) -> dict[str, dict[str, int]]:
        """nftables counters of one side by rule comment: {"tcp-in": {"packets": n, "bytes": b}, ...}."""
        output = _run([*self.exec_prefix(namespace), "nft", "-j", "list", "table", "inet", TABLE])
        found: dict[str, dict[str, int]] = {}
        for item in json.loads(output).get("nftables", []):
            rule: dict[str, Any] | None = item.get("rule") if isinstance(item, dict) else None
            if not rule or "comment" not in rule:
                continue
            for expression in rule.get("expr", []):
                if isinstance(expression, dict) and "counter" in expression:
                    counter = expression["counter"]
                    found[rule["comment"]] = {"packets": int(counter["packets"]), "bytes": int(counter["bytes"])}
        return found

    def rate_drops(self, namespace: str, device: str) -> int:
        """Packets the tbf rate limit on this side threw away because its queue was full (0 without a limit)."""
        output = _run([*self.exec_prefix(namespace), "tc", "-s", "-j", "qdisc", "show", "dev", device])
        try:
            qdiscs = json.loads(output)
        except ValueError:
            return 0
        return sum(int(q.get("drops", 0)) for q in qdiscs if isinstance(q, dict) and q.get("kind") == "tbf")

    def dropped(self, namespace: str, comment: str) -> int:
        """Packets dropped by the rule with this comment on that side (0 when there is no such rule)."""
        return self.counters(namespace).get(comment, {}).get("packets", 0)

    def remove(self) -> None:
        """Delete both namespaces (the veth pair and the nft tables go with them). Never raises.

        A second Ctrl-C must not interrupt the cleanup half way: SIGINT and
        SIGTERM wait until it is done.
        """
        blocked = {signal.SIGINT, signal.SIGTERM}
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            commands = [["ip", "netns", "del", namespace] for namespace in (self.server_ns, self.client_ns)]
            # If setup stopped before the veth moved into a namespace, it is still here.
            commands.append(["ip", "link", "del", self.server_device])
            for command in commands:
                try:
                    subprocess.run(command, check=False, capture_output=True, timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self.created.clear()
        finally:
            if in_main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)


CLONE_NEWNET = 0x40000000  # linux/sched.h


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """Run the body with this thread in the named network namespace; back to the old one afterwards.

    Sockets created in the body stay in `namespace` for their whole life,
    also after the thread has left it: that is how a capture socket and a
    client socket of the lab live beside the bots. setns(2) moves the calling
    thread only, so other threads are not affected. Python 3.11 has no
    os.setns: libc's is called through ctypes.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    setns = getattr(libc, "setns", None)
    if setns is None:
        raise LabUnavailable(_("this C library has no setns(2): network namespaces cannot be entered"))

    def enter(fd: int) -> None:
        if setns(fd, CLONE_NEWNET) != 0:
            number = ctypes.get_errno()
            raise LabError(f"setns into a network namespace failed: {os.strerror(number)}")

    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
        try:
            enter(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            enter(home)
    finally:
        os.close(home)
