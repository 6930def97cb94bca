"""Strict parsers for setting values. Strictly private.

Each parser takes the raw text and returns the typed value, or raises ``ValueError`` with
a description of what was expected; :mod:`resilient.config` turns that into a
:class:`~resilient.errors.ConfigurationError` naming the variable.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kib|mib|gib|kb|mb|gb)?\s*$", re.IGNORECASE)
_SIZE_BYTES = {
    None: 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Parser:
    """A named parser; ``expected`` is the phrase used in error messages and the docs."""

    kind: str
    expected: str
    parse: Callable[[str], object]


def _bool(raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError


def _duration(raw: str) -> float:
    match = _DURATION.match(raw.lower())
    if match is None:
        raise ValueError
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _size(raw: str) -> int:
    match = _SIZE.match(raw)
    if match is None:
        raise ValueError
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _SIZE_BYTES[unit]


def _positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value < 1:
        raise ValueError
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw.strip())
    if not math.isfinite(value) or value < 0:
        raise ValueError
    return value


def _percentage(raw: str) -> float:
    value = float(raw.strip())
    if not 0 < value <= 100:
        raise ValueError
    return value


def _text(raw: str) -> str:
    return raw.strip()


def _limits(raw: str) -> str:
    from limits import parse_many

    text = raw.strip()
    if text:
        parse_many(text)  # raises ValueError on a malformed limit
    return text


def _cidrs(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    return tuple(ipaddress.ip_network(part, strict=False) for part in parts)


BACKEND_SCHEMES = (
    "memory",
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "redis+sentinel",
)


def _backend_url(raw: str) -> str:
    text = raw.strip()
    scheme = urlsplit(text).scheme
    if scheme not in BACKEND_SCHEMES or "://" not in text:
        raise ValueError
    return text


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _names(raw: str) -> tuple[str, ...]:
    parts = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not all(_TOKEN.match(part) for part in parts):
        raise ValueError
    return parts


def _optional(parser: Parser) -> Parser:
    def parse(raw: str) -> object:
        return None if raw.strip() == "" else parser.parse(raw)

    return Parser(parser.kind, f"{parser.expected}, or empty", parse)


def choice(*options: str) -> Parser:
    """A parser accepting exactly one of ``options`` (case-insensitive)."""

    def parse(raw: str) -> str:
        text = raw.strip().lower()
        if text not in options:
            raise ValueError
        return text

    return Parser("choice", "one of " + ", ".join(options), parse)


BOOL = Parser("bool", "a boolean: 1, 0, true, false, yes or no", _bool)
DURATION = Parser(
    "duration",
    "a duration: seconds, or a number with ms, s, m or h (250ms, 30s)",
    _duration,
)
SIZE = Parser("size", "a size in bytes, optionally with kb, mb, kib or mib (1mib)", _size)
POSITIVE_INT = Parser("int", "a whole number of at least 1", _positive_int)
NON_NEGATIVE_FLOAT = Parser("float", "a number of at least 0", _non_negative_float)
PERCENTAGE = Parser("percent", "a percentage above 0 and at most 100", _percentage)
TEXT = Parser("str", "text", _text)
LIMITS = Parser("limits", "rate limits in limits' syntax (10/second;500/hour)", _limits)
CIDRS = Parser("cidrs", "comma-separated IP networks (10.0.0.0/8,::1)", _cidrs)
BACKEND_URL = Parser(
    "url",
    "a backend URL with a scheme among " + ", ".join(BACKEND_SCHEMES),
    _backend_url,
)
OPTIONAL_BACKEND_URL = _optional(BACKEND_URL)
OPTIONAL_TEXT = _optional(TEXT)
OPTIONAL_DURATION = _optional(DURATION)
NAMES = Parser("names", "comma-separated names (HTTP tokens: session_lang,theme)", _names)
