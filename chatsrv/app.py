"""The `chatsrv` command: flags, logging, signals, one service for every server.

Builds one `ChatService` and the transport servers around it, prints where
classmates can join, and shuts everything down in the order that avoids the
socketserver hang: notice, close outboxes, `shutdown()`, wake blocked
`recv`s, `server_close()` (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import secrets
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from chatsrv import __version__, cluster
from chatsrv.access import DEFAULT_IPV6_PREFIX, Access, Network, parse_network, set_ipv6_prefix
from chatsrv.admission import SESSION_BURST
from chatsrv.continuity import OP_SECRET as OP_SECRET_STATE
from chatsrv.discovery import Discovery
from chatsrv.faults import Impairment, parse_delay
from chatsrv.messages import MAX_TEXT
from chatsrv.outbox import DEFAULT_OUTBOX_LIMIT
from chatsrv.service import ChatService
from chatsrv.sqlitestore import open_store
from chatsrv.store import DEFAULT_PATH, MEMORY
from chatsrv.tcp import DEFAULT_SEND_BUFFER, ChatTCPServer
from chatsrv.textdoor import TextDoorServer
from chatsrv.udp import ChatUDPServer
from lanchat import i18n, platforms
from lanchat.cliargs import Parser, count, percent, port, positive_seconds, rate, seconds
from lanchat.i18n import _
from lanchat.netinfo import ipv4_interfaces
from lanchat.wire import DEFAULT_MAX_DATAGRAM, DEFAULT_MAX_FRAME

log = logging.getLogger("chatsrv")

DEFAULT_PORT = 9009
BACKPLANE_WAIT = 5.0  # seconds a start waits for the backplane link before serving with local rooms
FD_RESERVE = 64  # descriptors kept free for logs, the database, UDP and accept()
# Connections that have not said hello: a client says it in its first frame,
# so only scripts (or a whole class starting at once) ever have many waiting.
DEFAULT_MAX_WAITING = 128
DEFAULT_MAX_WAITING_PER_IP = 8





def _frame_size(text: str) -> int:
    value = int(text)
    if not 256 <= value <= 16 * 1024 * 1024:
        raise argparse.ArgumentTypeError(f"must be 256 to 16777216 bytes, not {text}")
    return value


def _network(text: str) -> Network:
    try:
        return parse_network(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an address or network like 192.168.1.0/24") from None


def _motd(text: str) -> str:
    """The message of the day itself, or with @FILE the text of that file."""
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise argparse.ArgumentTypeError(f"cannot read {text[1:]!r}: {reason}") from None
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise argparse.ArgumentTypeError(f"a message of the day is at most {MAX_TEXT} characters, not {len(text)}")
    return text


def _secret(text: str) -> str:
    if not 1 <= len(text) <= 200 or text != text.strip():
        raise argparse.ArgumentTypeError("must be 1 to 200 characters, without spaces around it")
    return text


def _secret_file(path: str) -> str:
    """The secret kept in the file `path`: its first line, without the line ending."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read(4096)
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise argparse.ArgumentTypeError(f"cannot read {path!r}: {reason}") from None
    try:
        return _secret(text.splitlines()[0] if text else "")
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"the secret in {path!r} {error}") from None


PASSWORD_VARIABLE = "LANCHAT_PASSWORD"
OP_SECRET_VARIABLE = "LANCHAT_OP_SECRET"


def take_secrets(args: argparse.Namespace, environ: dict[str, str], parser: argparse.ArgumentParser) -> None:
    """Fill `args.password` and `args.op_secret` from the flag, the file or the environment.

    A flag or a file wins over the environment. Secrets on the command line
    can be read by every user of the machine (`ps`, /proc/PID/cmdline); a
    file or an environment variable cannot. `args.password_from` and
    `args.op_secret_from` say where each came from, for the start-up lines,
    which never show the password.
    """
    for name, variable in (("password", PASSWORD_VARIABLE), ("op_secret", OP_SECRET_VARIABLE)):
        from_file = getattr(args, f"{name}_file")
        source = None
        if getattr(args, name) is not None:
            source = "--" + name.replace("_", "-")
        elif from_file is not None:
            setattr(args, name, from_file)
            source = "--" + name.replace("_", "-") + "-file"
        elif environ.get(variable):
            try:
                setattr(args, name, _secret(environ[variable]))
            except argparse.ArgumentTypeError as error:
                parser.error(f"{variable} {error}")
            source = variable
        setattr(args, f"{name}_from", source)


