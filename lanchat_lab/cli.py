"""The `chatlab` command: TCP-vs-UDP experiments for a class, one subcommand per scenario.

Parses flags, runs a scenario, then prints its report (or `--json`) and
draws `--plot FILE.png`. Every problem is one line on stderr (exit 2 for a
bad flag, 1 for a setup that cannot run), never a traceback. Ctrl-C stops a
run cleanly: servers are stopped and namespaces removed by the scenarios'
own `finally` blocks.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from chatsrv.faults import parse_delay
from lanchat import i18n, platforms
from lanchat.cliargs import (
    HelpFormatter,
    Parser,
    RawDescriptionHelpFormatter,
    count,
    percent,
    positive_int,
    positive_number,
)
from lanchat.i18n import N_, Lazy, _, os_reason
from lanchat_lab.bots import LabError, LabUnavailable


def _delay(text: str) -> str:
    """Checked with the server's own rule; passed on to chatsrv as typed."""
    try:
        parse_delay(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _transports(text: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    if not names or any(name not in ("tcp", "udp") for name in names):
        raise argparse.ArgumentTypeError(_("a list of tcp and udp, like tcp,udp, not {text}").format(text=text))
    return names


for _checker, _name in (
    (_delay, N_("delay")),
    (_transports, N_("transports")),
):
    _checker.__name__ = Lazy(_name)  # argparse names the type in "invalid ... value"


def _output_flags(parser: argparse.ArgumentParser) -> None:
    out = parser.add_argument_group(_("output"))
    out.add_argument("--json", action="store_true", help=_("print the result as JSON instead of the report"))
    out.add_argument(
        "--plot",
        metavar="FILE.png",
        default=None,
        help=_("also draw the result into a PNG (needs matplotlib: pip install 'lanchat[lab]')"),
    )
    i18n.add_language_option(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="chatlab",
        description=_(
            "lanchat's TCP-vs-UDP lab: the same chat workload over both transports, "
            "measured with the chat's own seq numbers, with real or injected packet "
            "loss. Each scenario prints a report; docs/lab.md is the worksheet."
        ),
        epilog=_(
            "try:\n  chatlab compare --udp-loss 10\n  sudo chatlab compare --netns-loss 5 --plot "
            "out.png\n  chatlab sticky\n  chatlab timewait\n  chatlab threads\n  chatlab reliable-udp"
        ),
        formatter_class=RawDescriptionHelpFormatter,
    )
    from lanchat import __version__

    parser.add_argument(
        "--version",
        action="version",
        version=f"lanchat {__version__}",
        help=_("show program's version number and exit"),
    )
    i18n.add_language_option(parser)  # also before the scenario: chatlab --lang zh_CN --help
    scenarios = parser.add_subparsers(dest="scenario", metavar="SCENARIO", parser_class=Parser)
    scenarios.required = True

    compare = scenarios.add_parser(
        "compare",
        help=_("K bots over TCP and K over UDP in one room: loss, order, latency, jitter, bytes"),
        description=_(
            "K bots over TCP and K over UDP join one room; each transport's bots send M messages at R per "
            "second. Per transport: delivered/expected, lost, reordered, duplicated (from seq), one-way "
            "latency percentiles, RFC 3550 jitter, messages/s, bytes on the wire per message, time to join."
        ),
        formatter_class=HelpFormatter,
    )
    load = compare.add_argument_group(_("workload"))
    load.add_argument("--bots", type=positive_int, default=3, help=_("bots per transport"))
    load.add_argument("--messages", type=positive_int, default=300, help=_("messages per transport"))
    load.add_argument("--rate", type=positive_number, default=100.0, help=_("messages per second, per transport"))
    load.add_argument(
        "--size", type=count, default=0, help=_("pad each message text to this many characters (max 2000)")
    )
    load.add_argument("--transports", type=_transports, default=("tcp", "udp"), help=_("which transports to run"))
    server = compare.add_argument_group(_("server (default: start a chatsrv on 127.0.0.1 for the run)"))
    server.add_argument(
        "--host", default=None, help=_("use this running server instead (start it with --rate 0 --max-per-ip 0)")
    )
    server.add_argument("--port", type=int, default=9009, help=_("its port, with --host"))
    faults = compare.add_argument_group(
        _("faults injected by the server into the UDP datagrams it sends (no root needed)")
    )
    faults.add_argument("--udp-loss", type=percent, default=None, metavar="PCT", help=_("drop PCT %% of datagrams"))
    faults.add_argument("--udp-dup", type=percent, default=None, metavar="PCT", help=_("send PCT %% twice"))
    faults.add_argument(
        "--udp-reorder", type=percent, default=None, metavar="PCT", help=_("hold back PCT %% so they arrive late")
    )
    faults.add_argument(
        "--udp-delay", type=_delay, default=None, metavar="MS[:JITTER]", help=_("delay every datagram, e.g. 50:10")
    )
    faults.add_argument(
        "--seed", type=int, default=None, help=_("random seed of the fault injection (same seed, same faults)")
    )
    kernel = compare.add_argument_group(_("real loss in the kernel (root; needs ip, nft, ethtool)"))
    kernel.add_argument(
        "--netns-loss",
        type=percent,
        default=None,
        metavar="PCT",
        help=_("server and bots in two network namespaces; nftables drops PCT %% of packets each way"),
    )
    kernel.add_argument(
        "--netns-rate",
        type=_rate,
        default=None,
        metavar="RATE",
        help=_("also limit the link, e.g. 1mbit (tc tbf; needs tc)"),
    )
    _output_flags(compare)
    compare.set_defaults(handler=_compare)

    sticky = scenarios.add_parser(
        "sticky",
        help=_("the sticky-packet lesson: TCP merges and splits messages, framing and UDP keep them"),
        description=_(
            "A raw TCP sender makes N small send()s; a naive recv(1024) receiver prints the chunks it really gets "
            "(merged and cut messages); then the same with the 4-byte length prefix gives exactly N messages. Over "
            "UDP one recvfrom returns one datagram, and a datagram larger than the buffer is truncated."
        ),
        formatter_class=HelpFormatter,
    )
    sticky.add_argument("--messages", type=positive_int, default=60, help=_("how many small messages to send"))
    sticky.add_argument(
        "--recv-size", type=positive_int, default=1024, help=_("buffer size the receiver passes to recv")
    )
    sticky.add_argument(
        "--big", type=count, default=3000, help=_("size of one last, big message, bytes (0: none; max 65000)")
    )
    sticky.add_argument(
        "--nagle",
        action="store_true",
        help=_("keep Nagle's algorithm on (no TCP_NODELAY): the sender's kernel merges small sends too"),
    )
    _output_flags(sticky)
    sticky.set_defaults(handler=_sticky)

    slow = scenarios.add_parser(
        "slow",
        help=_("one member stops reading: the others keep their rate, the stuck one is removed (reason slow)"),
        description=_(
            "K bots read, one member joins and never reads again. reader1 sends M messages at R/s. Prints "
            "when the server removed the stuck member and each reader's rate and latency before and after."
        ),
        formatter_class=HelpFormatter,
    )
    slow.add_argument("--readers", type=positive_int, default=3, help=_("bots that keep reading"))
    slow.add_argument("--messages", type=positive_int, default=1000, help=_("messages reader1 sends"))
    slow.add_argument("--rate", type=positive_number, default=500.0, help=_("messages per second"))
    slow.add_argument("--size", type=count, default=500, help=_("characters per message (max 2000)"))
    slow.add_argument(
        "--outbox",
        type=positive_int,
        default=65536,
        help=_("the server's --outbox: bytes queued for a member before it is dropped"),
    )
    slow.add_argument(
        "--send-buffer",
        type=positive_int,
        default=65536,
        help=_("the server's --send-buffer: kernel send buffer per member, bytes"),
    )
    slow.add_argument(
        "--stuck", type=_transports, default=("tcp",), help=_("transports of the stuck members (tcp, udp or tcp,udp)")
    )
    _output_flags(slow)
    slow.set_defaults(handler=_slow)

    timewait = scenarios.add_parser(
        "timewait",
        help=_("the four-way teardown: who closes first holds TIME_WAIT; a restart's bind needs SO_REUSEADDR"),
        description=_(
            "A client and a server on 127.0.0.1 close their connection, once client first and "
            "once server first; after each step the states of both sockets are read from "
            "/proc/net/tcp (no root needed). Then a server closes N connections first and stops: "
            "a plain bind() of its port fails with EADDRINUSE, the same with SO_REUSEADDR succeeds."
        ),
        formatter_class=HelpFormatter,
    )
    timewait.add_argument(
        "--connections", type=positive_int, default=3, help=_("connections the stopping server closes first")
    )
    _output_flags(timewait)
    timewait.set_defaults(handler=_timewait)

    threads = scenarios.add_parser(
        "threads",
        help=_("an iterative server against ThreadingTCPServer: the second client waits at accept"),
        description=_(
            "N clients arrive a little apart at an iterative server (socketserver.TCPServer, one client at a time) "
            "and then at a ThreadingTCPServer; each says a line, reads the answer and stays HOLD seconds. The table "
            "shows how long each connect() took and how long each client waited until the server accepted it."
        ),
        formatter_class=HelpFormatter,
    )
    threads.add_argument("--clients", type=positive_int, default=3, help=_("clients per server (max 20)"))
    threads.add_argument(
        "--stagger", type=positive_number, default=0.1, help=_("seconds between two clients' arrivals")
    )
    threads.add_argument(
        "--hold", type=positive_number, default=1.0, help=_("seconds each client stays connected (max 10)")
    )
    _output_flags(threads)
    threads.set_defaults(handler=_threads)

    reliable = scenarios.add_parser(
        "reliable-udp",
        help=_(
            "UDP bots add acks, a retransmission timer, duplicate suppression and ordering: everything arrives, late"
        ),
        description=_(
            "A UDP sender says M numbered messages at R/s to K UDP receivers while the server "
            "drops PCT %% of what it sends. The receivers acknowledge every copy, suppress "
            "duplicates and deliver in order; the sender resends what is not acknowledged after "
            "RTO, doubling it on every retry. Beside it, per receiver, what plain UDP delivered."
        ),
        formatter_class=HelpFormatter,
    )
    reliable.add_argument("--receivers", type=positive_int, default=2, help=_("receiving bots (max 10)"))
    reliable.add_argument(
        "--messages", type=positive_int, default=200, help=_("numbered messages the sender says (max 5000)")
    )
    reliable.add_argument("--rate", type=positive_number, default=50.0, help=_("messages per second"))
    reliable.add_argument(
        "--udp-loss",
        type=percent,
        default=10.0,
        metavar="PCT",
        help=_("the server drops PCT %% of the datagrams it sends (max 50)"),
    )
    reliable.add_argument("--seed", type=int, default=1, help=_("seed of the server's fault injection"))
    reliable.add_argument("--rto", type=positive_number, default=0.2, help=_("first retransmission timeout, seconds"))
    _output_flags(reliable)
    reliable.set_defaults(handler=_reliable)

    handshake = scenarios.add_parser(
        "handshake",
        help=_("(root) every TCP segment of one chat session: three-way handshake, data, four-way teardown"),
        description=_(
            "Watches the loopback interface with a raw socket (root) while a client joins "
            "a chatsrv, says one line and leaves: a numbered ladder of every segment with "
            "flags, relative seq/ack, length and the lanchat messages it carries."
        ),
        formatter_class=HelpFormatter,
    )
    handshake.add_argument(
        "--netns-loss",
        type=count,
        default=None,
        metavar="N",
        help=_(
            "run between two network namespaces (needs ip, nft, ethtool) and drop the first N SYNs (0-3): "
            "each comes again after TCP's timeout"
        ),
    )
    _output_flags(handshake)
    handshake.set_defaults(handler=_handshake)

    trace = scenarios.add_parser(
        "trace-wire",
        help=_(
            "chatclient --trace-wire joins a room with a long history; "
            "with --netns-rate (root) frames split across recvs"
        ),
        description=_(
            "A filler says N long messages into a room whose server keeps them as history; then a real "
            "chatclient --trace-wire joins (its welcome carries the history), pastes one long line and leaves. The "
            "report lists every recv the client made and where the frame boundaries fell. On loopback frames arrive "
            "whole; --netns-rate 1mbit puts server and client in two network namespaces joined by a slow link (root; "
            "ip, nft, ethtool, tc), and one frame arrives over many recvs."
        ),
        formatter_class=HelpFormatter,
    )
    trace.add_argument("--history", type=positive_int, default=20, help=_("messages in the room's history (max 200)"))
    trace.add_argument("--size", type=positive_int, default=500, help=_("characters per history message (max 2000)"))
    trace.add_argument("--paste", type=positive_int, default=1800, help=_("characters of the pasted line (max 2000)"))
    trace.add_argument(
        "--netns-rate", type=_rate, default=None, metavar="RATE", help=_("(root) a slow link, e.g. 1mbit")
    )
    _output_flags(trace)
    trace.set_defaults(handler=_trace_wire)

    restart = scenarios.add_parser(
        "restart",
        help=_("the server restarts under the bots: TCP notices at once, UDP only by a timeout"),
        description=_(
            "K bots over TCP and K over UDP ping the server; it is killed, stays down, and starts again "
            "on the same port. Prints the timeline: who noticed when, and when each bot was back."
        ),
        formatter_class=HelpFormatter,
    )
    restart.add_argument("--bots", type=positive_int, default=2, help=_("bots per transport"))
    restart.add_argument("--transports", type=_transports, default=("tcp", "udp"), help=_("which transports to run"))
    restart.add_argument("--before", type=positive_number, default=1.0, help=_("seconds before the server goes"))
    restart.add_argument("--down", type=positive_number, default=2.0, help=_("seconds the server stays down"))
    restart.add_argument(
        "--interval", type=positive_number, default=0.25, help=_("seconds between pings and reconnect attempts")
    )
    restart.add_argument(
        "--udp-timeout",
        type=positive_number,
        default=1.5,
        help=_("seconds without a pong before a UDP bot says hello again"),
    )
    restart.add_argument(
        "--graceful", action="store_true", help=_("SIGTERM instead of SIGKILL: the server says goodbye first")
    )
    _output_flags(restart)
    restart.set_defaults(handler=_restart)
    return parser


def _timewait(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    from lanchat_lab.connreport import timewait_report
    from lanchat_lab.timewait import TimewaitError, run_timewait

    if args.connections > 1000:
        raise LabError(_("--connections is at most 1000"))
    try:
        return run_timewait(args.connections), timewait_report
    except TimewaitError as error:
        raise LabError(str(error)) from None
    except OSError as error:
        raise LabError(_("loopback sockets failed: {reason}").format(reason=os_reason(error))) from None


def _threads(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    from lanchat_lab.connreport import threads_report
    from lanchat_lab.threads import run_threads

    if args.clients > 20 or args.hold > 10:
        raise LabError(
            _("--clients is at most 20 and --hold at most 10 seconds (the iterative run takes clients x hold)")
        )
    try:
        return run_threads(args.clients, args.stagger, args.hold), threads_report
    except OSError as error:
        raise LabError(_("loopback sockets failed: {reason}").format(reason=os_reason(error))) from None


def _reliable(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    from lanchat_lab.connreport import reliable_report
    from lanchat_lab.reliable import ReliableOptions, run_reliable

    if args.receivers > 10 or args.messages > 5000 or args.udp_loss > 50:
        raise LabError(_("--receivers is at most 10, --messages at most 5000 and --udp-loss at most 50"))
    options = ReliableOptions(args.receivers, args.messages, args.rate, args.udp_loss, args.seed, args.rto)
    return run_reliable(options), reliable_report


def _handshake(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    from lanchat_lab.connreport import handshake_report
    from lanchat_lab.handshake import run_handshake

    try:
        return run_handshake(args.netns_loss), handshake_report
    except OSError as error:
        raise LabError(
            _("capture or loopback sockets failed: {reason}").format(reason=os_reason(error))
        ) from None


def _trace_wire(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    from lanchat_lab.connreport import trace_wire_report
    from lanchat_lab.tracewire import TraceOptions, run_trace_wire

    if args.history > 200 or args.size > 2000 or args.paste > 2000:
        raise LabError("--history is at most 200, --size and --paste at most 2000 (the protocol's text limit)")
    try:
        return run_trace_wire(TraceOptions(args.history, args.size, args.paste, args.netns_rate)), trace_wire_report
    except OSError as error:
        raise LabError(_("sockets failed: {reason}").format(reason=os_reason(error))) from None


def _restart(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    from lanchat_lab.connreport import restart_report
    from lanchat_lab.restart import RestartOptions, run_restart

    options = RestartOptions(
        args.bots, args.transports, args.before, args.down, args.interval, args.udp_timeout, args.graceful
    )
    return run_restart(options), restart_report


def _slow(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    from lanchat_lab.report import slow_report
    from lanchat_lab.slow import SlowOptions, run_slow

    if args.size > 2000:
        raise LabError(_("--size is at most 2000 (the protocol's text limit)"))
    options = SlowOptions(args.readers, args.messages, args.rate, args.size, args.outbox, args.send_buffer, args.stuck)
    return run_slow(options), slow_report


def _sticky(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    from lanchat_lab.report import sticky_report
    from lanchat_lab.sticky import run_sticky

    if args.big > 65000:
        raise LabError(_("--big is at most 65000 bytes (a UDP datagram carries at most 65507)"))
    try:
        return run_sticky(args.messages, args.recv_size, args.big, args.nagle), sticky_report
    except OSError as error:
        raise LabError(_("loopback sockets failed: {reason}").format(reason=os_reason(error))) from None


def _compare(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[dict[str, Any]], str]]:
    from lanchat_lab.compare import CompareOptions, run_compare
    from lanchat_lab.report import compare_report

    if args.size > 2000:
        raise LabError(_("--size is at most 2000 (the protocol's text limit)"))
    options = CompareOptions(
        bots=args.bots,
        transports=args.transports,
        messages=args.messages,
        rate=args.rate,
        size=args.size,
        host=args.host,
        port=args.port,
        udp_loss=args.udp_loss,
        udp_dup=args.udp_dup,
        udp_reorder=args.udp_reorder,
        udp_delay=args.udp_delay,
        seed=args.seed,
        netns_loss=args.netns_loss,
        netns_rate=args.netns_rate,
    )
    return run_compare(options), compare_report


_RATE = re.compile(r"^\d+(\.\d+)?(bit|kbit|mbit|gbit|bps|kbps|mbps)$")


def _rate(text: str) -> str:
    """A tc rate such as 1mbit, 500kbit or 100kbps (bit = bits per second, bps = bytes per second)."""
    if not _RATE.match(text.lower()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate: write e.g. 1mbit, 500kbit or 100kbps")
    return text.lower()


def _terminate(signum: int, frame: Any) -> None:
    # SIGTERM takes the same clean path as Ctrl-C: every `finally` runs.
    raise KeyboardInterrupt


def linux_only(args: argparse.Namespace) -> str | None:
    """Platform check: why this scenario cannot run on this system, or None.

    Network namespaces, nftables, tc and `ss` exist on Linux only; every
    other scenario (and compare with injected faults) runs anywhere.
    """
    if platforms.IS_LINUX:
        return None
    flags = [flag for flag in ("netns_loss", "netns_rate") if getattr(args, flag, None) is not None]
    if flags:
        names = " and ".join("--" + flag.replace("_", "-") for flag in flags)
        return _(
            "{names} need Linux (network namespaces and nftables); this is {system}: try --udp-loss instead"
        ).format(names=names, system=platforms.SYSTEM)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    i18n.setup(sys.argv[1:] if argv is None else argv)  # before the parser: its help is translated when built
    args = build_parser().parse_args(argv)
    reason = linux_only(args)  # platform check: one line, exit 2
    if reason:
        print(_("chatlab {scenario}: {reason}").format(scenario=args.scenario, reason=reason), file=sys.stderr)
        return 2
    if args.plot:
        from lanchat_lab.plot import matplotlib_missing

        reason = matplotlib_missing()
        if reason:
            print(_("chatlab: {reason}").format(reason=reason), file=sys.stderr)
            return 2
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        result, report = args.handler(args)
    except LabUnavailable as error:
        # Missing tools are not the user's mistake in this run: exit 2, like a missing matplotlib.
        print(_("chatlab {scenario}: {error}").format(scenario=args.scenario, error=error), file=sys.stderr)
        return 2
    except LabError as error:
        print(_("chatlab {scenario}: {error}").format(scenario=args.scenario, error=error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            _("chatlab {scenario}: interrupted; everything it started has been stopped and removed").format(
                scenario=args.scenario
            ),
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
    else:
        print(report(result))
    if args.plot:
        from lanchat_lab.plot import plot

        try:
            plot(result, args.plot)
        except OSError as error:
            print(
                _("chatlab: cannot write {plot}: {reason}").format(plot=args.plot, reason=os_reason(error)),
                file=sys.stderr,
            )
            return 1
        if not args.json:
            print(_("\npicture: {plot}").format(plot=args.plot))
    return 0


def run() -> NoReturn:
    """Console-script entry point."""
    sys.exit(main())
