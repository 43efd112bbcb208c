"""LAN discovery, client side: send `discover` probes, collect `server_info` answers, list them.

Owns finding servers without typing an address (docs/protocol.md,
"Extension: discovery"): which addresses to probe (the broadcast address of
every local IPv4 interface, and this machine; or the addresses the user
gives), the padded probe, a bounded wait for answers, keeping answers per
(address, id), the words that show a server or ask which one, and whether a
password may go to a server that discovery found.

Pure parts (probe, parse_target, parse_answer, Collector, describe,
parse_choice) have no socket; `discover` is the one function that does I/O,
and `ask_which` and `may_send_password` the ones that talk to a terminal.

Imports: lanchat.wire (codec), lanchat.netinfo (interfaces), chatclient.render
(sanitize). Never transport, ui or lineui.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from chatclient.render import sanitize
from lanchat.i18n import _, ngettext, os_reason
from lanchat.netinfo import Interface, ipv4_interfaces, shown_address
from lanchat.wire import ProtocolError, decode_payload, encode_payload

# The server answers at most 3x the probe's size (docs/protocol.md §2) and at most
# 1400 bytes; 480 bytes of probe leave room for the whole answer.
PROBE_SIZE = 480
DISCOVERY_WAIT = 1.0  # seconds to collect answers
PROBE_AGAIN_AFTER = 0.3  # a second probe, for when the first (or its answer) is lost
MAX_ANSWERS = 1000  # datagrams read in one discovery, at most (a flood cannot keep us busy)


@dataclass(frozen=True)
class Target:
    """Where a probe goes; `broadcast` targets may be answered by many servers."""

    host: str
    port: int
    broadcast: bool = False

    def __str__(self) -> str:
        return shown_address(self.host, self.port)


@dataclass(frozen=True)
class FoundServer:
    """One server that answered, as it described itself (strings not yet sanitized)."""

    server_id: str
    name: str
    host: str  # the address the answer came from: where to connect
    tcp_port: int
    udp_port: int | None
    users: int
    rooms: tuple[tuple[str, int], ...]
    room_count: int
    version: str
    password_required: bool


def probe(size: int = PROBE_SIZE) -> bytes:
    """The `discover` payload, padded to `size` bytes so the answer may be up to 3x that."""
    bare = encode_payload({"type": "discover", "pad": ""})
    return encode_payload({"type": "discover", "pad": "." * max(0, size - len(bare))})


def parse_target(text: str, default_port: int) -> Target:
    """`HOST`, `HOST:PORT`, `[IPV6]:PORT` or a bare IPv6 address -> Target; ValueError explains."""
    text = text.strip()
    host, port_text = text, None
    if text.startswith("["):
        host, _bracket, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(_("not an address: {text!r} (try [::1]:9009)").format(text=text))
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ValueError(_("no host in {text!r}").format(text=text))
    if port_text is None:
        return Target(host, default_port)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(_("not a port: {port_text!r} in {text!r} (1 to 65535)").format(port_text=port_text, text=text))
    return Target(host, int(port_text))


def broadcast_targets(port: int, interfaces: Iterable[Interface] | None = None) -> list[Target]:
    """This machine (127.0.0.1), then the broadcast address of every other IPv4 interface."""
    targets = [Target("127.0.0.1", port)]
    for interface in ipv4_interfaces() if interfaces is None else interfaces:
        if interface.is_loopback or interface.broadcast is None:
            continue
        target = Target(interface.broadcast, port, broadcast=True)
        if target not in targets:
            targets.append(target)
    return targets


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _port(value: Any) -> int | None:
    return value if type(value) is int and 1 <= value <= 65535 else None


def parse_answer(payload: dict[str, Any], host: str) -> FoundServer | None:
    """A `server_info` payload from `host` -> FoundServer; None for anything else or a broken one."""
    if payload.get("type") != "server_info":
        return None
    tcp_port = _port(payload.get("tcp_port"))
    name = payload.get("name")
    if tcp_port is None or not isinstance(name, str):
        return None
    rooms: list[tuple[str, int]] = []
    raw_rooms = payload.get("rooms")
    for room in raw_rooms if isinstance(raw_rooms, list) else []:
        if isinstance(room, dict) and isinstance(room.get("name"), str) and _count(room.get("users")) is not None:
            rooms.append((room["name"], room["users"]))
    server_id = payload.get("id")
    version = payload.get("version")
    room_count = _count(payload.get("room_count"))
    return FoundServer(
        server_id=server_id if isinstance(server_id, str) else f"{host}:{tcp_port}",
        name=name,
        host=host,
        tcp_port=tcp_port,
        udp_port=_port(payload.get("udp_port")),
        users=_count(payload.get("users")) or 0,
        rooms=tuple(rooms),
        room_count=max(room_count or 0, len(rooms)),
        version=version if isinstance(version, str) else "?",
        password_required=payload.get("password_required") is True,
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@dataclass
class Collector:
    """Answers gathered so far: one entry per (address, id), in the order they first answered.

    The `id` in an answer is public, so anyone can copy it: answers with one
    id from two addresses are two entries, never merged, or an impostor could
    take the real server's place in the list. The one exception is this
    machine: an answer from loopback and one from an address of this
    machine's own interfaces (`local_addresses`) both come from here, so the
    server is listed once, at the address classmates would use.
    """

    servers: list[FoundServer] = field(default_factory=list)
    local_addresses: frozenset[str] = frozenset()

    def add(self, found: FoundServer) -> None:
        for index, known in enumerate(self.servers):
            if known.server_id != found.server_id:
                continue
            if known.host == found.host:
                return  # the same answer again (the probe is sent twice)
            if _is_loopback(known.host) and found.host in self.local_addresses:
                self.servers[index] = found
                return
            if _is_loopback(found.host) and known.host in self.local_addresses:
                return
        self.servers.append(found)


@dataclass
class Discovery:
    """What one discovery did: the servers found (by name), what was asked, and what could not be sent."""

    servers: list[FoundServer]
    targets: list[Target]
    send_errors: list[str]
    wait: float


def _resolve(target: Target) -> tuple[socket.AddressFamily, Any]:
    family, _type, _proto, _name, address = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)[0]
    return family, address


def discover(
    targets: Sequence[Target],
    wait: float = DISCOVERY_WAIT,
    *,
    clock: Callable[[], float] = time.monotonic,
    local_addresses: Iterable[str] | None = None,
) -> Discovery:
    """Probe every target (twice), collect answers for `wait` seconds.

    `local_addresses` are this machine's own (default: its IPv4 interfaces'),
    the only addresses whose answers may be merged with one from loopback.
    Raises ValueError when a target's host name cannot be resolved.
    """
    if local_addresses is None:
        local_addresses = [interface.address for interface in ipv4_interfaces()]
    resolved: list[tuple[Target, socket.AddressFamily, Any]] = []
    for target in targets:
        try:
            family, address = _resolve(target)
        except (socket.gaierror, UnicodeError) as error:
            raise ValueError(
                _("cannot resolve {host!r}: {reason}").format(
                    host=target.host, reason=os_reason(error)
                )
            ) from None
        resolved.append((target, family, address))
    sockets: dict[socket.AddressFamily, socket.socket] = {}
    collector = Collector(local_addresses=frozenset(local_addresses))
    send_errors: list[str] = []
    data = probe()
    try:
        for _target, family, _address in resolved:
            if family not in sockets:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                if family == socket.AF_INET:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sockets[family] = sock

        def send_probes(record_errors: bool) -> None:
            for target, family, address in resolved:
                try:
                    sockets[family].sendto(data, address)
                except OSError as error:  # ENETUNREACH (interface down), EACCES, ...
                    if record_errors:
                        send_errors.append(f"{target}: {os_reason(error)}")

        start = clock()
        deadline = start + wait
        send_probes(record_errors=True)
        probe_again_at: float | None = start + min(PROBE_AGAIN_AFTER, wait / 2)
        for _answer in range(MAX_ANSWERS):
            now = clock()
            if now >= deadline:
                break
            if probe_again_at is not None and now >= probe_again_at:
                send_probes(record_errors=False)
                probe_again_at = None
            until = deadline if probe_again_at is None else min(deadline, probe_again_at)
            readable, _writable, _errors = select.select(list(sockets.values()), [], [], max(0.0, until - now))
            for sock in readable:
                try:
                    datagram, source = sock.recvfrom(65535)
                except OSError:  # e.g. ECONNREFUSED from an ICMP error: nobody there
                    continue
                try:
                    found = parse_answer(decode_payload(datagram), str(source[0]))
                except ProtocolError:
                    continue  # not ours: somebody else's protocol on this port
                if found is not None:
                    collector.add(found)
    finally:
        for sock in sockets.values():
            sock.close()
    # Sorted, so the numbers of a pick list do not depend on which answer came first.
    servers = sorted(collector.servers, key=lambda server: (server.name.casefold(), server.host, server.tcp_port))
    return Discovery(servers, list(targets), send_errors, wait)


# --- words ---------------------------------------------------------------------


def join_command(server: FoundServer, udp: bool = False) -> str:
    """What to type to join `server` by hand (it always works, discovery or not)."""
    if udp and server.udp_port is not None:
        return f"chatclient --udp --host {server.host} --port {server.udp_port}"
    return f"chatclient --host {server.host} --port {server.tcp_port}"


def describe(server: FoundServer, udp: bool = False) -> str:
    """One line: name, address, people and rooms. Every string from the network is sanitized."""
    users = ngettext("{count} user", "{count} users", server.users).format(count=server.users)
    if server.rooms:
        shown = ", ".join(f"{sanitize(name)} {count}" for name, count in server.rooms)
        more = server.room_count - len(server.rooms)
        users += f" ({shown}{_(', {more} more rooms').format(more=more) if more > 0 else ''})"
    elif server.room_count:
        users += ngettext(" in {count} room", " in {count} rooms", server.room_count).format(count=server.room_count)
    lock = _(", needs a password") if server.password_required else ""
    port = (
        _("UDP port {port}").format(port=server.udp_port)
        if udp and server.udp_port is not None
        else _("port {port}").format(port=server.tcp_port)
    )
    return _('"{name}" at {host} {port}: {users}{lock}').format(
        name=sanitize(server.name), host=server.host, port=port, users=users, lock=lock
    )


def listing(servers: Sequence[FoundServer], udp: bool = False) -> list[str]:
    """Numbered lines for a list of servers, each with the command that joins it by hand.

    Answers that share an id from different addresses get a warning: at
    most one of them is the server it claims to be.
    """
    lines: list[str] = []
    for number, server in enumerate(servers, 1):
        lines.append(f"  {number}. {describe(server, udp)}")
        lines.append(f"     {join_command(server, udp)}")
    ids = [server.server_id for server in servers]
    shared = sorted({number for number, server_id in enumerate(ids, 1) if ids.count(server_id) > 1})
    if shared:
        numbers = ", ".join(str(number) for number in shared)
        lines.append(
            _("  warning: {numbers} answered with the same server id from different addresses: at most one is").format(
                numbers=numbers
            )
        )
        lines.append(_("  the real server. Ask the teacher for its address and join with --host ADDRESS."))
    return lines


def may_send_password(
    server: FoundServer, chosen_from_list: bool, source: str, stdin: TextIO, out: TextIO, udp: bool = False
) -> bool:
    """May the password (from `source`: a flag or the environment) go to `server`, found by discovery?

    Anyone on the network can answer a probe with any name and id, so the
    password goes only where the user looked: a server picked from a list
    that showed its address, or one confirmed at a prompt that shows it.
    Without a terminal to ask on (a pipe), the answer is no, with the
    `--host` command to join that address on purpose. `--host` itself never
    comes here: a typed address is the user's choice.
    """
    if chosen_from_list:
        return True
    if udp and server.udp_port is not None:
        address = _("{host} UDP port {port}").format(host=server.host, port=server.udp_port)
    else:
        address = _("{host} port {port}").format(host=server.host, port=server.tcp_port)
    if not stdin.isatty():
        print(
            _(
                "chatclient: not sending the password ({source}) to a server found by discovery: anyone on the network"
            ).format(source=source),
            file=out,
        )
        print(
            _('  can answer as "{name}". If {address} is your teacher\'s server, join it by address:').format(
                name=sanitize(server.name), address=address
            ),
            file=out,
        )
        print(f"  {join_command(server, udp)}", file=out)
        return False
    print(_("chatclient: found {server}").format(server=describe(server, udp)), file=out)
    for _question in range(5):  # bounded: a stuck key cannot loop forever
        print(
            _("send the password ({source}) to {address}? Only if that is your teacher's server [y/N] ").format(
                source=source, address=address
            ),
            end="",
            file=out,
            flush=True,
        )
        answer = stdin.readline().strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("", "n", "no", "q", "quit"):
            break
        print(_("type y or n"), file=out)
    print(
        _("chatclient: not joining. To join that server on purpose: {command}").format(
            command=join_command(server, udp)
        ),
        file=out,
    )
    return False


def none_found(discovery: Discovery, port: int) -> list[str]:
    """What to say when nobody answered: how to give the address by hand, and why it may be."""
    probed = _(", ").join(
        _("broadcast {target}").format(target=target) if target.broadcast else str(target)
        for target in discovery.targets
    )
    lines = [
        _("no lanchat server answered within {wait:g} s (asked {probed}).").format(wait=discovery.wait, probed=probed),
        _(
            "  Ask for the server's address (chatsrv prints it when it starts) and type: "
            "chatclient --host ADDRESS --port {port}"
        ).format(port=port),
        _("  Discovery uses UDP broadcast: Wi-Fi that isolates clients, a firewall blocking UDP, or a server"),
        _("  started with --no-discovery or --no-udp stops it; an address typed by hand still works."),
    ]
    lines += [_("  (could not send to {error})").format(error=error) for error in discovery.send_errors]
    return lines


def parse_choice(text: str, count: int) -> int | None:
    """A typed answer to "which one?" -> index into the list; None if it is not 1..count."""
    text = text.strip()
    if not text and count:
        return 0  # Enter takes the first
    if text.isdigit() and 1 <= int(text) <= count:
        return int(text) - 1
    return None


def ask_which(servers: Sequence[FoundServer], stdin: TextIO, out: TextIO, udp: bool = False) -> FoundServer | None:
    """Numbered list on `out`, then read a choice from `stdin`; None on end of input or `q`."""
    print(
        ngettext("{count} lanchat server answered:", "{count} lanchat servers answered:", len(servers)).format(
            count=len(servers)
        ),
        file=out,
    )
    for line in listing(servers, udp):
        print(line, file=out)
    for _question in range(10):  # bounded: a stuck key cannot loop forever
        print(
            _("join which one? [1-{count}, Enter: 1, q: quit] ").format(count=len(servers)),
            end="",
            file=out,
            flush=True,
        )
        answer = stdin.readline()
        if not answer or answer.strip().lower() in ("q", "quit"):
            return None
        index = parse_choice(answer, len(servers))
        if index is not None:
            return servers[index]
        print(_("type a number from 1 to {count}").format(count=len(servers)), file=out)
    return None