def _ipv6_prefix(text: str) -> int:
    try:
        bits = int(text)
    except ValueError:
        bits = -1
    if not 1 <= bits <= 128:
        raise argparse.ArgumentTypeError(f"must be a prefix length from 1 to 128 bits, not {text!r}")
    return bits


def _database(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"give a file name, or {MEMORY} to keep nothing")
    return text


def _datagram_size(text: str) -> int:
    value = int(text)
    if not 256 <= value <= 65507:  # 65507: the largest UDP payload over IPv4
        raise argparse.ArgumentTypeError(f"must be 256 to 65507 bytes, not {text}")
    return value




def _delay(text: str) -> tuple[float, float]:
    try:
        return parse_delay(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


for _checker, _name in (
    (_frame_size, "size"),
    (_network, "network"),
    (_motd, "message of the day"),
    (_secret, "secret"),
    (_secret_file, "secret file"),
    (_database, "database"),
    (_datagram_size, "size"),
    (_delay, "delay"),
):
    _checker.__name__ = _name  # argparse names the type in "invalid ... value"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="chatsrv",
        description=_("lanchat server: rooms of chat over length-framed TCP (and UDP), for a LAN or a class."),
        epilog=_(
            "Classmates join with: chatclient --host ADDRESS --port PORT --nick NAME. "
            "Ctrl-C stops the server and tells everyone. "
            "After the lesson, 'chatsrv export --format html > chat.html' writes the transcript (see chatsrv export --help)."
        ),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"lanchat {__version__}",
        help=_("show program's version number and exit"),
    )
    net = parser.add_argument_group(_("network"))
    net.add_argument(
        "--host", default="0.0.0.0", help=_("address to listen on (0.0.0.0: every IPv4 interface; :: for IPv6)")
    )
    net.add_argument("--port", type=port, default=DEFAULT_PORT, help=_("TCP port (0 picks a free one and prints it)"))
    net.add_argument(
        "--udp-port", type=port, default=None, help=_("UDP port (default: the same number as the TCP port)")
    )
    net.add_argument(
        "--text-port", type=port, default=None, metavar="PORT",
        help=_(
            "also open a plain-text door on PORT for nc and telnet: one line in, one message out "
            "(0 picks a free one and prints it; off by default)"
        ),
    )
    net.add_argument("--no-udp", action="store_true", help=_("serve TCP only (also turns discovery off)"))
    net.add_argument(
        "--no-discovery",
        action="store_true",
        help=_(
            "do not answer discovery probes on the UDP port (then chatclient without --host cannot find this server)"
        ),
    )
    limits = parser.add_argument_group(_("limits (0 turns a limit off)"))
    limits.add_argument(
        "--max-frame", type=_frame_size, default=DEFAULT_MAX_FRAME, help=_("largest TCP frame payload, bytes")
    )
    limits.add_argument(
        "--max-datagram", type=_datagram_size, default=DEFAULT_MAX_DATAGRAM, help=_("largest UDP datagram, bytes")
    )
    limits.add_argument(
        "--peer-timeout",
        type=positive_seconds,
        default=30.0,
        help=_("seconds of silence after which a UDP user is dropped"),
    )
    limits.add_argument(
        "--max-clients", type=count, default=1000, help=_("most users at once (kept below the open-file limit)")
    )
    limits.add_argument("--max-per-ip", type=count, default=16, help=_("most connections from one address"))
    limits.add_argument(
        "--ipv6-prefix", type=_ipv6_prefix, default=DEFAULT_IPV6_PREFIX, metavar="BITS",
        help=_(
            "an IPv6 peer counts by this prefix for per-address limits and bans (default 64; 128: each address; "
            "link-local addresses always count alone)"
        ),
    )
    limits.add_argument(
        "--session-rate", type=rate, default=1.0,
        help=_(
            "new connections per second from one address, after a burst of {burst} (0 = off; off with --rate 0)"
        ).format(burst=SESSION_BURST),
    )
    limits.add_argument(
        "--max-rooms", type=count, default=300,
        help=_("rooms in memory at once; a room nobody is in makes space for a new one (0 = off)"),
    )
    limits.add_argument(
        "--hello-timeout", type=seconds, default=20.0,
        help=_("seconds from connecting by which a new TCP connection must have said hello (a deadline, not per read)"),
    )
    limits.add_argument(
        "--max-waiting", type=count, default=DEFAULT_MAX_WAITING,
        help=_("most TCP connections that have not said hello yet, in all (kept below --max-clients)"),
    )
    limits.add_argument(
        "--max-waiting-per-ip", type=count, default=DEFAULT_MAX_WAITING_PER_IP,
        help=_("most TCP connections from one address (an IPv6 /64) that have not said hello yet"),
    )
    limits.add_argument("--rate", type=rate, default=5.0, help=_("messages per second per user, on average"))
    limits.add_argument(
        "--burst", type=count, default=20, help=_("messages a user may send at once before --rate applies")
    )
    limits.add_argument(
        "--outbox",
        type=count,
        default=DEFAULT_OUTBOX_LIMIT,
        help=_("bytes queued for one user before it is dropped as slow"),
    )
    limits.add_argument(
        "--send-buffer",
        type=count,
        default=DEFAULT_SEND_BUFFER,
        help=_("kernel send buffer per TCP user, bytes (0: let the kernel autotune)"),
    )
    chat = parser.add_argument_group(_("chat"))
    chat.add_argument("--history", type=count, default=50, help=_("recent messages per room shown to newcomers"))
    chat.add_argument(
        "--motd",
        type=_motd,
        default=None,
        metavar="TEXT|@FILE",
        help=_("message of the day shown in welcome (@FILE reads it from a file)"),
    )
    chat.add_argument(
        "--name", default=None, help=_("server name shown to clients and in discovery (default: host name)")
    )
    access = parser.add_argument_group(_("teacher controls"))
    password = access.add_mutually_exclusive_group()
    password.add_argument(
        "--password", type=_secret, default=None, metavar="SECRET",
        help=_("everyone must give this password to join (chatclient --password SECRET); "
        "other users of this machine can see it in ps: prefer --password-file or "
        "{variable}").format(variable=PASSWORD_VARIABLE),
    )
    password.add_argument(
        "--password-file", type=_secret_file, default=None, metavar="FILE",
        help=_("read the password from FILE (its first line); or set {variable}").format(variable=PASSWORD_VARIABLE),
    )
    access.add_argument(
        "--allow",
        type=_network,
        action="append",
        default=[],
        metavar="CIDR",
        help=_("only these addresses may connect, e.g. 192.168.1.0/24 (repeatable)"),
    )
    access.add_argument(
        "--deny",
        type=_network,
        action="append",
        default=[],
        metavar="CIDR",
        help=_("these addresses may not connect, even if allowed (repeatable)"),
    )
    op_secret = access.add_mutually_exclusive_group()
    op_secret.add_argument(
        "--op-secret", type=_secret, default=None, metavar="SECRET",
        help=_("operator secret for /op (default: {variable}, else a random one, printed at start); "
        "visible in ps: prefer --op-secret-file").format(variable=OP_SECRET_VARIABLE),
    )
    op_secret.add_argument(
        "--op-secret-file",
        type=_secret_file,
        default=None,
        metavar="FILE",
        help=_("read the operator secret from FILE (its first line); or set {variable}").format(
            variable=OP_SECRET_VARIABLE
        ),
    )
    saved = parser.add_argument_group(_("saved history"))
    saved.add_argument(
        "--db",
        metavar="PATH",
        type=_database,
        default=DEFAULT_PATH,
        help=_(
            "SQLite file keeping rooms' history across restarts, for 'chatsrv export'; {memory} keeps nothing"
        ).format(memory=MEMORY),
    )
    saved.add_argument(
        "--store-whispers",
        action="store_true",
        help=_("also save private messages (whispers) in the database; off by default for privacy"),
    )
    faults = parser.add_argument_group(
        _("UDP fault injection (for teaching: applied to the datagrams the server sends, counted in /stats)")
    )
    faults.add_argument(
        "--udp-loss", type=percent, default=0.0, metavar="PCT", help=_("drop this percentage of datagrams")
    )
    faults.add_argument(
        "--udp-dup", type=percent, default=0.0, metavar="PCT", help=_("send this percentage of datagrams twice")
    )
    faults.add_argument(
        "--udp-reorder", type=percent, default=0.0, metavar="PCT",
        help=_("hold this percentage of datagrams back until the next one to that user has gone (at most 0.5 s)"),
    )
    faults.add_argument(
        "--udp-delay", type=_delay, default="0", metavar="MS[:JITTER]",
        help=_("delay every datagram by MS milliseconds, plus or minus JITTER (50:10 is 40 to 60 ms)"),
    )
    faults.add_argument(
        "--seed",
        type=int,
        default=None,
        help=_("random seed of the fault injection, so a run can be repeated (default: a new one, printed at start)"),
    )
    cluster_group = parser.add_argument_group("several servers (docs/scale-out.md)")
    cluster_group.add_argument(
        "--backplane",
        default=None,
        metavar="URL",
        help="share rooms with every chatsrv that names the same Redis, e.g. redis://10.0.0.5:6379/0 "
        "(needs pip install 'lanchat[backplane]')",
    )
    cluster_group.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="run N nodes on this port, one per core (Linux: SO_REUSEPORT), joined by --backplane",
    )
    cluster_group.add_argument(cluster.SHARED_PORT_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help=_("how much to log on stderr"),
    )
    i18n.add_language_option(parser)
    return parser


