"""What a stored response is keyed on: the target URI and the request's ``Vary`` values.

One rule for all of it: no two requests the app can tell apart may share a key. So the
URI encodes the path the app sees (an encoded ``?`` is not a query), the client-written
``Host`` is encoded too, a field sent on several lines is not one line, whitespace is
dropped only where it has no meaning, and a ``Cookie`` header that frameworks would read
in different ways is not keyed at all (the request bypasses the cache). Key parts are
fixed-length digests of length-prefixed input: client input never reaches a key name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from urllib.parse import quote

__all__ = [
    "ambiguous_cookies",
    "cookie_pairs",
    "target_uri",
    "url_digest",
    "variant_digest",
    "vary_values",
]

_COMMA_SPACE = re.compile(r"\s*,\s*")
# Request fields that are lists of tokens with parameters: whitespace around commas in
# them carries no meaning (RFC 9110 §5.6.1), so it is dropped from their Vary values.
_LIST_FIELDS = frozenset({"accept", "accept-charset", "accept-encoding", "accept-language"})

# What stays as it is in a path and in a host: RFC 3986 pchar and reg-name characters
# (unreserved ones are always kept by quote). "%", "?" and "#" are never among them.
_PATH_SAFE = "/!$&'()*+,;=:@"
_HOST_SAFE = "!$&'()*+,;=:[]"


def target_uri(scheme: str, host: str, path: str, query: str) -> str:
    """The absolute URI of a request whose app sees ``path`` (percent-decoded) and
    ``query`` (raw), with every part unambiguous.

    The path is percent-encoded again, so ``/items%3Fid=2`` (the path ``/items?id=2``)
    and ``/items?id=2`` (the path ``/items`` with a query) give different URIs; so is
    the host, which the client writes (``Host: example.com/items`` must not read as a
    path). Encoding is injective (``%`` itself is encoded), so distinct paths stay
    distinct; ``/a%2Fb`` and ``/a/b`` give one URI, as they give the app one path.

    .. versionadded:: 0.1
    """
    encoded = quote(path, safe=_PATH_SAFE, errors="surrogatepass")
    authority = quote(host, safe=_HOST_SAFE, errors="surrogatepass")
    uri = f"{scheme}://{authority}{encoded}"
    return f"{uri}?{query}" if query else uri


def cookie_pairs(header: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a ``Cookie`` value, split on ``;`` only, names and
    values trimmed, as werkzeug and Starlette split them; pairs without ``=`` dropped."""
    pairs = []
    for pair in header.split(";"):
        name, sep, value = pair.partition("=")
        if sep:
            pairs.append((name.strip(), value.strip()))
    return pairs


def ambiguous_cookies(header: str | None, names: frozenset[str]) -> bool:
    """Whether frameworks may read the cookies ``names`` of ``header`` differently.

    Starlette keeps the last of duplicate names, werkzeug's ``cookies.get`` the first;
    parsers built on :mod:`http.cookies` split on commas, werkzeug and Starlette do not;
    several ``Cookie`` lines reach a WSGI app joined with a comma. A cache keyed on one
    reading would store the response to another: ``Cookie: lang=en; lang=<script>``
    would fill the ``lang=en`` variant. So any comma (and so several lines, which
    :class:`~resilient.sansio.http.Headers` joins with ``", "``), or a varied cookie
    named twice, is ambiguous, and the request bypasses the cache.
    """
    if header is None:
        return False
    if "," in header:
        return True
    seen = [name for name, _ in cookie_pairs(header) if name in names]
    return len(seen) != len(set(seen))


def _named_cookies(header: str | None, names: frozenset[str]) -> str | None:
    if header is None:
        return None
    if ambiguous_cookies(header, names):
        # Never looked up nor stored (plan_request bypasses it); a value of its own anyway.
        return "\n" + header
    found = {name: value for name, value in cookie_pairs(header) if name in names}
    return "; ".join(f"{name}={found[name]}" for name in sorted(found)) if found else None


def _field_value(headers: Mapping[str, str], name: str) -> str | None:
    # Several lines of one field are kept apart ("\n" is in no field value: servers
    # refuse it): Starlette's headers[name] reads the first line, so "X: a" + "X: b"
    # is not "X: a,b" to the app, and must not be to the cache.
    get_all = getattr(headers, "get_all", None)
    lines: list[str] = get_all(name) if get_all is not None else []
    if len(lines) <= 1:
        raw = headers.get(name)
        lines = [] if raw is None else [raw]
    if not lines:
        return None
    if name in _LIST_FIELDS:
        # RFC 9111 §4.1: whitespace around the commas of a list means nothing.
        return "\n".join(_COMMA_SPACE.sub(",", line.strip()) for line in lines)
    return "\n".join(line.strip() for line in lines)


def vary_values(
    headers: Mapping[str, str], fields: tuple[str, ...], cookies: frozenset[str]
) -> tuple[tuple[str, str | None], ...]:
    """The request's values of the ``Vary`` fields, normalised (RFC 9111 §4.1).

    An absent field stays distinct from an empty one, and a field sent on several lines
    from one line holding the same values joined. Whitespace around commas is dropped in
    the lists whose meaning it cannot change (``Accept``, ``Accept-Encoding``, ...), and
    only there: an app may read any other value as it is. When the route names cookies,
    ``Cookie`` contributes only those cookies.
    """
    values: list[tuple[str, str | None]] = []
    for name in fields:
        if name == "cookie" and cookies:
            values.append((name, _named_cookies(headers.get("cookie"), cookies)))
        else:
            values.append((name, _field_value(headers, name)))
    return tuple(values)


def _digest(*parts: str) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        hasher.update(len(data).to_bytes(8, "big"))  # length-prefixed: no two inputs collide
        hasher.update(data)
    return hasher.hexdigest()


def url_digest(url: str) -> str:
    """A fixed-length key part for an absolute URL (client input never reaches a key)."""
    return _digest(url)


def variant_digest(values: tuple[tuple[str, str | None], ...]) -> str:
    """A fixed-length key part for the values :func:`vary_values` returned."""
    flat: list[str] = []
    for name, value in values:
        flat.extend((name, "-" if value is None else "+" + value))
    return _digest(*flat)
