"""The `chatclient` command: flags, finding the server, then the terminal UI or plain line mode.

Without `--host` the server is found by LAN discovery (`chatclient.discovery`):
one answer is joined, several are offered to choose from, none is explained.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn, TextIO

from chatclient import __version__, discovery, lineui
from chatclient.servers import Servers
from chatclient.transport import open_transport
from lanchat import i18n
from lanchat.cliargs import Parser
from lanchat.i18n import N_, Lazy, _, ngettext
from lanchat.protocol import DEFAULT_PORT


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="chatclient",
        description=_("Join a lanchat server. Without --host it finds the servers on your network by itself "
        "(UDP broadcast): one found, it joins it; several, it asks which. "
        "In a terminal you get the chat UI; with a pipe (or --plain) "
        "one line per event, and every input line is a message or a /command (/help lists them)."),
        epilog=_("Examples: chatclient (find the server and join) | chatclient --discover (just list servers) | "
        "chatclient --host 192.168.1.23 --nick bob "
        "(join that address; always works, even where Wi-Fi blocks broadcasts) | "
        "chatclient --host 192.168.1.23 --host 192.168.1.24 (two nodes of one chat: if one fails, the other)"),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"lanchat {__version__}",
        help=_("show program's version number and exit"),
    )
    i18n.add_language_option(parser)
    parser.add_argument(
        "--host",
        action="append",
        default=None,
        metavar="HOST[:PORT]",
        help=_("server address (without it, chatclient finds the server on the LAN); give it once for each node "
        "of a chat served by several machines (chatsrv --backplane): when the connection is lost, the client "
        "tries the next one"),
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=_("server port (default: {port}; discovery asks this UDP port)").format(port=DEFAULT_PORT),
    )
    parser.add_argument(
        "--nick", default=None, help=_("your nick (in a terminal you are asked, your login name offered)")
    )
    parser.add_argument("--room", default="lobby", help=_("room to join"))
    parser.add_argument("--plain", action="store_true", help=_("line mode even in a terminal"))
    parser.add_argument(
        "--udp",
        action="store_true",
        help=_("talk to the server over UDP instead of TCP (to see loss, reordering and duplicates in /stats)"),
    )
    parser.add_argument("--no-color", action="store_true", help=_("no colours (also when NO_COLOR is set)"))
    parser.add_argument(
        "--password",
        default=None,  # not the environment's: --help prints defaults
        metavar="SECRET",
        help=_("the server's password, if it has one (or set LANCHAT_PASSWORD); the chat UI asks when it is needed"),
    )
    parser.add_argument(
        "--trace-wire",
        action="store_true",
        help=_("print, on stderr, every recv: its size and where the frame boundaries fell (TCP is a byte stream; "
        "over UDP, one datagram per recv); implies --plain, so the lines do not tear through the chat UI"),
    )
    found = parser.add_argument_group(_("finding the server (discovery)"))
    found.add_argument("--discover", action="store_true", help=_("list the servers that answer on the LAN, then exit"))
    found.add_argument(
        "--discover-addr",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help=_("ask this address instead of broadcasting (repeatable; PORT defaults to --port)"),
    )
    found.add_argument(
        "--discover-wait",
        type=_wait,
        default=discovery.DISCOVERY_WAIT,
        metavar="SECONDS",
        help=_("how long to collect answers"),
    )
    return parser


def _wait(text: str) -> float:
    value = float(text)
    if not 0 < value <= 30:
        raise argparse.ArgumentTypeError(_("must be more than 0 and at most 30 seconds, not {text}").format(text=text))
    return value


_wait.__name__ = Lazy(N_("seconds"))  # argparse names the type in "invalid ... value"


def find_servers(args: argparse.Namespace, parser: argparse.ArgumentParser) -> discovery.Discovery | None:
    """Probe --discover-addr, or broadcast on every interface; None (after one line) on a bad address."""
    try:
        targets = [discovery.parse_target(text, args.port) for text in args.discover_addr]
    except ValueError as error:
        parser.error(f"--discover-addr: {error}")
    try:
        return discovery.discover(targets or discovery.broadcast_targets(args.port), args.discover_wait)
    except ValueError as error:
        print(_("chatclient: {message}").format(message=error), file=sys.stderr)
        return None


def choose_server(
    found: discovery.Discovery, args: argparse.Namespace, terminal_ui: bool
) -> discovery.FoundServer | None:
    """One server: that one. Several: a pick list in the terminal UI, a numbered prompt on a
    terminal in line mode, else list them and give up. None: explain how to give the address."""
    servers = found.servers
    if not servers:
        for line in discovery.none_found(found, args.port):
            shown = _("chatclient: {message}").format(message=line) if not line.startswith(" ") else line
            print(shown, file=sys.stderr)
        return None
    if len(servers) == 1:
        return servers[0]
    if terminal_ui:
        from chatclient import ui

        return ui.pick_server(servers, args.udp)
    if sys.stdin.isatty():
        return discovery.ask_which(servers, sys.stdin, sys.stderr, args.udp)
    print(
        _("chatclient: {count} servers answered; choose one with --host (stdin is not a terminal to ask on):").format(
            count=len(servers)
        ),
        file=sys.stderr,
    )
    for line in discovery.listing(servers, args.udp):
        print(line, file=sys.stderr)
    return None


def default_nick() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "guest"
    cleaned = "".join(c for c in name if c.isalnum() or c in "_-")[:24]
    return cleaned or "guest"


def wants_colour(no_color_flag: bool, environ: Mapping[str, str]) -> bool:
    """Colour unless --no-color or a non-empty NO_COLOR (https://no-color.org)."""
    return not no_color_flag and not environ.get("NO_COLOR")


def wants_terminal_ui(plain: bool, stdin: TextIO, stdout: TextIO) -> bool:
    """The chat UI only when both ends are a terminal; pipes and --plain get line mode."""
    return not plain and stdin.isatty() and stdout.isatty()


def main(argv: Sequence[str] | None = None) -> int:
    i18n.setup(sys.argv[1:] if argv is None else argv)  # before the parser: its help is translated when built
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.host is not None and (args.discover or args.discover_addr):
        parser.error(
            _("--host joins that address; to look for servers use --discover or --discover-addr without --host")
        )
    terminal_ui = wants_terminal_ui(args.plain or args.trace_wire, sys.stdin, sys.stdout)
    try:
        places = [discovery.parse_target(text, args.port) for text in args.host or ()]
    except ValueError as error:
        parser.error(f"--host: {error}")
    password = args.password if args.password is not None else os.environ.get("LANCHAT_PASSWORD")
    password_first = False  # discovery said the server wants a password
    if not places:
        found = find_servers(args, parser)
        if found is None:
            return 2
        if args.discover:
            if not found.servers:
                choose_server(found, args, terminal_ui)  # explains
                return 1
            print(
                ngettext(
                    "{count} lanchat server answered:", "{count} lanchat servers answered:", len(found.servers)
                ).format(count=len(found.servers))
            )
            for line in discovery.listing(found.servers, args.udp):
                print(line)
            return 0
        server = choose_server(found, args, terminal_ui)
        if server is None:
            return 1
        source = "--password" if args.password is not None else "LANCHAT_PASSWORD"
        if password and not discovery.may_send_password(
            server, len(found.servers) > 1, source, sys.stdin, sys.stderr, args.udp
        ):
            return 1  # a found server is not trusted with the password unless the user chose it
        password_first = server.password_required
        port = server.udp_port if args.udp and server.udp_port is not None else server.tcp_port
        places = [discovery.Target(server.host, port)]
        print(
            _("chatclient: joining {server}").format(server=discovery.describe(server, args.udp)),
            file=sys.stderr,
            flush=True,
        )
    address = str(places[0])  # host:port, until a connection says where it went
    trace = trace_to_stderr if args.trace_wire else None
    servers = Servers(
        [(place.host, place.port) for place in places],
        lambda host, port: open_transport(host, port, udp=args.udp, trace=trace),
    )
    connect = servers.connect
    if terminal_ui:
        from chatclient import ui  # only here: line mode starts without prompt_toolkit

        colour = wants_colour(args.no_color, os.environ)
        return ui.main_sync(
            connect,
            args.nick,
            args.room,
            address,
            colour=colour,
            login_name=default_nick(),
            password=password,
            password_first=password_first,
        )
    return lineui.main_sync(connect, args.nick or default_nick(), args.room, address, password)


def trace_to_stderr(line: str) -> None:
    """--trace-wire: one line per recv, on stderr so stdout keeps only the chat."""
    print(f"wire: {line}", file=sys.stderr, flush=True)


def run() -> NoReturn:
    sys.exit(main())
