"""``Cache-Control`` directives (RFC 9111 §5.2, RFC 5861), parsed once into a value.

Parsing never fails. Directive names are case-insensitive and may repeat (the first
occurrence wins, as RFC 9111 §4.2.1 allows); arguments may be tokens or quoted strings.
An unusable ``max-age`` or ``s-maxage`` counts as 0, so the response is stale rather than
fresh for a wrong reason; an unusable argument of any other directive ignores it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from resilient.sansio.http import split_list

__all__ = ["MAX_DELTA", "CacheControl", "parse_cache_control", "parse_targeted"]

#: The largest delta-seconds value kept; larger ones are clamped (RFC 9111 §1.2.2).
MAX_DELTA = 2_147_483_648

_EMPTY: Mapping[str, str | None] = {}


@dataclass(frozen=True, slots=True)
class CacheControl:
    """The directives of one message; request and response directives share the type.

    Boolean directives are ``True`` when present in any form (``no-cache`` and
    ``no-cache="Set-Cookie"`` alike: treating the qualified forms as unqualified is the
    safe reading RFC 9111 §5.2.2.4 and §5.2.2.7 allow). Delta-seconds directives are
    ``None`` when absent. ``max-stale`` without a value is :data:`MAX_DELTA`.

    .. versionadded:: 0.1
    """

    directives: Mapping[str, str | None]
    no_store: bool = False
    no_cache: bool = False
    private: bool = False
    public: bool = False
    must_revalidate: bool = False
    proxy_revalidate: bool = False
    only_if_cached: bool = False
    max_age: int | None = None
    s_maxage: int | None = None
    min_fresh: int | None = None
    max_stale: int | None = None
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.directives

    @property
    def has_freshness(self) -> bool:
        """Whether an explicit lifetime is given here (``s-maxage`` or ``max-age``)."""
        return self.s_maxage is not None or self.max_age is not None


def _delta(argument: str | None) -> int | None:
    if argument is None or not argument.isascii() or not argument.isdigit():
        return None
    return min(int(argument), MAX_DELTA)


def _unquote(argument: str) -> str:
    if len(argument) >= 2 and argument[0] == argument[-1] == '"':
        inner = argument[1:-1]
        out = []
        escaped = False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return argument


def _directives(value: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for member in split_list(value):
        name, sep, argument = member.partition("=")
        key = name.strip().lower()
        if key and key not in found:
            found[key] = _unquote(argument.strip()) if sep else None
    return found


_NONE = CacheControl(_EMPTY)


def parse_cache_control(value: str | None) -> CacheControl:
    """The directives of a ``Cache-Control`` field value (``None`` when absent).

    .. versionadded:: 0.1
    """
    if not value:
        return _NONE
    found = _directives(value)
    if not found:
        return _NONE

    def lifetime(name: str) -> int | None:
        if name not in found:
            return None
        delta = _delta(found[name])
        return 0 if delta is None else delta

    max_stale: int | None = None
    if "max-stale" in found:
        argument = found["max-stale"]
        max_stale = MAX_DELTA if argument is None else _delta(argument)
    return CacheControl(
        found,
        no_store="no-store" in found,
        no_cache="no-cache" in found,
        private="private" in found,
        public="public" in found,
        must_revalidate="must-revalidate" in found,
        proxy_revalidate="proxy-revalidate" in found,
        only_if_cached="only-if-cached" in found,
        max_age=lifetime("max-age"),
        s_maxage=lifetime("s-maxage"),
        min_fresh=_delta(found.get("min-fresh")),
        max_stale=max_stale,
        stale_while_revalidate=_delta(found.get("stale-while-revalidate")),
        stale_if_error=_delta(found.get("stale-if-error")),
    )


def parse_targeted(value: str | None) -> CacheControl | None:
    """The directives of a targeted field such as ``CDN-Cache-Control`` (RFC 9213), or
    ``None`` when it is absent, empty or unusable, and ``Cache-Control`` then applies.

    The field is a structured Dictionary (RFC 8941) of the same directives: a bare name
    or ``name=?1`` is present, ``name=?0`` absent; parameters (``;x``) are ignored.

    .. versionadded:: 0.1
    """
    if not value:
        return None
    members = []
    for member in split_list(value):
        name, sep, argument = member.split(";", 1)[0].partition("=")
        argument = argument.strip()
        if sep and argument == "?0":
            continue
        members.append(
            name.strip() if not sep or argument == "?1" else f"{name.strip()}={argument}"
        )
    parsed = parse_cache_control(", ".join(members))
    return parsed if parsed.directives else None
