"""The client behind proxies: forwarding headers believed only from trusted proxies.

The client IP is the socket peer. ``X-Forwarded-For`` (or RFC 7239 ``Forwarded``) is
believed only when the peer is one of the trusted proxies; it is then walked right to
left, skipping trusted proxies, and the first address that is not one is the client (the
model of nginx's ``real_ip_recursive`` and Envoy's trusted hops). Everything to its left
was written by the client and is ignored.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

from resilient.errors import ConfigurationError

__all__ = [
    "PROXY_HEADERS",
    "IPAddress",
    "IPNetwork",
    "check_proxy_header",
    "forwarded_hops",
    "parse_address",
    "parse_networks",
    "resolve_client",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The headers a trusted proxy may report the client in.
PROXY_HEADERS = ("x-forwarded-for", "forwarded")

_PORT_V4 = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):\d+$")


def parse_networks(
    networks: Iterable[str | IPNetwork], *, argument: str = "trusted_proxies"
) -> tuple[IPNetwork, ...]:
    """IP networks from CIDR strings or network objects.

    Raises:
        ConfigurationError: an entry is not an IP network.
    """
    parsed: list[IPNetwork] = []
    for network in networks:
        if isinstance(network, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            parsed.append(network)
            continue
        try:
            parsed.append(ipaddress.ip_network(str(network).strip(), strict=False))
        except ValueError:
            raise ConfigurationError(argument, network, "IP networks (10.0.0.0/8, ::1)") from None
    return tuple(parsed)


def parse_address(text: str | None) -> IPAddress | None:
    if not text:
        return None
    """An IP address from a peer or a forwarding hop (ports, brackets and quotes dropped).

    IPv4-mapped IPv6 addresses become IPv4; anything else that is not an address is
    ``None``.
    """
    text = text.strip().strip('"')
    if text.startswith("["):  # [v6]:port or [v6]
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    else:
        with_port = _PORT_V4.match(text)
        if with_port is not None:
            text = with_port.group(1)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_hops(headers: Mapping[str, str], header: str) -> list[str]:
    """The hops listed in ``header``, left to right; ``""`` for a hop without ``for=``."""
    raw = headers.get(header, "")
    if not raw:
        return []
    if header == "x-forwarded-for":
        return [hop.strip() for hop in raw.split(",")]
    hops = []
    for element in raw.split(","):
        found = ""  # an element without for= is an unknown hop
        for pair in element.split(";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "for":
                found = value.strip()
        hops.append(found)
    return hops


def check_proxy_header(header: str) -> str:
    """``header`` lower-cased, if it is one of :data:`PROXY_HEADERS`."""
    if header.lower() not in PROXY_HEADERS:
        raise ConfigurationError("proxy_header", header, "x-forwarded-for or forwarded")
    return header.lower()


def resolve_client(
    peer: str | None,
    headers: Mapping[str, str],
    trusted: tuple[IPNetwork, ...],
    header: str,
) -> IPAddress | None:
    """The client's address given the socket ``peer`` and the request's ``headers``.

    Returns ``None`` when the peer is not an IP address (a Unix socket).
    """
    current = parse_address(peer)
    if current is None:
        return None
    if not trusted or not any(current in network for network in trusted):
        return current
    for hop in reversed(forwarded_hops(headers, header)):
        address = parse_address(hop)
        if address is None:  # garbage or "unknown": stop at the last proxy we trust
            return current
        current = address
        if not any(address in network for network in trusted):
            return address
    return current
