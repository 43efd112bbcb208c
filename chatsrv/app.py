"""The `chatsrv` command: logging, signals, one service for every server (its flags: chatsrv.options).

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
from chatsrv.access import Access, set_ipv6_prefix
from chatsrv.consolelog import configure_logging
from chatsrv.continuity import OP_SECRET as OP_SECRET_STATE
from chatsrv.discovery import Discovery
from chatsrv.faults import Impairment
from chatsrv.options import DEFAULT_PORT, PASSWORD_VARIABLE, build_parser, take_secrets
from chatsrv.service import ChatService
from chatsrv.sqlitestore import open_store
from chatsrv.store import Store
from chatsrv.tcp import ChatTCPServer
from chatsrv.textdoor import TextDoorServer
from chatsrv.udp import ChatUDPServer
from lanchat import i18n, platforms
from lanchat.i18n import _, os_reason
from lanchat.netinfo import ipv4_interfaces

log = logging.getLogger("chatsrv")

BACKPLANE_WAIT = 5.0  # seconds a start waits for the backplane link before serving with local rooms
FD_RESERVE = 64  # descriptors kept free for logs, the database, UDP and accept()


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
    # How often each serving loop looks up: stop() waits up to this long per loop, and UDP's
    # service_actions (silent peers) runs this often. Tests set it lower so that stopping is quick.
    poll_interval: float = 0.05

    @property
    def port(self) -> int:
        return self.tcp.port

    def start(self) -> None:
        if self.backplane is not None:
            self.backplane.start()
            self.backplane.wait_linked(BACKPLANE_WAIT)  # not linked yet: it keeps trying, rooms are local meanwhile
        poll = {"poll_interval": self.poll_interval}
        thread = threading.Thread(target=self.tcp.serve_forever, kwargs=poll, name="tcp-accept")
        thread.start()
        self.threads.append(thread)
        if self.udp is not None:
            # poll_interval is also how often service_actions looks for silent UDP peers.
            thread = threading.Thread(target=self.udp.serve_forever, kwargs=poll, name="udp-serve")
            thread.start()
            self.threads.append(thread)
        if self.text is not None:
            serve = self.text.serve_forever
            thread = threading.Thread(target=serve, kwargs=poll, name="text-accept")
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
        self._end_serving_loops()
        self.tcp.stop()
        if self.udp is not None:
            self.udp.stop()
        if self.text is not None:
            self.text.stop()
        for thread in self.threads:
            thread.join(5)
        self.service.store.close()  # last: commits everything the shutdown recorded too

    def _end_serving_loops(self) -> None:
        """Ask every serving loop to end at once: each notices within poll_interval, so all together take one
        wait instead of one each (the servers' own stop() then finds its loop ended)."""
        loops = [server for server in (self.tcp, self.udp, self.text) if server is not None]
        askers = [threading.Thread(target=server.shutdown, name="end-serving") for server in loops]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(5)


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


def build_server(args: argparse.Namespace) -> Server:
    """Create (and bind) everything `args` asks for; raises OSError on bind problems."""
    file_limit = raise_file_limit()
    # One malloc arena for a thread per connection: a fifth to over half less memory per member
    # (docs/architecture.md "Memory per connection"); nothing happens where the C library is not glibc.
    platforms.limit_malloc_arenas()
    max_connections = 0 if file_limit is None else max(16, file_limit - FD_RESERVE)  # 0: no cap is needed
    max_clients = args.max_clients
    if max_connections and (not max_clients or max_clients > max_connections):
        if max_clients:
            log.warning("--max-clients %d is above the open-file limit; using %d", max_clients, max_connections)
        max_clients = max_connections
    max_waiting = args.max_waiting
    if max_clients and (not max_waiting or max_waiting >= max_clients):
        # Waiting connections must never be able to fill the server: some room always stays for members.
        max_waiting = max(1, min(max_waiting or max_clients, max_clients // 2))
    set_ipv6_prefix(args.ipv6_prefix)  # one setting for every address_key from now on
    family, address = resolve(args.host, args.port)  # an unknown host fails before any file is touched
    store = open_store(args.db)
    if args.op_secret is None:
        keep_op_secret(args, store)
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
        udp_options: dict[str, Any] = {
            "max_datagram": args.max_datagram,
            "impairment": impairment_from(args),
            "family": family,
        }
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
            print(
                "chatsrv: --backplane needs the Redis client: pip install 'lanchat[backplane]' (or redis)",
                file=sys.stderr,
            )
            raise SystemExit(2) from None
        server.backplane.pause = tcp.backpressure.wait  # what other nodes send reaches members at their pace
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


def keep_op_secret(args: argparse.Namespace, store: Store) -> str:
    """No secret given: the random one kept in the store, made up (and kept) on the first run.

    So a restart with the same --db keeps the teacher's secret, and a client
    that was an operator can send it again (docs/protocol.md §9.2).
    """
    kept = store.load_state().get(OP_SECRET_STATE)
    secret = kept or secrets.token_urlsafe(12)
    args.op_secret, args.op_secret_kept = secret, bool(kept)
    store.save_state(OP_SECRET_STATE, secret)
    return secret


def workers_op_secret(args: argparse.Namespace) -> str:
    """The secret `--workers` hands all its nodes when none was given: kept in --db, as one chatsrv keeps its own."""
    store = open_store(args.db)
    try:
        return keep_op_secret(args, store)
    finally:
        store.close()


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


def node_place(args: argparse.Namespace) -> tuple[str, str] | None:
    """(index, count) when this process is one of --workers' nodes (told by the supervisor), else None."""
    node = os.environ.get(cluster.NODE_VARIABLE, "") if args.shared_port else ""
    if not node:
        return None
    index, _slash, count = node.partition("/")
    return index, count


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
    place = node_place(args)
    if place:  # one of --workers' nodes: whatever its flags say (`--work 2` is --workers too), it starts none
        args.workers = 1
        if place[0] != "1":  # UDP, discovery and the text door are node 1's: a UDP peer is known by its address
            args.no_udp, args.text_port = True, None  # to one process, and a text port opens once
    if args.workers > 1:
        return cluster.run_workers(
            argv,
            host=args.host,
            port=args.port,
            workers=args.workers,
            backplane=args.backplane,
            op_secret_given=args.op_secret is not None,
            make_op_secret=lambda: workers_op_secret(args),
            start_lines=lambda port, secret: worker_start_lines(args, port, secret),
        )
    configure_logging(args.log_level, node=place[0] if place else "")
    try:
        server = build_server(args)
    except socket.gaierror as error:
        print(
            _("chatsrv: unknown host {host!r}: {reason}").format(host=args.host, reason=os_reason(error)),
            file=sys.stderr,
        )
        return 2
    except OSError as error:
        reason = os_reason(error)
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


def classmate_lines(host: str, port: int) -> list[str]:
    """How classmates join (each address they could reach us at), and the command on this machine."""
    hints = join_hints(host, port)
    lines = [_("classmates join with:"), *(f"  {hint}" for hint in hints)] if hints else []
    return [*lines, _("on this machine: chatclient --host 127.0.0.1 --port {port} --nick NAME").format(port=port)]


def worker_start_lines(args: argparse.Namespace, port: int, made_up: str | None) -> list[str]:
    """What `--workers` prints once for all its nodes (chatsrv.cluster); each node then says it is ready."""
    if made_up is not None:  # the supervisor made up one secret for every node: the teacher needs it
        args.op_secret, args.op_secret_from = made_up, None
    udp = _("add --udp") if args.udp_port in (None, port) else f"chatclient --udp --port {args.udp_port} ..."
    over_udp = [] if args.no_udp else [_("over UDP: {hint}").format(hint=udp)]  # node 1 serves UDP
    return [*classmate_lines(args.host, port), *over_udp, *teacher_lines(args), _("Ctrl-C stops the server.")]


def print_start_lines(args: argparse.Namespace, server: Server) -> None:
    """Where and how classmates join, and what the teacher needs to know (a node of --workers: one line)."""
    linked = server.backplane is not None and server.backplane.linked
    state = _("linked") if linked else _("not reachable yet (rooms are local until it is)")
    place = node_place(args)
    if place:  # one of --workers' nodes: the supervisor printed the rest once for all of them
        index, count = place
        text = _("node {index} of {count} ready, pid {pid}; backplane: {state}")
        lines = [text.format(index=index, count=count, pid=os.getpid(), state=state)]
        if index == "1":  # for all nodes, once: the text door and discovery are node 1's, the --db file is shared
            if server.text is not None:  # only node 1 knows the port (--text-port 0 picks one)
                lines.append(text_door_hint(args.host, server.text.port))
            lines.append(_(server.service.store.description))
            if server.udp is not None and server.udp.discovery is not None:
                lines.append(discovery_hint(args.host, server))
        # One write: the nodes share the supervisor's stdout, and print() writes the line and its newline
        # apart when unbuffered (PYTHONUNBUFFERED), so another node's line could land between them.
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        return
    print(
        _("chatsrv {version} listening on {host} port {port} ({transports})").format(
            version=__version__, host=args.host, port=server.port, transports=transports(server)
        ),
        flush=True,
    )
    if server.udp is not None and server.udp.impairment.active:
        faults = server.udp.impairment.describe()
        print(_("UDP fault injection: {faults} (on what the server sends)").format(faults=faults), flush=True)
    for line in classmate_lines(args.host, server.port):
        print(line, flush=True)
    if server.udp is not None:
        udp_hint = (
            _("add --udp") if server.udp.port == server.port else f"chatclient --udp --port {server.udp.port} ..."
        )
        print(_("over UDP: {hint}").format(hint=udp_hint), flush=True)
    if server.text is not None:
        print(text_door_hint(args.host, server.text.port), flush=True)
    print(_(server.service.store.description), flush=True)  # a class's line is marked N_, translated here
    if server.backplane is not None:
        where = {"node": server.backplane.node, "url": server.backplane.url}
        print(_("backplane: node {node}, {url}: {state}").format(**where, state=state), flush=True)
    for line in teacher_lines(args):
        print(line, flush=True)
    if server.udp is not None and server.udp.discovery is not None:
        print(discovery_hint(args.host, server), flush=True)
    print(_("Ctrl-C stops the server."), flush=True)


def run() -> NoReturn:
    """Console-script entry point."""
    sys.exit(main())
