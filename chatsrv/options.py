"""The `chatsrv` command's flags: the argument parser, its value checks, and secrets taken from the
environment or a file (`take_secrets`).

Owns no state: `build_parser` returns a fresh parser and `take_secrets` fills in the parsed arguments.
Must not import chatsrv.app (app builds the servers from what this parses).
"""

from __future__ import annotations

import argparse

from chatsrv import __version__, cluster
from chatsrv.access import DEFAULT_IPV6_PREFIX, Network, parse_network
from chatsrv.admission import SESSION_BURST
from chatsrv.faults import parse_delay
from chatsrv.messages import MAX_TEXT
from chatsrv.outbox import DEFAULT_OUTBOX_LIMIT
from chatsrv.store import DEFAULT_PATH, MEMORY
from chatsrv.tcp import DEFAULT_SEND_BUFFER
from lanchat import i18n
from lanchat.cliargs import Parser, count, percent, port, positive_seconds, rate, seconds
from lanchat.i18n import N_, Lazy, _, os_reason
from lanchat.wire import DEFAULT_MAX_DATAGRAM, DEFAULT_MAX_FRAME

DEFAULT_PORT = 9009
# Connections that have not said hello: a client says it in its first frame,
# so only scripts (or a whole class starting at once) ever have many waiting.
DEFAULT_MAX_WAITING = 128
DEFAULT_MAX_WAITING_PER_IP = 8


def _frame_size(text: str) -> int:
    value = int(text)
    if not 256 <= value <= 16 * 1024 * 1024:
        raise argparse.ArgumentTypeError(_("must be 256 to 16777216 bytes, not {text}").format(text=text))
    return value


def _network(text: str) -> Network:
    try:
        return parse_network(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("{text!r} is not an address or network like 192.168.1.0/24").format(text=text)
        ) from None


def _motd(text: str) -> str:
    """The message of the day itself, or with @FILE the text of that file."""
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as error:
            reason = os_reason(error)
            raise argparse.ArgumentTypeError(
                _("cannot read {path!r}: {reason}").format(path=text[1:], reason=reason)
            ) from None
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise argparse.ArgumentTypeError(
            _("a message of the day is at most {most} characters, not {count}").format(most=MAX_TEXT, count=len(text))
        )
    return text


def _secret(text: str) -> str:
    if not 1 <= len(text) <= 200 or text != text.strip():
        raise argparse.ArgumentTypeError(_("must be 1 to 200 characters, without spaces around it"))
    return text


