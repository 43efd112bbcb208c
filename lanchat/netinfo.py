"""The machine's IPv4 interfaces (address and broadcast), from the standard library.

A leaf module used by the server's start-up lines (the command classmates
type) and by client discovery (where to broadcast). Two readers, chosen once
at import by `lanchat.platforms`:

- Linux: every interface by name with the ioctls SIOCGIFADDR, SIOCGIFBRDADDR
  and SIOCGIFNETMASK (exact addresses and broadcasts, also of idle links).
- Elsewhere (Windows, macOS): the addresses the host name resolves to, and
  the source address the routing table picks for an outside destination (a
  UDP socket's `connect` only chooses a route; nothing is sent, and no name
  is looked up but the machine's own). The netmask is unknown there, so each
  such address gets the limited broadcast 255.255.255.255, which every
  system sends on the link of that route.

A well-kept library would see more on Windows and macOS (ifaddr: ctypes on
getifaddrs and GetAdaptersAddresses; psutil: compiled), but the server must
run from a bare Python, so the fallback stays stdlib-only.

Imports: lanchat.platforms only (and the standard library).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from lanchat import platforms

_SIOCGIFADDR = 0x8915
_SIOCGIFBRDADDR = 0x8919
_SIOCGIFNETMASK = 0x891B

LIMITED_BROADCAST = "255.255.255.255"  # the broadcast of last resort, when the netmask is unknown
# An outside address (RFC 5737 TEST-NET-1): never answers and is never sent
# anything here; the routing table still picks the interface that leads to it.
_ROUTE_PROBE = ("192.0.2.1", 9)


@dataclass(frozen=True)
class Interface:
    name: str
    address: str
    broadcast: str | None

    @property
    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback


def _ioctl_address(
    ioctl: Callable[[int, int, bytes], bytes], sock: socket.socket, request: int, name: str
) -> str | None:
    try:
        raw = ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))
    except OSError:
        return None
    return socket.inet_ntoa(raw[20:24])


def linux_interfaces() -> list[Interface]:
    """Linux: every interface that has an IPv4 address, with its broadcast address."""
    ioctl = platforms.LINUX_IOCTL
    if ioctl is None:
        return []
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return []
    found: list[Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            address = _ioctl_address(ioctl, sock, _SIOCGIFADDR, name)
            if address is None:
                continue
            broadcast = _ioctl_address(ioctl, sock, _SIOCGIFBRDADDR, name)
            netmask = _ioctl_address(ioctl, sock, _SIOCGIFNETMASK, name)
            if (broadcast in (None, "0.0.0.0")) and netmask:
                network = ipaddress.ip_network(f"{address}/{netmask}", strict=False)
                broadcast = str(network.broadcast_address) if network.prefixlen < 31 else None
            found.append(Interface(name, address, broadcast if broadcast != "0.0.0.0" else None))
    return found


def host_name_addresses() -> list[str]:
    """The IPv4 addresses this machine's own name resolves to (hosts file, DNS or mDNS)."""
    try:
        return socket.gethostbyname_ex(socket.gethostname())[2]
    except (OSError, UnicodeError):
        return []


def routed_address(destination: tuple[str, int] = _ROUTE_PROBE) -> str | None:
    """The source address the routing table picks for `destination`; None without a route. Sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(destination)  # UDP: only picks the route and the source address
            address: str = sock.getsockname()[0]
        except OSError:
            return None
    return None if address == "0.0.0.0" else address


def portable_interfaces(
    routed: Callable[[], str | None] = routed_address,
    named: Callable[[], list[str]] = host_name_addresses,
) -> list[Interface]:
    """Elsewhere: loopback, the routed address, then the host name's; broadcast 255.255.255.255 for each."""
    found = [Interface("loopback", "127.0.0.1", None)]
    seen = {"127.0.0.1"}
    for label, addresses in (("default route", [routed()]), ("host name", named())):
        for address in addresses:
            if address is None or address in seen:
                continue
            seen.add(address)
            loopback = ipaddress.ip_address(address).is_loopback
            found.append(Interface(label, address, None if loopback else LIMITED_BROADCAST))
    return found


_reader: Callable[[], list[Interface]] = linux_interfaces if platforms.LINUX_IOCTL is not None else portable_interfaces


def ipv4_interfaces() -> list[Interface]:
    """Every IPv4 interface this system can tell us about (loopback included)."""
    return _reader()


def shown_address(host: str, port: int) -> str:
    """host:port as people write it ([::1]:9009 for an IPv6 address)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
