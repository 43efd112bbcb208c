"""Scenario ceiling: what one Python thread's sendto loop reaches on this machine, next to lanchat's fan-out.

A child process (like a server, it is not this benchmark) sends S x M
datagrams of a message's size to each of N sockets of this process on
127.0.0.1, one `sendto` per member per message and nothing else: the most a
Python server sending one datagram per member could deliver. Right after,
the fanout scenario (same sizes) runs against lanchat over UDP and over TCP,
and the row gives UDP fan-out as a fraction of that ceiling, with TCP beside
it. The receivers drain their sockets so that the kernel's receive buffers
do not overflow; the ceiling is the sender's rate (datagrams handed to the
kernel per second of its wall time), whatever the receivers kept up with.
Owns: the ceiling run and its result record.
Must not import: the registry, the runner, the report or the CLI.
"""
from __future__ import annotations

import selectors
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from ..conn import LOOPBACK
from ..launchers import ServerProcess
from ..procstat import rnd
from ..records import OPTIONAL
from .base import RunContext, Scenario
from .fanout import run_fanout

# The sender: argv = ports, datagrams per member, datagram size. Prints its wall and CPU seconds.
_SENDER = """
import socket, sys, time
ports = [int(p) for p in sys.argv[1].split(",")]
count, size = int(sys.argv[2]), int(sys.argv[3])
addresses = [("127.0.0.1", port) for port in ports]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
sendto = sock.sendto
payload = b"x" * size
dontwait = socket.MSG_DONTWAIT
failed = 0
start, cpu = time.perf_counter(), time.process_time()
for _ in range(count):
    for address in addresses:
        try:
            sendto(payload, dontwait, address)
        except OSError:
            failed += 1
print(time.perf_counter() - start, time.process_time() - cpu, failed)
"""

#: lanchat's datagram for a message of --size bytes of text: the text plus about 110 bytes of JSON around it.
_ENVELOPE = 110


@dataclass
class CeilingResult:
    clients: int
    senders: int
    messages: int
    ceiling_per_s: float | None = None
    ceiling_received: int | None = None
    udp_per_s: float | None = None
    tcp_per_s: float | None = None
    udp_of_ceiling: float | None = None
    tcp_of_udp: float | None = None
    error: str | None = field(default=None, metadata=OPTIONAL)


def bare_sendto(members: int, count: int, size: int, timeout: float) -> tuple[float | None, int, str | None]:
    """Datagrams per second of a bare sendto loop to `members` receivers here; how many arrived; an error."""
    receivers = []
    selector = selectors.DefaultSelector()
    try:
        for _ in range(members):
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receivers.append(receiver)
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            receiver.bind((LOOPBACK, 0))
            receiver.setblocking(False)
            selector.register(receiver, selectors.EVENT_READ)
        ports = ",".join(str(receiver.getsockname()[1]) for receiver in receivers)
        sender = subprocess.Popen([sys.executable, "-c", _SENDER, ports, str(count), str(size)],
                                  stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        received = 0
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            ready = selector.select(0.05)
            for key, _ in ready:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    while True:
                        sock.recv(65536)
                        received += 1
                except BlockingIOError:
                    pass
            if sender.poll() is not None:
                if ready:
                    quiet_until = None
                elif quiet_until is None:
                    quiet_until = time.monotonic() + 0.2
                elif time.monotonic() >= quiet_until:
                    break
        if sender.poll() is None:
            sender.kill()
            sender.communicate()
            return None, received, "the sendto loop did not finish before --timeout"
        out, _ = sender.communicate()
        if sender.returncode:
            return None, received, f"the sendto loop failed (exit {sender.returncode})"
        wall = float(out.split()[0])
        return (members * count / wall if wall > 0 else None), received, None
    finally:
        selector.close()
        for receiver in receivers:
            receiver.close()


def _fanout_rate(ctx: RunContext, udp: bool) -> tuple[float | None, str | None]:
    """lanchat's fanout deliveries/s over UDP or TCP (a fresh server, stopped right after)."""
    started: list[ServerProcess] = []

    def launch() -> ServerProcess:
        server = ctx.launch()
        started.append(server)
        return server
    try:
        result = run_fanout(RunContext(launch=launch, opts=ctx.opts, udp=udp))
    finally:
        for server in started:
            server.stop()
    error = result.ending.error if result.ending else None
    return (result.figures.deliveries_per_s if result.figures else None), error


def run_ceiling(ctx: RunContext) -> CeilingResult:
    opts = ctx.opts
    result = CeilingResult(clients=opts.clients, senders=opts.senders, messages=opts.messages)
    per_member = opts.senders * opts.messages
    ceiling, result.ceiling_received, error = bare_sendto(opts.clients, per_member, opts.size + _ENVELOPE,
                                                          opts.timeout)
    result.ceiling_per_s = rnd(ceiling, 0)
    result.udp_per_s, udp_error = _fanout_rate(ctx, udp=True)
    result.tcp_per_s, tcp_error = _fanout_rate(ctx, udp=False)
    result.error = error or (udp_error and f"udp: {udp_error}") or (tcp_error and f"tcp: {tcp_error}")
    if ceiling and result.udp_per_s:
        result.udp_of_ceiling = rnd(result.udp_per_s / ceiling, 3)
    if result.udp_per_s and result.tcp_per_s:
        result.tcp_of_udp = rnd(result.tcp_per_s / result.udp_per_s, 2)
    return result


SCENARIO = Scenario(
    name="ceiling",
    help="""a bare Python sendto loop (one datagram per member per
message, fanout's sizes) to N sockets on 127.0.0.1, then lanchat
fanout over UDP and over TCP: deliveries/s side by side and UDP
fan-out as a fraction of the sendto ceiling (lanchat only).""",
    key_metric="udp_of_ceiling",
    headline=("udp_of_ceiling",),
    columns=(("server", "server"), ("N", "clients"), ("S", "senders"), ("M", "messages"),
             ("sendto/s", "ceiling_per_s"), ("udp deliv/s", "udp_per_s"), ("tcp deliv/s", "tcp_per_s"),
             ("udp/ceiling", "udp_of_ceiling"), ("tcp/udp", "tcp_of_udp")),
    run=lambda ctx: run_ceiling(ctx),
    lanchat_only=True,
)
