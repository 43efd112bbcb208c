"""Scenario `threads`: an iterative server against `socketserver.ThreadingTCPServer`, on loopback.

The first server of most socket tutorials is iterative: `accept()`, talk to
that client until it leaves, then `accept()` the next one. Here N clients
arrive a little apart; each says one line, reads the answer, stays for
`hold` seconds (a chat member stays much longer) and leaves. Both servers
answer with the same handler; only the server class differs:
`socketserver.TCPServer` (iterative) and `socketserver.ThreadingTCPServer`
(a thread per connection, as chatsrv).

Measured per client: how long `connect()` took (the kernel completes the
three-way handshake from the listen backlog, before anyone calls
`accept()`: connect succeeds at once even when the server is busy), when
the server's `accept()` took the connection, and when the first answer came.
With the iterative server, client 2 waits at `accept` until client 1 is gone.

Owns the servers and clients of this demonstration: each server runs in one
thread here and is shut down at the end; each client is a thread. Imports
only the standard library.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from typing import Any

TIMEOUT = 10.0  # seconds any one socket operation may take before the run counts as failed


class _Answer(socketserver.StreamRequestHandler):
    """The same handler for both servers: answer each line until the client leaves."""

    server: _LabServer

    def handle(self) -> None:
        self.server.note_accept(self.client_address[1])
        for line in self.rfile:
            self.wfile.write(b"answer to " + line)


class _LabServer(socketserver.TCPServer):
    allow_reuse_address = True
    accepted: dict[int, float]

    def note_accept(self, client_port: int) -> None:
        self.accepted[client_port] = time.monotonic()


class IterativeServer(_LabServer):
    """One client at a time: the next `accept` waits until `handle` returns."""


class ThreadedServer(socketserver.ThreadingMixIn, _LabServer):
    """A thread per connection (what chatsrv uses)."""

    daemon_threads = True
    block_on_close = True


def _client(port: int, start: float, hold: float, record: dict[str, Any]) -> None:
    """Arrive at `start`, say one line, read the answer, stay `hold` seconds, leave; times go into `record`."""
    delay = start - time.monotonic()
    if delay > 0:
        time.sleep(delay)  # the arrival time is part of the experiment, not a wait for something
    began = time.monotonic()
    record["arrived"] = began
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            record["connected"] = time.monotonic()
            record["port"] = sock.getsockname()[1]
            sock.sendall(b"hello\n")
            answer = sock.makefile("rb").readline()
            record["answered"] = time.monotonic()
            record["answer"] = answer.decode(errors="replace").strip()
            time.sleep(hold)  # a member that stays: this is what keeps an iterative server busy
    except OSError as error:
        record["error"] = str(error)


def run_server(kind: str, clients: int, stagger: float, hold: float) -> dict[str, Any]:
    """Run `clients` clients, `stagger` s apart, against one server of `kind` ("iterative" or "threaded")."""
    server_class = IterativeServer if kind == "iterative" else ThreadedServer
    server = server_class(("127.0.0.1", 0), _Answer)
    server.accepted = {}
    port = server.server_address[1]
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"lab-{kind}")
    serving.start()
    records: list[dict[str, Any]] = [{} for _ in range(clients)]
    try:
        origin = time.monotonic() + 0.05
        threads = [
            threading.Thread(target=_client, args=(port, origin + number * stagger, hold, records[number]))
            for number in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT + clients * hold + 5)
    finally:
        server.shutdown()
        server.server_close()
        serving.join(TIMEOUT)
    rows = []
    for number, record in enumerate(records, 1):
        arrived = record.get("arrived", origin)
        accepted = server.accepted.get(record.get("port", -1))
        rows.append(
            {
                "client": number,
                "arrived_ms": round((arrived - origin) * 1000, 1),
                "connect_ms": _after(arrived, record.get("connected")),
                "accepted_after_ms": _after(arrived, accepted),
                "answer_after_ms": _after(arrived, record.get("answered")),
                "error": record.get("error"),
            }
        )
    name = "socketserver.TCPServer" if kind == "iterative" else "socketserver.ThreadingTCPServer"
    return {"server": kind, "class": name, "clients": rows}


def _after(start: float, moment: float | None) -> float | None:
    """Milliseconds from `start` to `moment` (None when it never happened)."""
    return None if moment is None else round((moment - start) * 1000, 1)


def run_threads(clients: int = 3, stagger: float = 0.1, hold: float = 1.0) -> dict[str, Any]:
    return {
        "scenario": "threads",
        "clients": clients,
        "stagger": stagger,
        "hold": hold,
        "servers": [run_server("iterative", clients, stagger, hold), run_server("threaded", clients, stagger, hold)],
    }
