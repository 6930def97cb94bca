"""Who a request counts against: key functions over a neutral request view.

The WSGI and ASGI middleware (and the framework adapters) fill a :class:`RequestView`
and call a key function with it. Every key function here returns a non-empty identity:
when its source is missing (no header, no API key, a callback returning nothing) it
falls back to the client's IP, never to "exempt".

The client IP is the socket peer, or what trusted proxies relayed (see
:mod:`resilient.ratelimit.proxies`): a forged ``X-Forwarded-For`` is never believed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from resilient.errors import ConfigurationError
from resilient.ratelimit.proxies import (
    PROXY_HEADERS,
    IPAddress,
    IPNetwork,
    check_proxy_header,
    parse_networks,
    resolve_client,
)

__all__ = [
    "PROXY_HEADERS",
    "IPAddress",
    "IPNetwork",
    "RequestKey",
    "RequestView",
    "by_api_key",
    "by_callback",
    "by_client_ip",
    "by_header",
    "client_in",
    "client_ip",
    "parse_networks",
    "storage_identity",
]

_SAFE = re.compile(r"[A-Za-z0-9._:@+=-]{1,100}")


class RequestView(Protocol):
    """What a key function may read of a request (filled by the middleware).

    .. versionadded:: 0.1
    """

    method: str  # upper-case
    path: str
    client: str | None  # socket peer IP, or None
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "


#: A key function: request in, non-empty identity out.
RequestKey = Callable[[RequestView], str]


def storage_identity(value: str) -> str:
    """``value`` made safe for a storage key: kept, escaped or hashed.

    Plain values (letters, digits and ``._:@+=-``, up to 100 characters) stay readable;
    others are percent-escaped, and long ones hashed (``#`` and 32 hex digits), so no
    identity can contain the key separator ``/`` or a Cluster hash-tag brace, and two
    different identities never share a key.

    .. versionadded:: 0.1
    """
    if _SAFE.fullmatch(value):
        return value
    if len(value) <= 100:
        escaped = "".join(
            char if _SAFE.fullmatch(char) else "".join(f"%{b:02X}" for b in char.encode())
            for char in value
        )
        if len(escaped) <= 200:
            return escaped
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16)
    return "#" + digest.hexdigest()


def client_ip(
    request: RequestView,
    trusted_proxies: Iterable[IPNetwork] = (),
    *,
    header: str = "x-forwarded-for",
) -> IPAddress | None:
    """The client's address: the peer, or what trusted proxies say the peer relayed.

    Args:
        request: the request.
        trusted_proxies: networks whose reports in ``header`` are believed.
        header: ``"x-forwarded-for"`` or ``"forwarded"`` (RFC 7239): the one header
            your proxies set. The other is ignored, since a client could forge it.

    Returns:
        The address, or ``None`` when the peer is unknown (e.g. a Unix socket).

    .. versionadded:: 0.1
    """
    return resolve_client(request.client, request.headers, tuple(trusted_proxies), header)


class _Settings:
    """Trusted proxies from the settings, read at the first request (never at import)."""

    __slots__ = ("_networks",)

    def __init__(self, networks: Iterable[str | IPNetwork] | None) -> None:
        self._networks = None if networks is None else parse_networks(networks)

    def networks(self) -> tuple[IPNetwork, ...]:
        if self._networks is None:
            from resilient.config import Settings

            self._networks = Settings.from_env().ratelimit.trusted_proxies
        return self._networks


def by_client_ip(
    *,
    trusted_proxies: Iterable[str | IPNetwork] | None = None,
    proxy_header: str = "x-forwarded-for",
    ipv6_prefix: int = 64,
) -> RequestKey:
    """A key function counting per client IP (``"ip:203.0.113.7"``).

    Args:
        trusted_proxies: CIDRs of your proxies; ``None`` reads
            ``RESILIENT_RATELIMIT_TRUSTED_PROXIES`` at the first request.
        proxy_header: the header your proxies set, ``x-forwarded-for`` or ``forwarded``.
        ipv6_prefix: IPv6 clients count per network of this length (a host usually owns
            a whole /64, so per-address limits are trivially evaded); 128 for per address.

    .. versionadded:: 0.1
    """
    header = check_proxy_header(proxy_header)
    if not 1 <= ipv6_prefix <= 128:
        raise ConfigurationError("ipv6_prefix", ipv6_prefix, "a prefix length from 1 to 128")
    settings = _Settings(trusted_proxies)

    def key(request: RequestView) -> str:
        address = client_ip(request, settings.networks(), header=header)
        if address is None:
            return "ip:unknown"
        if isinstance(address, ipaddress.IPv6Address) and ipv6_prefix < 128:
            network = ipaddress.IPv6Network((address, ipv6_prefix), strict=False)
            return f"ip:{network.network_address}/{ipv6_prefix}"
        return f"ip:{address}"

    return key


def by_header(
    name: str,
    *,
    hashed: bool = False,
    trusted_proxies: Iterable[str | IPNetwork] | None = None,
    proxy_header: str = "x-forwarded-for",
) -> RequestKey:
    """A key function counting per value of header ``name``, else per client IP.

    Args:
        name: the header (any case).
        hashed: store a hash of the value instead of the value (for secrets).
        trusted_proxies: as for :func:`by_client_ip`, for the fallback.
        proxy_header: as for :func:`by_client_ip`, for the fallback.

    .. versionadded:: 0.1
    """
    header = name.lower()
    fallback = by_client_ip(trusted_proxies=trusted_proxies, proxy_header=proxy_header)

    def key(request: RequestView) -> str:
        value = request.headers.get(header, "").strip()
        if not value:
            return fallback(request)
        return f"h:{header}:{_digest(value) if hashed else value}"

    return key


def by_api_key(
    header: str = "x-api-key",
    *,
    scheme: str | None = None,
    trusted_proxies: Iterable[str | IPNetwork] | None = None,
    proxy_header: str = "x-forwarded-for",
) -> RequestKey:
    """A key function counting per API key, hashed (``"key:<hash>"``), else per client IP.

    Args:
        header: where the key is sent.
        scheme: an authorization scheme to strip (``"Bearer"`` for
            ``Authorization: Bearer <key>``); a value with another scheme counts per IP.
        trusted_proxies: as for :func:`by_client_ip`, for the fallback.
        proxy_header: as for :func:`by_client_ip`, for the fallback.

    .. versionadded:: 0.1
    """
    name = header.lower()
    prefix = None if scheme is None else scheme.lower() + " "
    fallback = by_client_ip(trusted_proxies=trusted_proxies, proxy_header=proxy_header)

    def key(request: RequestView) -> str:
        value = request.headers.get(name, "").strip()
        if prefix is not None:
            value = value[len(prefix) :].strip() if value.lower().startswith(prefix) else ""
        if not value:
            return fallback(request)
        return "key:" + _digest(value)

    return key


def by_callback(
    function: Callable[[RequestView], str | None],
    *,
    trusted_proxies: Iterable[str | IPNetwork] | None = None,
    proxy_header: str = "x-forwarded-for",
) -> RequestKey:
    """A key function counting per what ``function`` returns (a user id), else per IP.

    .. versionadded:: 0.1
    """
    fallback = by_client_ip(trusted_proxies=trusted_proxies, proxy_header=proxy_header)

    def key(request: RequestView) -> str:
        value = function(request)
        return f"cb:{value}" if value else fallback(request)

    return key


def client_in(
    networks: Iterable[str | IPNetwork],
    *,
    trusted_proxies: Iterable[str | IPNetwork] | None = None,
    proxy_header: str = "x-forwarded-for",
) -> Callable[[RequestView], bool]:
    """An exempt predicate: true when the client IP is in ``networks``.

    The client IP is found as by :func:`by_client_ip`, so a forged
    ``X-Forwarded-For`` cannot claim an allow-listed address.

    .. versionadded:: 0.1
    """
    allowed = parse_networks(networks, argument="networks")
    header = check_proxy_header(proxy_header)
    settings = _Settings(trusted_proxies)

    def predicate(request: RequestView) -> bool:
        address = client_ip(request, settings.networks(), header=header)
        return address is not None and any(address in network for network in allowed)

    return predicate


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
