"""Scenario `timewait`: the four-way teardown, TIME_WAIT and SO_REUSEADDR, on loopback, without root.

1. Who closes first: a client and a server connected over 127.0.0.1 close in
   turn, once with the client closing first and once with the server. After
   each step the kernel's view of both sockets is read from /proc/net/tcp
   (what `ss -tan` shows): the side that closes first goes FIN_WAIT2 while
   the other sits in CLOSE_WAIT, and once both have closed the first closer
   holds TIME_WAIT (for 60 s on Linux), the other side is gone.
2. Restarting a server: after the server closed its connections first (as
   `chatsrv` does on Ctrl-C), its port has connections in TIME_WAIT. A new
   socket that binds that port plainly fails with EADDRINUSE; with
   SO_REUSEADDR set first (as `chatsrv` and `socket.create_server` do) the
   bind succeeds.

Owns the sockets of this demonstration (no threads: every step waits for
the kernel by polling /proc/net/tcp with a deadline) and the pure parser
`tcp_states`. Imports only the standard library.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path
from typing import Any

DEADLINE = 3.0  # seconds a step may take to show its state in /proc/net/tcp
POLL = 0.005
PROC_NET_TCP = Path("/proc/net/tcp")

# linux/include/net/tcp_states.h, as /proc/net/tcp writes them (hex).
STATE_NAMES = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
}
GONE = "(gone)"


class TimewaitError(Exception):
    """The kernel's view could not be read (no /proc/net/tcp): the scenario cannot run here."""


def tcp_states(text: str, clock_ticks: int = 100) -> dict[tuple[int, int], tuple[str, float | None]]:
    """Parse /proc/net/tcp: (local port, remote port) -> (state name, seconds left on a TIME_WAIT timer).

    Columns: `sl local_address rem_address st tx_queue:rx_queue tr:tm->when ...`;
    addresses are `HEX_IP:HEX_PORT`, the state is hex, timer 3 is the
    TIME_WAIT timer and `tm->when` counts clock ticks (USER_HZ) until it fires.
    """
    states: dict[tuple[int, int], tuple[str, float | None]] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        state = STATE_NAMES.get(int(fields[3], 16), fields[3])
        timer, _, when = fields[5].partition(":")
        left = int(when, 16) / clock_ticks if timer == "03" and when else None
        states[(local_port, remote_port)] = (state, left)
    return states


def _read_states() -> dict[tuple[int, int], tuple[str, float | None]]:
    try:
        text = PROC_NET_TCP.read_text()
    except OSError as error:
        raise TimewaitError(f"cannot read {PROC_NET_TCP} ({error.strerror}): this scenario needs Linux") from None
    return tcp_states(text, os.sysconf("SC_CLK_TCK"))


def _wait_for(client_port: int, server_port: int, client_state: str, server_state: str) -> dict[str, Any]:
    """Poll until the client's and the server's socket show the wanted states (or the deadline passes)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        states = _read_states()
        client, client_timer = states.get((client_port, server_port), (GONE, None))
        server, server_timer = states.get((server_port, client_port), (GONE, None))
        if (client, server) == (client_state, server_state) or time.monotonic() > deadline:
            # Timer 3 also runs in FIN_WAIT2: only a TIME_WAIT timer is reported.
            left = client_timer if client == "TIME_WAIT" else server_timer if server == "TIME_WAIT" else None
            return {"client": client, "server": server, "time_wait_left": left}
        time.sleep(POLL)


def _connected_pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    """(listener, client, server side of the connection) on 127.0.0.1, a free port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname(), timeout=DEADLINE)
    server, _ = listener.accept()
    server.settimeout(DEADLINE)
    return listener, client, server


def close_in_turn(first: str) -> dict[str, Any]:
    """Client and server close one after the other, `first` ("client" or "server") first; the states at each step."""
    listener, client, server = _connected_pair()
    with listener, client, server:
        client_port = client.getsockname()[1]
        server_port = server.getsockname()[1]
        closer, other = (client, server) if first == "client" else (server, client)
        later = "server" if first == "client" else "client"
        steps = []
        snapshot = _wait_for(client_port, server_port, "ESTABLISHED", "ESTABLISHED")
        steps.append({"step": "connected", **snapshot})
        closer.close()  # sends FIN; the peer's kernel ACKs it at once
        wanted = ("FIN_WAIT2", "CLOSE_WAIT") if first == "client" else ("CLOSE_WAIT", "FIN_WAIT2")
        snapshot = _wait_for(client_port, server_port, *wanted)
        eof = other.recv(1) == b""  # the other side reads end of stream: recv returns b""
        steps.append({"step": f"{first} closes", **snapshot, "other_reads_eof": eof})
        other.close()  # its FIN; the first closer ACKs it and waits 2 MSL in TIME_WAIT
        wanted = ("TIME_WAIT", GONE) if first == "client" else (GONE, "TIME_WAIT")
        snapshot = _wait_for(client_port, server_port, *wanted)
        steps.append({"step": f"{later} closes", **snapshot})
    final = steps[-1]
    holder = [side for side in ("client", "server") if final[side] == "TIME_WAIT"]
    return {
        "first": first,
        "client_port": client_port,
        "server_port": server_port,
        "steps": steps,
        "time_wait_on": holder[0] if len(holder) == 1 else None,
        "time_wait_left": final["time_wait_left"],
    }


def _bind(port: int, reuse: bool) -> str:
    """Bind a fresh socket to 127.0.0.1:port; "ok" or the errno name."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError as error:
            return errno.errorcode.get(error.errno or 0, str(error))
    return "ok"


def rebind_after_server_closed(connections: int) -> dict[str, Any]:
    """A server closes `connections` connections first and stops; then a plain and a SO_REUSEADDR bind of its port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    clients: list[socket.socket] = []
    try:
        with listener:
            for _ in range(connections):
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=DEADLINE))
                accepted, _ = listener.accept()
                accepted.close()  # the server closes first, like chatsrv stopping
        for client in clients:
            client.recv(1)  # end of stream
            client.close()
        deadline = time.monotonic() + DEADLINE
        while True:
            waiting = sum(
                1 for (local, _), (state, _) in _read_states().items() if local == port and state == "TIME_WAIT"
            )
            if waiting >= connections or time.monotonic() > deadline:
                break
            time.sleep(POLL)
    finally:
        for client in clients:
            client.close()
    return {
        "port": port,
        "connections": connections,
        "time_wait_sockets": waiting,
        "plain_bind": _bind(port, reuse=False),
        "reuseaddr_bind": _bind(port, reuse=True),
    }


def run_timewait(connections: int = 3) -> dict[str, Any]:
    return {
        "scenario": "timewait",
        "cases": [close_in_turn("client"), close_in_turn("server")],
        "rebind": rebind_after_server_closed(connections),
    }
