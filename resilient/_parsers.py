"""Strict parsers for setting values. Strictly private.

Each parser takes the raw text, or a typed value given in code or in framework config
(``30``, ``timedelta(seconds=30)``, ``True``), and returns the value, or raises
``ValueError``; :mod:`resilient.config` turns that into a
:class:`~resilient.errors.ConfigurationError` naming the variable or the keyword. The
environment and keyword arguments go through the same parsers, so they accept the same
values: a range is written once, here.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
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


#: The longest duration accepted. Longer ones are mistakes (a 400-digit number is
#: infinite as a float), and Redis refuses expiries past about 292 million years anyway.
MAX_SECONDS = 10 * 365 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Parser:
    """A named parser; ``expected`` is the phrase used in error messages and the docs.

    ``parse`` reads text; ``typed``, when set, checks a value that is not text (from code
    or framework config). Without it, such a value is read as its text.
    """

    kind: str
    expected: str
    parse: Callable[[str], object]
    typed: Callable[[object], object] | None = None
    choices: tuple[str, ...] = ()  # what a choice() accepts, for code that lists them

    def convert(self, raw: object) -> object:
        """``raw`` (text or a typed value) as this setting's value; ``ValueError`` if unusable."""
        if isinstance(raw, str):
            return self.parse(raw)
        if self.typed is not None:
            return self.typed(raw)
        return self.parse(as_text(raw))


def as_text(raw: object) -> str:
    """A typed value as setting text: ``None`` is empty, a list is comma-separated."""
    if raw is None:
        return ""
    if isinstance(raw, (list, tuple)):
        return ",".join(str(item) for item in raw)
    return str(raw)


def _number(raw: object) -> float:
    # bool is an int in Python; True seconds or True percent is a mistake, not 1.
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError
    return float(raw)


def _bool(raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError


def _typed_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    raise ValueError


def _seconds(value: float, *, positive: bool) -> float:
    if not math.isfinite(value) or value < 0 or value > MAX_SECONDS:
        raise ValueError
    if positive and value == 0:
        raise ValueError
    return value


def _duration_parsers(
    *, positive: bool
) -> tuple[Callable[[str], float], Callable[[object], float]]:
    def parse(raw: str) -> float:
        match = _DURATION.match(raw.lower())
        if match is None:
            raise ValueError
        return _seconds(float(match.group(1)) * _UNIT_SECONDS[match.group(2)], positive=positive)

    def typed(raw: object) -> float:
        seconds = raw.total_seconds() if isinstance(raw, timedelta) else _number(raw)
        return _seconds(seconds, positive=positive)

    return parse, typed


def _size(raw: str) -> int:
    match = _SIZE.match(raw)
    if match is None:
        raise ValueError
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _SIZE_BYTES[unit]


def _positive_int(raw: str) -> int:
    return _typed_positive_int(int(raw.strip()))


def _typed_positive_int(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ValueError
    return raw


def _non_negative_float(raw: str) -> float:
    return _typed_non_negative_float(float(raw.strip()))


def _typed_non_negative_float(raw: object) -> float:
    value = _number(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError
    return value


def _percentage(raw: str) -> float:
    return _typed_percentage(float(raw.strip()))


def _typed_percentage(raw: object) -> float:
    value = _number(raw)
    if not 0 < value <= 100:  # also false for nan
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
    parts = urlsplit(text)
    if parts.scheme not in BACKEND_SCHEMES or "://" not in text:
        raise ValueError
    if "," not in parts.netloc:
        # Raises ValueError for a port that is not a number: often a password with an
        # unencoded "#", "?" or "/", which cuts the URL short. (Multi-host URLs of
        # Cluster and Sentinel are split by the backend itself.)
        _ = parts.port
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

    def typed(raw: object) -> object:
        return None if raw is None else parser.convert(raw)

    return Parser(parser.kind, f"{parser.expected}, or empty", parse, typed)


def choice(*options: str) -> Parser:
    """A parser accepting exactly one of ``options`` (case-insensitive)."""

    def parse(raw: str) -> str:
        text = raw.strip().lower()
        if text not in options:
            raise ValueError
        return text

    return Parser("choice", "one of " + ", ".join(options), parse, choices=options)


BOOL = Parser("bool", "a boolean: 1, 0, true, false, yes or no", _bool, _typed_bool)
DURATION = Parser(
    "duration",
    "a duration of at most 10 years: seconds, or a number with ms, s, m or h (250ms, 30s)",
    *_duration_parsers(positive=False),
)
#: A duration that must not be 0: a timeout, a time to live, a lease.
POSITIVE_DURATION = Parser(
    "duration",
    "a duration above 0 and at most 10 years: seconds, or a number with ms, s, m or h (250ms, 30s)",
    *_duration_parsers(positive=True),
)
SIZE = Parser("size", "a size in bytes, optionally with kb, mb, kib or mib (1mib)", _size)
POSITIVE_INT = Parser("int", "a whole number of at least 1", _positive_int, _typed_positive_int)
NON_NEGATIVE_FLOAT = Parser(
    "float", "a number of at least 0", _non_negative_float, _typed_non_negative_float
)
PERCENTAGE = Parser(
    "percent", "a percentage above 0 and at most 100", _percentage, _typed_percentage
)
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