@dataclass
class Server:
    """A running chatsrv: one service, its transport servers and their threads."""

    service: ChatService
    tcp: ChatTCPServer
    udp: ChatUDPServer | None = None
    text: TextDoorServer | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    stopped: bool = False
    backplane: Any = None  # chatsrv.backplane.Backplane with --backplane (imported only then)

    @property
    def port(self) -> int:
        return self.tcp.port

    def start(self) -> None:
        if self.backplane is not None:
            self.backplane.start()
            self.backplane.wait_linked(BACKPLANE_WAIT)  # not linked yet: it keeps trying, rooms are local meanwhile
        thread = threading.Thread(target=self.tcp.serve_forever, kwargs={"poll_interval": 0.05}, name="tcp-accept")
        thread.start()
        self.threads.append(thread)
        if self.udp is not None:
            # poll_interval is also how often service_actions looks for silent UDP peers.
            thread = threading.Thread(target=self.udp.serve_forever, kwargs={"poll_interval": 0.05}, name="udp-serve")
            thread.start()
            self.threads.append(thread)
        if self.text is not None:
            serve = self.text.serve_forever
            thread = threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, name="text-accept")
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        """Notice to everyone, close outboxes, stop accepting, wake and join handlers."""
        if self.stopped:
            return
        self.stopped = True
        if self.backplane is not None:
            self.backplane.stop()  # first: the other nodes see this node's members leave (shutdown)
        self.service.shutdown()
        self.tcp.stop()
        if self.udp is not None:
            self.udp.stop()
        if self.text is not None:
            self.text.stop()
        for thread in self.threads:
            thread.join(5)
        self.service.store.close()  # last: commits everything the shutdown recorded too


