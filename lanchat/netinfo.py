"""The machine's IPv4 interfaces (address and broadcast), from the standard library.

A leaf module used by the CLI to print the command classmates type to join.
Linux only (ioctl SIOCGIFADDR/SIOCGIFBRDADDR); elsewhere it returns nothing.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

_SIOCGIFADDR = 0x8915
_SIOCGIFBRDADDR = 0x8919
_SIOCGIFNETMASK = 0x891B


@dataclass(frozen=True)
class Interface:
    name: str
    address: str
    broadcast: str | None

    @property
    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback


def _ioctl_address(sock: socket.socket, request: int, name: str) -> str | None:
    import fcntl

    try:
        raw = fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))
    except OSError:
        return None
    return socket.inet_ntoa(raw[20:24])


def ipv4_interfaces() -> list[Interface]:
    """Every interface that has an IPv4 address."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return []
    found: list[Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            address = _ioctl_address(sock, _SIOCGIFADDR, name)
            if address is None:
                continue
            broadcast = _ioctl_address(sock, _SIOCGIFBRDADDR, name)
            netmask = _ioctl_address(sock, _SIOCGIFNETMASK, name)
            if (broadcast in (None, "0.0.0.0")) and netmask:
                network = ipaddress.ip_network(f"{address}/{netmask}", strict=False)
                broadcast = str(network.broadcast_address) if network.prefixlen < 31 else None
            found.append(Interface(name, address, broadcast if broadcast != "0.0.0.0" else None))
    return found
