"""Stable cache keys: the same arguments give the same key in every process and every run.

Two forms of one key exist. In memory, arguments of the common exact types (``str``,
``int``, ``bytes``, ``None`` and classes) are the key as they are: a bare value for a
one-argument function, a tuple otherwise. Everything else is encoded to text by
:func:`encode_arguments`, which is also what names the entry in Redis.

The text encoding never calls ``repr()`` of an arbitrary object nor ``hash()`` (salted per
process): each supported type has a tag and an unambiguous form (strings carry their
length, containers their brackets). An argument of an unsupported type raises
:class:`TypeError` naming the argument; give the class a ``__cache_key__()`` method, pass
``key=`` or leave the argument out with ``ignore=``.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

__all__ = [
    "FAST_TYPES",
    "MAX_ARGUMENT_TEXT",
    "SLOW",
    "argument_text_of",
    "encode_arguments",
    "encode_value",
    "finish_argument_text",
    "key_prefix",
    "slow_key",
]

#: Exact types used as memory keys untouched. ``bool`` and ``float`` are left out on
#: purpose: ``1 == True == 1.0`` would make ``f(1)``, ``f(True)`` and ``f(1.0)`` share an
#: entry. Classes compare by identity, so they are safe and make classmethods cheap.
FAST_TYPES: frozenset[type] = frozenset({str, int, bytes, type(None), type})

#: Argument text longer than this is replaced by its BLAKE2b digest.
MAX_ARGUMENT_TEXT = 200

_MAX_DEPTH = 32


class _SlowMarker:
    """First item of a memory key built from encoded text; equal to nothing else."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<encoded key>"


#: The marker: a key ``(SLOW, text)`` never equals a key made of fast values.
SLOW = _SlowMarker()


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _join(items: Sequence[Any], out: list[str], where: str, depth: int) -> None:
    for index, item in enumerate(items):
        if index:
            out.append(",")
        _encode(item, out, where, depth)


def _encode(value: Any, out: list[str], where: str, depth: int) -> None:
    kind = type(value)
    if kind is str:
        out.append(f"s{len(value)}:{value}")
    elif kind is int:
        out.append(_int(value))
    elif value is None:
        out.append("n")
    elif kind is bool:
        out.append("T" if value else "F")
    elif kind is float:
        out.append("f" + float.__repr__(value))
    elif kind is bytes or kind is bytearray:
        data = bytes(value)
        out.append(f"b{len(data)}:{data.hex()}")
    else:
        if depth >= _MAX_DEPTH:
            raise TypeError(f"cache key argument {where!r} is nested too deeply")
        _encode_other(value, out, where, depth + 1)


def _int(value: int) -> str:
    try:
        return f"i{value}"
    except ValueError:  # beyond the int-to-str digit limit: hex has none
        return "x" + format(value, "x")


def _encode_other(value: Any, out: list[str], where: str, depth: int) -> None:
    kind = type(value)
    if kind is tuple or kind is list:
        out.append("t(" if kind is tuple else "l(")
        _join(value, out, where, depth)
        out.append(")")
    elif kind is dict:
        pairs = sorted((encode_value(k, where), encode_value(v, where)) for k, v in value.items())
        out.append("m(" + ",".join(f"{k}={v}" for k, v in pairs) + ")")
    elif kind is set or kind is frozenset:
        items = sorted(encode_value(item, where) for item in value)
        out.append("e(" + ",".join(items) + ")")
    elif hasattr(kind, "__cache_key__"):
        own = value.__cache_key__()
        out.append(f"K{_qualified(kind)}(")
        _encode(own, out, where, depth)
        out.append(")")
    elif isinstance(value, enum.Enum):
        out.append(f"E{_qualified(kind)}.{value.name}")
    elif isinstance(value, type):
        out.append(f"C{_qualified(value)}")
    elif isinstance(value, datetime.datetime):
        out.append("D" + value.isoformat())
    elif isinstance(value, datetime.date):
        out.append("Y" + value.isoformat())
    elif isinstance(value, datetime.time):
        out.append("H" + value.isoformat())
    elif isinstance(value, datetime.timedelta):
        out.append(f"R{value.days}/{value.seconds}/{value.microseconds}")
    elif isinstance(value, uuid.UUID):
        out.append("U" + value.hex)
    elif isinstance(value, decimal.Decimal):
        out.append("M" + str(value))
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        out.append(f"N{_qualified(kind)}(")
        _join(value, out, where, depth)
        out.append(")")
    elif dataclasses.is_dataclass(value):
        _encode_dataclass(value, out, where, depth)
    else:
        _encode_subclass(value, out, where, depth)


