"""The `chatclient` command: flags, then the terminal UI or plain line mode."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn, TextIO

from chatclient import __version__, lineui
from chatclient.transport import open_transport
from chatsrv.cliargs import Parser

DEFAULT_PORT = 9009


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="chatclient",
        description="Join a lanchat server. In a terminal you get the chat UI; with a pipe (or --plain) "
        "one line per event, and every input line is a message or a /command (/help lists them).",
    )
    parser.add_argument("--version", action="version", version=f"lanchat {__version__}")
    parser.add_argument("--host", default="127.0.0.1", help="server address")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="server port")
    parser.add_argument("--nick", default=None, help="your nick (in a terminal you are asked, your login name offered)")
    parser.add_argument("--room", default="lobby", help="room to join")
    parser.add_argument("--plain", action="store_true", help="line mode even in a terminal")
    parser.add_argument(
        "--udp", action="store_true",
        help="talk to the server over UDP instead of TCP (to see loss, reordering and duplicates in /stats)",
    )
    parser.add_argument("--no-color", action="store_true", help="no colours (also when NO_COLOR is set)")
    parser.add_argument(
        "--password",
        default=None,  # not the environment's: --help prints defaults
        metavar="SECRET",
        help="the server's password, if it has one (or set LANCHAT_PASSWORD); the chat UI asks when it is needed",
    )
    parser.add_argument(
        "--trace-wire",
        action="store_true",
        help="print, on stderr, every recv: its size and where the frame boundaries fell (TCP is a byte stream; "
        "over UDP, one datagram per recv); implies --plain, so the lines do not tear through the chat UI",
    )
    return parser


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
    args = build_parser().parse_args(argv)
    address = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
    trace = trace_to_stderr if args.trace_wire else None
    connect = lambda: open_transport(args.host, args.port, udp=args.udp, trace=trace)
    password = args.password if args.password is not None else os.environ.get("LANCHAT_PASSWORD")
    if wants_terminal_ui(args.plain or args.trace_wire, sys.stdin, sys.stdout):
        from chatclient import ui  # only here: line mode starts without prompt_toolkit

        colour = wants_colour(args.no_color, os.environ)
        return ui.main_sync(
            connect, args.nick, args.room, address, colour=colour, login_name=default_nick(), password=password
        )
    return lineui.main_sync(connect, args.nick or default_nick(), args.room, address, password)


def trace_to_stderr(line: str) -> None:
    """--trace-wire: one line per recv, on stderr so stdout keeps only the chat."""
    print(f"wire: {line}", file=sys.stderr, flush=True)


def run() -> NoReturn:
    sys.exit(main())