def _secret_file(path: str) -> str:
    """The secret kept in the file `path`: its first line, without the line ending."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read(4096)
    except (OSError, UnicodeDecodeError) as error:
        reason = os_reason(error)
        raise argparse.ArgumentTypeError(_("cannot read {path!r}: {reason}").format(path=path, reason=reason)) from None
    try:
        return _secret(text.splitlines()[0] if text else "")
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(_("the secret in {path!r}: {error}").format(path=path, error=error)) from None


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
                parser.error(_("{variable}: {error}").format(variable=variable, error=error))
            source = variable
        setattr(args, f"{name}_from", source)


def _ipv6_prefix(text: str) -> int:
    try:
        bits = int(text)
    except ValueError:
        bits = -1
    if not 1 <= bits <= 128:
        raise argparse.ArgumentTypeError(
            _("must be a prefix length from 1 to 128 bits, not {text!r}").format(text=text)
        )
    return bits


def _database(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(_("give a file name, or {memory} to keep nothing").format(memory=MEMORY))
    return text


def _datagram_size(text: str) -> int:
    value = int(text)
    if not 256 <= value <= 65507:  # 65507: the largest UDP payload over IPv4
        raise argparse.ArgumentTypeError(_("must be 256 to 65507 bytes, not {text}").format(text=text))
    return value


def _delay(text: str) -> tuple[float, float]:
    try:
        return parse_delay(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


BACKPLANE_SCHEMES = ("redis", "rediss", "unix")


def _backplane_url(text: str) -> str:
    """A Redis URL the redis client can use, checked here so that a mistake is one line, not a traceback."""
    from urllib.parse import urlsplit

    example = _("like redis://HOST:PORT/DB, e.g. redis://192.168.1.10:6379/0")
    shown = cluster.shown_url(text)
    try:
        parts = urlsplit(text)
        number = parts.port  # ValueError when it is not a number from 0 to 65535
    except ValueError:
        raise argparse.ArgumentTypeError(_("{url} has no valid port: give a URL {example}").format(
            url=repr(shown), example=example)) from None
    if parts.scheme not in BACKPLANE_SCHEMES or "://" not in text:
        raise argparse.ArgumentTypeError(
            _("{url} is not a Redis URL: give one {example}").format(url=repr(shown), example=example))
    database = parts.path.strip("/")
    if parts.scheme != "unix" and (not parts.hostname or number == 0 or (database and not database.isdigit())):
        raise argparse.ArgumentTypeError(
            _("{url} is not a Redis URL: give one {example}").format(url=repr(shown), example=example))
    return text


for _checker, _name in (
    (_frame_size, N_("size")),
    (_network, N_("network")),
    (_motd, N_("message of the day")),
    (_secret, N_("secret")),
    (_secret_file, N_("secret file")),
    (_database, N_("database")),
    (_datagram_size, N_("size")),
    (_delay, N_("delay")),
    (_backplane_url, N_("URL")),
):
    _checker.__name__ = Lazy(_name)  # argparse names the type in "invalid ... value", translated when printed


def _workers(text: str) -> int:
    number = count(text)
    if number < 1:
        raise argparse.ArgumentTypeError(_("give 1 or more"))
    return number


_workers.__name__ = Lazy(N_("whole number"))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="chatsrv",
        description=_("lanchat server: rooms of chat over length-framed TCP (and UDP), for a LAN or a class."),
        epilog=_(
            "Classmates join with: chatclient --host ADDRESS --port PORT --nick NAME. "
            "Ctrl-C stops the server and tells everyone. "
            "After the lesson, 'chatsrv export --format html > chat.html' "
            "writes the transcript (see chatsrv export --help)."
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
        "--text-port",
        type=port,
        default=None,
        metavar="PORT",
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
        "--ipv6-prefix",
        type=_ipv6_prefix,
        default=DEFAULT_IPV6_PREFIX,
        metavar="BITS",
        help=_(
            "an IPv6 peer counts by this prefix for per-address limits and bans (default 64; 128: each address; "
            "link-local addresses always count alone)"
        ),
    )
    limits.add_argument(
        "--session-rate",
        type=rate,
        default=1.0,
        help=_(
            "new connections per second from one address, after a burst of {burst} (0 = off; off with --rate 0)"
        ).format(burst=SESSION_BURST),
    )
    limits.add_argument(
        "--max-rooms",
        type=count,
        default=300,
        help=_("rooms in memory at once; a room nobody is in makes space for a new one (0 = off)"),
    )
    limits.add_argument(
        "--hello-timeout",
        type=seconds,
        default=20.0,
        help=_("seconds from connecting by which a new TCP connection must have said hello (a deadline, not per read)"),
    )
    limits.add_argument(
        "--max-waiting",
        type=count,
        default=DEFAULT_MAX_WAITING,
        help=_("most TCP connections that have not said hello yet, in all (kept below --max-clients)"),
    )
    limits.add_argument(
        "--max-waiting-per-ip",
        type=count,
        default=DEFAULT_MAX_WAITING_PER_IP,
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
        "--password",
        type=_secret,
        default=None,
        metavar="SECRET",
        help=_(
            "everyone must give this password to join (chatclient --password SECRET); "
            "other users of this machine can see it in ps: prefer --password-file or "
            "{variable}"
        ).format(variable=PASSWORD_VARIABLE),
    )
    password.add_argument(
        "--password-file",
        type=_secret_file,
        default=None,
        metavar="FILE",
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
        "--op-secret",
        type=_secret,
        default=None,
        metavar="SECRET",
        help=_(
            "operator secret for /op (default: {variable}, else a random one, printed at start); "
            "visible in ps: prefer --op-secret-file"
        ).format(variable=OP_SECRET_VARIABLE),
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
        "--udp-reorder",
        type=percent,
        default=0.0,
        metavar="PCT",
        help=_("hold this percentage of datagrams back until the next one to that user has gone (at most 0.5 s)"),
    )
    faults.add_argument(
        "--udp-delay",
        type=_delay,
        default="0",
        metavar="MS[:JITTER]",
        help=_("delay every datagram by MS milliseconds, plus or minus JITTER (50:10 is 40 to 60 ms)"),
    )
    faults.add_argument(
        "--seed",
        type=int,
        default=None,
        help=_("random seed of the fault injection, so a run can be repeated (default: a new one, printed at start)"),
    )
    cluster_group = parser.add_argument_group(_("several servers (docs/scale-out.md)"))
    cluster_group.add_argument(
        "--backplane",
        type=_backplane_url,
        default=None,
        metavar="URL",
        help=_(
            "share rooms with every chatsrv that names the same Redis, e.g. redis://10.0.0.5:6379/0 "
            "(needs pip install 'lanchat[backplane]')"
        ),
    )
    cluster_group.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help=_("run N nodes on this port, one per core (Linux: SO_REUSEPORT), joined by --backplane"),
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