def _encode_dataclass(value: Any, out: list[str], where: str, depth: int) -> None:
    if not value.__dataclass_params__.eq:
        # eq=False says two instances are different things even with equal fields (a
        # session, a connection): keyed by fields they would share an entry, and identity
        # gives no key that is stable across processes.
        raise _unsupported(value, where, "a dataclass with eq=False compares by identity")
    # Every field, compare=False ones too: compare= is about ==, not about what the
    # function reads. Leaving a field out let User(name="a", id=1) get the entry of
    # User(name="a", id=2): another user's data. Keeping it costs at worst a miss more,
    # or a TypeError naming the argument when the field has no stable form.
    out.append(f"P{_qualified(type(value))}(")
    _join([getattr(value, f.name) for f in dataclasses.fields(value)], out, where, depth)
    out.append(")")


def _encode_subclass(value: Any, out: list[str], where: str, depth: int) -> None:
    # Subclasses of the plain types (a str subclass, a list subclass...) key by value.
    bases: tuple[type, ...] = (str, int, float, bytes, tuple, list, dict, frozenset, set)
    for base in bases:
        if isinstance(value, base):
            _encode(base(value), out, where, depth)
            return
    raise _unsupported(value, where)


def _unsupported(value: object, where: str, reason: str = "") -> TypeError:
    """The error for an argument without a stable key form, with the ways out."""
    because = f" ({reason})" if reason else ""
    return TypeError(
        f"cannot build a stable cache key from argument {where!r} of type "
        f"{_qualified(type(value))}{because}: give the class a __cache_key__() method "
        "returning plain values, pass key= to the decorator, or leave the argument out "
        "with ignore="
    )


def encode_value(value: object, where: str = "value") -> str:
    """The stable text form of one value (raises :class:`TypeError` when unsupported)."""
    out: list[str] = []
    _encode(value, out, where, 0)
    return "".join(out)


def encode_arguments(values: Sequence[object], names: Sequence[str]) -> str:
    """The stable text form of the keyed arguments, in parameter order, ``,``-separated."""
    out: list[str] = []
    for index, (value, name) in enumerate(zip(values, names, strict=True)):
        if index:
            out.append(",")
        _encode(value, out, name, 0)
    return "".join(out)


def finish_argument_text(text: str) -> str:
    """``text``, or its digest when it is long or holds braces.

    Braces matter because Redis Cluster places a key by the text between the first ``{``
    and ``}``: left in, user input could choose the slot of every key.
    """
    if len(text) <= MAX_ARGUMENT_TEXT and "{" not in text and "}" not in text:
        return text
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20)
    return "#" + digest.hexdigest()


def slow_key(values: Sequence[object], names: Sequence[str]) -> tuple[_SlowMarker, str]:
    """The memory key for arguments that are not all of :data:`FAST_TYPES`."""
    return (SLOW, encode_arguments(values, names))


def key_prefix(namespace: str, version: str, name: str) -> str:
    """``"<namespace>:<version>:<name>:"``, leaving out empty parts."""
    return "".join(f"{part}:" for part in (namespace, version, name) if part)


def argument_text_of(key: Any, names: Sequence[str], custom: bool) -> str:
    """The argument text of a memory key, as stored in Redis (before hashing)."""
    if custom:
        return encode_value(key, "key")
    if type(key) is tuple and len(key) == 2 and key[0] is SLOW:
        text: str = key[1]
        return text
    if len(names) == 1:
        return encode_value(key, names[0])
    return encode_arguments(key, names)