def raise_file_limit() -> int | None:
    """Raise the open-file limit as far as allowed; the limit, or None where none is known (Windows)."""
    return platforms.raise_open_file_limit()


def resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The family and socket address to bind for `host` (raises socket.gaierror)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family, address


class UDPPortError(OSError):
    """The UDP socket could not be bound (the TCP one could)."""


class TextPortError(OSError):
    """The text door's socket could not be bound (the others could)."""


def impairment_from(args: argparse.Namespace) -> Impairment:
    """The fault injection the flags ask for; a missing --seed is drawn now (and printed)."""
    delay, jitter = args.udp_delay
    impairment = Impairment(args.udp_loss, args.udp_dup, args.udp_reorder, delay, jitter, 0)
    seed = args.seed if args.seed is not None else (random.randrange(1, 10_000) if impairment.active else 0)
    return Impairment(args.udp_loss, args.udp_dup, args.udp_reorder, delay, jitter, seed)


class SharedPortTCPServer(ChatTCPServer):
    """The TCP server of one node of `--workers`: its port is shared with the other nodes (SO_REUSEPORT)."""

    def server_bind(self) -> None:
        platforms.share_port(self.socket)  # before bind, as the kernel requires
        super().server_bind()


def _workers(text: str) -> int:
    number = count(text)
    if number < 1:
        raise argparse.ArgumentTypeError("give 1 or more")
    return number


