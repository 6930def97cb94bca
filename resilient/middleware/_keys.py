"""The client-IP key of route limits, remembered per peer so that a request costs a lookup.

Finding the client (parsing the peer's address, walking a trusted proxy's
``X-Forwarded-For``) is the costliest part of counting a request in memory. Its answer
depends only on the peer and that header, so it is remembered for each pair seen
recently: a bounded dict, emptied when full (no eviction order to maintain).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from resilient.ratelimit import by_client_ip
from resilient.ratelimit.keys import IPNetwork, RequestKey, RequestView

__all__ = ["PeerKey", "client_key"]

#: Most (peer, forwarding header) pairs remembered by one key function.
REMEMBERED = 4096
#: Longer forwarding headers are resolved every time (a client writes most of them, and
#: remembering them would let it fill memory).
_LONGEST = 256

#: A key computed from the socket peer alone.
PeerKey = Callable[[str | None], str]


class _Peer:
    """A request known only by its peer (enough without trusted proxies)."""

    __slots__ = ("client",)

    method = ""
    path = ""
    headers: Mapping[str, str] = {}

    def __init__(self, client: str | None) -> None:
        self.client = client


def client_key(trusted: tuple[IPNetwork, ...]) -> tuple[RequestKey, PeerKey | None]:
    """A key function counting per client IP, as :func:`~resilient.ratelimit.by_client_ip`
    finds it (``X-Forwarded-For`` only from ``trusted`` peers), remembered per peer.

    Without trusted proxies the key depends on the peer alone; the second function then
    computes it from the peer's address, so the shells need not describe the request.
    """
    resolve = by_client_ip(trusted_proxies=trusted)
    known: dict[object, str] = {}

    def remember(memo: object, request: RequestView) -> str:
        found = resolve(request)
        if len(known) >= REMEMBERED:
            known.clear()
        known[memo] = found
        return found

    if not trusted:

        def of_peer(peer: str | None) -> str:
            found = known.get(peer)
            return found if found is not None else remember(peer, _Peer(peer))

        def by_peer(request: RequestView) -> str:
            return of_peer(request.client)

        return by_peer, of_peer

    def by_peer_and_hops(request: RequestView) -> str:
        hops = request.headers.get("x-forwarded-for")
        if hops is not None and len(hops) > _LONGEST:
            return resolve(request)
        memo = (request.client, hops)
        found = known.get(memo)
        return found if found is not None else remember(memo, request)

    return by_peer_and_hops, None
