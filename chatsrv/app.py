"""The `chatsrv` command: flags, logging, signals, one service for every server.

Builds one `ChatService` and the transport servers around it, prints where
classmates can join, and shuts everything down in the order that avoids the
socketserver hang: notice, close outboxes, `shutdown()`, wake blocked
`recv`s, `server_close()` (ARCHITECTURE.md).
"""

from __future__ import annotations

import argparse
import logging
import resource
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from chatsrv import __version__
from chatsrv.netinfo import ipv4_interfaces
from chatsrv.service import ChatService
from chatsrv.tcp import DEFAULT_OUTBOX_LIMIT, ChatTCPServer
from chatsrv.wire import DEFAULT_MAX_FRAME

log = logging.getLogger("chatsrv")

DEFAULT_PORT = 9009
FD_RESERVE = 64  # descriptors kept free for logs, the database, UDP and accept()


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value


def _frame_size(text: str) -> int:
    value = int(text)
    if not 256 <= value <= 16 * 1024 * 1024:
        raise argparse.ArgumentTypeError(f"must be 256 to 16777216 bytes, not {text}")
    return value


for _checker, _name in ((_count, "a whole number"), (_port, "a port"), (_seconds, "seconds"), (_frame_size, "a size")):
    _checker.__name__ = _name  # argparse names the type in "invalid ... value"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chatsrv",
        description="lanchat server: rooms of chat over length-framed TCP (and UDP), for a LAN or a class.",
        epilog="Classmates join with: chatclient --host ADDRESS --port PORT --nick NAME. "
        "Ctrl-C stops the server and tells everyone.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lanchat {__version__}")
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0: every IPv4 interface; :: for IPv6)")
    net.add_argument("--port", type=_port, default=DEFAULT_PORT, help="TCP port (0 picks a free one and prints it)")
    limits = parser.add_argument_group("limits (0 turns a limit off)")
    limits.add_argument("--max-frame", type=_frame_size, default=DEFAULT_MAX_FRAME, help="largest TCP frame payload, bytes")
    limits.add_argument("--max-clients", type=_count, default=1000, help="most users at once (kept below the open-file limit)")
    limits.add_argument("--max-per-ip", type=_count, default=16, help="most connections from one address")
    limits.add_argument("--hello-timeout", type=_seconds, default=20.0, help="seconds a new connection has to say hello")
    limits.add_argument("--rate", type=_seconds, default=5.0, help="messages per second per user, on average")
    limits.add_argument("--burst", type=_count, default=20, help="messages a user may send at once before --rate applies")
    limits.add_argument("--outbox", type=_count, default=DEFAULT_OUTBOX_LIMIT, help="bytes queued for one user before it is dropped as slow")
    chat = parser.add_argument_group("chat")
    chat.add_argument("--history", type=_count, default=50, help="recent messages per room shown to newcomers")
    chat.add_argument("--motd", default=None, help="message of the day shown in welcome")
    chat.add_argument("--name", default=None, help="server name shown to clients (default: host name)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="how much to log on stderr")
    return parser


@dataclass
class Server:
    """A running chatsrv: one service, its transport servers and their threads."""

    service: ChatService
    tcp: ChatTCPServer
    threads: list[threading.Thread] = field(default_factory=list)
    stopped: bool = False

    @property
    def port(self) -> int:
        return self.tcp.port

    def start(self) -> None:
        thread = threading.Thread(target=self.tcp.serve_forever, kwargs={"poll_interval": 0.05}, name="tcp-accept")
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        """Notice to everyone, close outboxes, stop accepting, wake and join handlers."""
        if self.stopped:
            return
        self.stopped = True
        self.service.shutdown()
        self.tcp.stop()
        for thread in self.threads:
            thread.join(5)


def raise_file_limit() -> int:
    """Raise the soft open-file limit to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The family and socket address to bind for `host` (raises socket.gaierror)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family, address


def build_server(args: argparse.Namespace) -> Server:
    """Create (and bind) everything `args` asks for; raises OSError on bind problems."""
    file_limit = raise_file_limit()
    max_connections = max(16, file_limit - FD_RESERVE)
    max_clients = args.max_clients
    if not max_clients or max_clients > max_connections:
        if max_clients:
            log.warning("--max-clients %d is above the open-file limit; using %d", max_clients, max_connections)
        max_clients = max_connections
    service = ChatService(
        server_name=args.name or socket.gethostname(),
        history=args.history,
        rate=args.rate,
        burst=args.burst,
        max_clients=max_clients,
        max_per_ip=args.max_per_ip,
        motd=args.motd,
    )
    family, address = resolve(args.host, args.port)
    tcp = ChatTCPServer(
        address,
        service,
        max_frame=args.max_frame,
        outbox_limit=args.outbox,
        hello_timeout=args.hello_timeout,
        family=family,
        max_connections=max_connections,
    )
    return Server(service=service, tcp=tcp)


def join_hints(host: str, port: int) -> list[str]:
    """The command a classmate types, for each address they could reach us at."""
    if host in ("0.0.0.0", "", "::"):
        addresses = [iface.address for iface in ipv4_interfaces() if not iface.is_loopback]
    else:
        addresses = [host]
    return [f"chatclient --host {address} --port {port} --nick NAME" for address in addresses]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        server = build_server(args)
    except socket.gaierror as error:
        print(f"chatsrv: unknown host {args.host!r}: {error.strerror}", file=sys.stderr)
        return 2
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == 98:
            reason = "address already in use (is another chatsrv running? try --port 0)"
        print(f"chatsrv: cannot listen on {args.host} port {args.port}: {reason}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    server.start()
    print(f"chatsrv {__version__} listening on {args.host} port {server.port} (TCP)", flush=True)
    hints = join_hints(args.host, server.port)
    if hints:
        print("classmates join with:", flush=True)
        for hint in hints:
            print(f"  {hint}", flush=True)
    print(f"on this machine: chatclient --host 127.0.0.1 --port {server.port} --nick NAME", flush=True)
    print("Ctrl-C stops the server.", flush=True)
    while not stop.wait(0.5):
        pass
    log.info("stopping")
    server.stop()
    return 0




def run() -> NoReturn:
    """Console-script entry point."""
    sys.exit(main())