def build_server(args: argparse.Namespace) -> Server:
    """Create (and bind) everything `args` asks for; raises OSError on bind problems."""
    file_limit = raise_file_limit()
    max_connections = 0 if file_limit is None else max(16, file_limit - FD_RESERVE)  # 0: no cap is needed
    max_clients = args.max_clients
    if max_connections and (not max_clients or max_clients > max_connections):
        if max_clients:
            log.warning(_("--max-clients %d is above the open-file limit; using %d"), max_clients, max_connections)
        max_clients = max_connections
    max_waiting = args.max_waiting
    if max_clients and (not max_waiting or max_waiting >= max_clients):
        # Waiting connections must never be able to fill the server: some room always stays for members.
        max_waiting = max(1, min(max_waiting or max_clients, max_clients // 2))
    set_ipv6_prefix(args.ipv6_prefix)  # one setting for every address_key from now on
    family, address = resolve(args.host, args.port)  # an unknown host fails before any file is touched
    store = open_store(args.db)
    if args.op_secret is None:
        # A random secret is kept in the store, so a restart with the same --db keeps the
        # teacher's secret (and a client that was an operator can send it again).
        kept = store.load_state().get(OP_SECRET_STATE)
        args.op_secret = kept or secrets.token_urlsafe(12)
        args.op_secret_kept = bool(kept)
        store.save_state(OP_SECRET_STATE, args.op_secret)
    service = ChatService(
        server_name=args.name or socket.gethostname(),
        history=args.history,
        rate=args.rate,
        burst=args.burst,
        max_clients=max_clients,
        max_per_ip=args.max_per_ip,
        session_rate=args.session_rate if args.rate else 0.0,  # --rate 0 turns every rate limit off
        max_rooms=args.max_rooms,
        peer_timeout=args.peer_timeout,
        motd=args.motd,
        access=Access(allow=args.allow, deny=args.deny, password=args.password),
        op_secret=args.op_secret,
        store=store,
        store_whispers=args.store_whispers,
    )
    try:
        tcp_class = SharedPortTCPServer if args.shared_port else ChatTCPServer
        tcp = tcp_class(
            address,
            service,
            max_frame=args.max_frame,
            outbox_limit=args.outbox,
            hello_timeout=args.hello_timeout,
            family=family,
            max_connections=max_connections,
            send_buffer=args.send_buffer,
            max_waiting=max_waiting,
            max_waiting_per_ip=args.max_waiting_per_ip,
        )
    except BaseException:
        store.close()
        raise
    udp = None
    if not args.no_udp:
        # Same port number as TCP by default, so classmates need to remember one number.
        udp_port = args.udp_port if args.udp_port is not None else tcp.port
        udp_options: dict[str, Any] = {"max_datagram": args.max_datagram, "impairment": impairment_from(args), "family": family}
        try:
            try:
                udp = ChatUDPServer((address[0], udp_port, *address[2:]), service, **udp_options)
            except OSError:
                if args.port != 0 or args.udp_port is not None:
                    raise
                # --port 0 picked a TCP port whose UDP twin is taken: any free UDP port will do.
                udp = ChatUDPServer((address[0], 0, *address[2:]), service, **udp_options)
        except OSError as error:
            tcp.server_close()
            store.close()
            raise UDPPortError(error.errno, error.strerror or str(error)) from None
        if not args.no_discovery:
            udp.discovery = Discovery(service, tcp_port=tcp.port, udp_port=udp.port).reply

    def close_all() -> None:
        """A later part could not start: what was opened is closed again."""
        tcp.server_close()
        if udp is not None:
            udp.server_close()
        store.close()

    text = None
    if args.text_port is not None:
        try:
            text = TextDoorServer(
                (address[0], args.text_port, *address[2:]),
                service,
                max_frame=args.max_frame,
                outbox_limit=args.outbox,
                family=family,
                max_connections=max_connections,
                send_buffer=args.send_buffer,
                max_waiting=max_waiting,
                max_waiting_per_ip=args.max_waiting_per_ip,
            )
            # One count of connections without a nick for both doors, so the caps hold whichever door they use.
            text.newcomers = tcp.newcomers
        except OSError as error:
            close_all()
            raise TextPortError(error.errno, error.strerror or str(error)) from None
    server = Server(service=service, tcp=tcp, udp=udp, text=text)
    if args.backplane:
        from chatsrv.backplane import Backplane  # only with --backplane: it needs the redis package

        try:
            server.backplane = Backplane(service, args.backplane)
        except ImportError:
            close_all()
            if text is not None:
                text.server_close()
            print("chatsrv: --backplane needs the Redis client: pip install 'lanchat[backplane]' (or redis)",
                  file=sys.stderr)
            raise SystemExit(2) from None
    return server


def join_hints(host: str, port: int) -> list[str]:
    """The command a classmate types, for each address they could reach us at."""
    if host in ("0.0.0.0", "", "::"):
        addresses = [iface.address for iface in ipv4_interfaces() if not iface.is_loopback]
    else:
        addresses = [host]
    return [
        _("chatclient --host {address} --port {port} --nick NAME").format(address=address, port=port)
        for address in addresses
    ]


def text_door_hint(host: str, port: int) -> str:
    """The start-up line about the text door: its port and the nc command, with an address classmates can reach."""
    if host in ("0.0.0.0", "", "::"):
        addresses = [iface.address for iface in ipv4_interfaces() if not iface.is_loopback]
        host = addresses[0] if addresses else "ADDRESS"
    return _("text door for nc and telnet on port {port}: nc {host} {port}").format(port=port, host=host)


def discovery_hint(host: str, server: Server) -> str:
    """The start-up line about discovery: the name it answers with, and what classmates type."""
    assert server.udp is not None
    name = server.service.server_name
    if host not in ("0.0.0.0", "", "::"):
        # A socket bound to one address never receives broadcasts (only datagrams sent to that address).
        return _(
            'discovery: answers as "{name}" only to probes sent to {host} (use --host 0.0.0.0 to be found by broadcast)'
        ).format(name=name, host=host)
    port = "" if server.udp.port == DEFAULT_PORT else f" --port {server.udp.port}"
    return _('discovery: answers as "{name}"; classmates can just type: chatclient{port}').format(name=name, port=port)


def teacher_lines(args: argparse.Namespace) -> list[str]:
    """What the teacher needs to know at start: the operator secret (as Jupyter
    prints its token), and whether a password or address rules are on."""
    chosen = getattr(args, "op_secret_from", None)
    if chosen in (None, "--op-secret"):  # random, or already in the process list anyway
        kept = _(" (kept from the last run)") if getattr(args, "op_secret_kept", False) else ""
        lines = [
            _("operator secret: {secret}{kept}   (in chatclient type: /op {secret})").format(
                secret=args.op_secret, kept=kept
            )
        ]
    else:
        lines = [
            _("operator secret: the one from {chosen} (not shown; in chatclient type: /op SECRET)").format(
                chosen=chosen
            )
        ]
    if args.password:  # never the password itself: these lines end up on screens and in logs
        source = getattr(args, "password_from", None)
        where = _(" (from {source})").format(source=source) if source and source != "--password" else ""
        door = ""
        if getattr(args, "text_port", None) is not None:  # nc users type it, they have no flag
            door = _(" (at the text door: /password SECRET, then your nick)")
        lines.append(
            _(
                "a password is needed to join{where}: students set {variable} or give chatclient --password{door}"
            ).format(where=where, variable=PASSWORD_VARIABLE, door=door)
        )
    if args.allow or args.deny:
        allowed = ", ".join(str(n) for n in args.allow) or _("any address")
        denied = ", ".join(str(n) for n in args.deny) or _("none")
        lines.append(_("addresses allowed: {allowed}; denied: {denied}").format(allowed=allowed, denied=denied))
        if Access(allow=args.allow, deny=args.deny).refusal(("127.0.0.1", 0)) is not None:
            lines.append(_("note: 127.0.0.1 may not connect, so you cannot join from this machine that way"))
    return lines


def transports(server: Server) -> str:
    """`TCP and UDP`, `TCP` or `TCP, UDP port N` for the listening line."""
    if server.udp is None:
        return "TCP"
    if server.udp.port == server.port:
        return _("TCP and UDP")
    return _("TCP, UDP port {port}").format(port=server.udp.port)


def log_safe(text: str) -> str:
    r"""`text` with every character a console would act on written as an escape: controls (ESC, BEL,
    newline: `\x1b`, `\n`), format characters (bidi overrides, zero-width: `\u202e`) and line separators.

    A peer chooses much of what the server logs (a message type, a nick, a
    room name); raw, an ESC sequence would clear or retitle the teacher's
    terminal, and a newline would forge a log line of its own.
    """
    if text.isprintable():
        return text  # the common case: one C-speed test
    return "".join(
        char if char.isprintable()
        else repr(char)[1:-1] if ord(char) < 0x100
        else f"\\u{ord(char):04x}" if ord(char) < 0x10000
        else f"\\U{ord(char):08x}"
        for char in text
    )


class SafeLogFilter(logging.Filter):
    """Makes every record's message one printable line (`log_safe`); tracebacks are left as they are.

    Installed on the console handler rather than on a logger, because a
    handler sees the records of every logger under it (a logger's own filter
    does not see its children's records), so no call site can forget it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = log_safe(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True


def configure_logging(level: str) -> None:
    """The console log: time, level, message; every handler of the root logger gets `SafeLogFilter`."""
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, SafeLogFilter) for existing in handler.filters):
            handler.addFilter(SafeLogFilter())


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["export"]:
        from chatsrv.export import main as export_main  # only this subcommand needs it

        return export_main(argv[1:])
    platforms.console_safe_stdio()  # a server name or error text the console cannot show becomes \u674e
    i18n.setup(argv)  # before the parser: its help texts are translated when it is built
    parser = build_parser()
    args = parser.parse_args(argv)
    take_secrets(args, dict(os.environ), parser)
    if args.workers > 1:
        return cluster.run_workers(
            argv, host=args.host, port=args.port, workers=args.workers, backplane=args.backplane,
            op_secret_given=args.op_secret is not None,
        )
    configure_logging(args.log_level)
    try:
        server = build_server(args)
    except socket.gaierror as error:
        print(
            _("chatsrv: unknown host {host!r}: {reason}").format(host=args.host, reason=error.strerror), file=sys.stderr
        )
        return 2
    except OSError as error:
        reason = error.strerror or str(error)
        if isinstance(error, UDPPortError):
            udp_port = args.udp_port if args.udp_port is not None else args.port
            if error.errno in platforms.ADDRESS_IN_USE:
                reason = _("address already in use (try another --udp-port, or --no-udp)")
            print(
                _("chatsrv: cannot listen on {host} UDP port {port}: {reason}").format(
                    host=args.host, port=udp_port, reason=reason
                ),
                file=sys.stderr,
            )
            return 2
        if isinstance(error, TextPortError):
            if error.errno in platforms.ADDRESS_IN_USE:
                reason = _("address already in use (try another --text-port, or 0)")
            print(
                _("chatsrv: cannot open the text door on {host} port {port}: {reason}").format(
                    host=args.host, port=args.text_port, reason=reason
                ),
                file=sys.stderr,
            )
            return 2
        if error.errno in platforms.ADDRESS_IN_USE:
            reason = _("address already in use (is another chatsrv running? try --port 0)")
        print(
            _("chatsrv: cannot listen on {host} port {port}: {reason}").format(
                host=args.host, port=args.port, reason=reason
            ),
            file=sys.stderr,
        )
        return 2

    stop = threading.Event()
    restore_signals = platforms.on_stop_signals(stop.set)  # Ctrl-C, SIGTERM, a closed terminal or console
    server.start()
    # From here on the listeners' threads keep the process alive: whatever
    # happens, they are stopped before main returns, or it would hang.
    try:
        print_start_lines(args, server)
        while not stop.wait(0.5):
            server.service.tick()  # ends timed mutes on time, even when nobody speaks
        log.info("stopping")
    except Exception as error:
        log.debug("start-up failed", exc_info=True)
        print(
            _("chatsrv: stopped, start-up failed: {error} (--log-level debug shows where)").format(
                error=f"{type(error).__name__}: {error}"
            ),
            file=sys.stderr,
            flush=True,
        )
        return 1
    finally:
        server.stop()
        restore_signals()
    return 0


def print_start_lines(args: argparse.Namespace, server: Server) -> None:
    """Where and how classmates join, and what the teacher needs to know."""
    print(_("chatsrv {version} listening on {host} port {port} ({transports})").format(
        version=__version__, host=args.host, port=server.port, transports=transports(server)), flush=True)
    if server.udp is not None and server.udp.impairment.active:
        print(
            _("UDP fault injection: {faults} (on what the server sends)").format(
                faults=server.udp.impairment.describe()
            ),
            flush=True,
        )
    hints = join_hints(args.host, server.port)
    if hints:
        print(_("classmates join with:"), flush=True)
        for hint in hints:
            print(f"  {hint}", flush=True)
    print(
        _("on this machine: chatclient --host 127.0.0.1 --port {port} --nick NAME").format(port=server.port), flush=True
    )
    if server.udp is not None:
        udp_hint = (
            _("add --udp") if server.udp.port == server.port else f"chatclient --udp --port {server.udp.port} ..."
        )
        print(_("over UDP: {hint}").format(hint=udp_hint), flush=True)
    if server.text is not None:
        print(text_door_hint(args.host, server.text.port), flush=True)
    print(_(server.service.store.description), flush=True)  # a class's line is marked N_, translated here
    if server.backplane is not None:
        state = server.backplane.linked and _("linked") or _("not reachable yet (rooms are local until it is)")
        print(_("backplane: node {node}, {url}: {state}").format(
            node=server.backplane.node, url=args.backplane, state=state), flush=True)
    for line in teacher_lines(args):
        print(line, flush=True)
    if server.udp is not None and server.udp.discovery is not None:
        print(discovery_hint(args.host, server), flush=True)
    print(_("Ctrl-C stops the server."), flush=True)


def run() -> NoReturn:
    """Console-script entry point."""
    sys.exit(main())
