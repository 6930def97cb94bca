"""How cached values become bytes for Redis: JSON by default, pickle only when signed.

:class:`JsonSerializer` round-trips what JSON cannot say by itself (tuples, sets, bytes,
dates and times, UUIDs, decimals, enums, dataclasses, dicts with non-string keys) through
tagged objects. It rebuilds only the dataclasses and enums it was told about: those named
in the cached function's return annotation, and ``types=``. Decoding never imports or
calls anything chosen by the stored data.

:class:`PickleSerializer` handles any picklable value, and is only accepted together with
an HMAC key: the entry is verified (one algorithm, fixed by configuration, compared with
:func:`hmac.compare_digest`) before ``pickle.loads`` ever sees it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import json
import pickle
import typing
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from resilient.errors import ResilientError

__all__ = [
    "JsonSerializer",
    "PickleSerializer",
    "SerializationError",
    "Serializer",
    "types_in_annotation",
]

_TAG = "\x00t"  # the key marking a tagged object; user dicts holding it are tagged too
_ESCAPED_TAG = "\\u0000t"  # how json.dumps writes it


class SerializationError(ResilientError):
    """A value could not be encoded, or stored bytes could not be decoded or verified.

    The cache never lets it reach the caller: a value that cannot be encoded is returned
    without being stored, and an entry that cannot be decoded is a miss. Both are counted
    in :attr:`CacheStats.errors <resilient.cache.CacheStats.errors>`.

    .. versionadded:: 0.1
    """


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes and back.

    Attributes:
        name: identifies the format inside stored entries; an entry written in another
            format is rejected, never decoded with it.
        requires_signature: True when decoding untrusted bytes is unsafe (pickle), so the
            cache refuses to use it without an HMAC key.

    .. versionadded:: 0.1
    """

    name: str
    requires_signature: bool

    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; raise :class:`SerializationError` when it cannot."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decode ``data``; raise :class:`SerializationError` when it cannot."""
        ...


class JsonSerializer:
    """JSON with tagged objects for the types JSON lacks; the safe default.

    Args:
        types: dataclasses and enums it may rebuild, besides those found in the cached
            function's return annotation.

    .. versionadded:: 0.1
    """

    name = "json"
    requires_signature = False

    def __init__(self, types: Iterable[type] = ()) -> None:
        self._types: dict[str, type] = {}
        # Built once: json.loads(..., object_hook=...) would build a decoder per call.
        self._tagged = _scanner(json.JSONDecoder(object_hook=self._unpack))
        self._plain = _scanner(json.JSONDecoder())
        self.register(*types)

    def register(self, *types: type) -> None:
        """Allow these dataclasses and enums (and those their fields name) to be rebuilt."""
        for cls in types:
            for found in types_in_annotation(cls):
                self._types[_name(found)] = found

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` as UTF-8 JSON."""
        try:
            return json.dumps(self._pack(value), separators=(",", ":")).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"cannot encode a {type(value).__name__}: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        """Decode bytes written by :meth:`dumps`."""
        try:
            text = data.decode("utf-8")
            # No tag anywhere (JSON escapes the NUL of a tag key as \u0000): the plain
            # decoder, without a Python hook per object, gives the same result.
            scan = self._tagged if _ESCAPED_TAG in text else self._plain
            # The C scanner itself: dumps() writes no surrounding whitespace to skip.
            value, end = scan(text, 0)
            if end != len(text):
                raise ValueError(f"extra data at {end}")
            return value
        except StopIteration:
            raise SerializationError("cannot decode a JSON entry: no value") from None
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise SerializationError(f"cannot decode a JSON entry: {exc}") from exc

    def _pack(self, value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            return value
        if kind is list:
            return [self._pack(item) for item in value]
        if kind is dict:
            if _TAG not in value and all(type(k) is str for k in value):
                return {k: self._pack(v) for k, v in value.items()}
            pairs = [[self._pack(k), self._pack(v)] for k, v in value.items()]
            return {_TAG: "map", "v": pairs}
        if kind is tuple:
            return {_TAG: "tuple", "v": [self._pack(item) for item in value]}
        if kind is set or kind is frozenset:
            tag = "set" if kind is set else "frozenset"
            return {_TAG: tag, "v": [self._pack(item) for item in value]}
        return self._pack_other(value)

    def _pack_other(self, value: Any) -> Any:
        kind = type(value)
        simple = _SIMPLE_PACKERS.get(kind)
        if simple is not None:
            return {_TAG: kind.__name__, "v": simple(value)}
        if isinstance(value, enum.Enum):
            self._check_known(kind)
            return {_TAG: "enum", "c": _name(kind), "v": self._pack(value.value)}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            self._check_known(kind)
            state = {f.name: self._pack(getattr(value, f.name)) for f in dataclasses.fields(value)}
            return {_TAG: "dataclass", "c": _name(kind), "v": state}
        raise TypeError(
            f"{_name(kind)} is not JSON-serializable here: annotate the function's return "
            "type with it (dataclasses and enums), pass JsonSerializer(types=...), or use "
            "the pickle serializer with an HMAC key"
        )

    def _check_known(self, cls: type) -> None:
        if self._types.get(_name(cls)) is not cls:
            raise TypeError(
                f"{_name(cls)} is not among the types this cache may rebuild: name it in "
                "the function's return annotation or in JsonSerializer(types=...)"
            )

    def _unpack(self, obj: dict[str, Any]) -> Any:
        tag = obj.get(_TAG)
        if tag is None:
            return obj
        payload = obj["v"]
        if tag == "tuple":
            return tuple(payload)
        if tag == "map":
            return {_hashable(k): v for k, v in payload}
        if tag == "set":
            return {_hashable(item) for item in payload}
        if tag == "frozenset":
            return frozenset(_hashable(item) for item in payload)
        unpack = _SIMPLE_UNPACKERS.get(tag)
        if unpack is not None:
            return unpack(payload)
        cls = self._types.get(obj["c"])
        if cls is None:
            raise ValueError(f"type {obj['c']!r} is not allowed here")
        if tag == "enum" and issubclass(cls, enum.Enum):
            return cls(payload)
        if tag == "dataclass" and dataclasses.is_dataclass(cls):
            return _rebuild(cls, payload)
        raise ValueError(f"unknown tag {tag!r}")


def _scanner(decoder: json.JSONDecoder) -> Callable[[str, int], tuple[Any, int]]:
    """The decoder's C scanner (set on the instance by ``JSONDecoder.__init__``)."""
    scan: Callable[[str, int], tuple[Any, int]] = vars(decoder)["scan_once"]
    return scan


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _hashable(value: Any) -> Any:
    # Keys of maps and members of sets were hashable when stored; lists came from tuples
    # only through tagging, so a plain list here means the entry was tampered with.
    if type(value) is list:
        raise ValueError("an unhashable value where a key was expected")
    return value


def _rebuild(cls: type, state: dict[str, Any]) -> Any:
    # Restore the stored fields as they were, without running __init__/__post_init__.
    names = {f.name for f in dataclasses.fields(cls)}
    if set(state) != names:
        raise ValueError(f"fields of {_name(cls)} do not match the stored entry")
    instance: Any = object.__new__(cls)
    for field_name, field_value in state.items():
        object.__setattr__(instance, field_name, field_value)
    return instance


_SIMPLE_PACKERS: dict[type, Callable[[Any], Any]] = {
    bytes: lambda v: base64.b64encode(v).decode("ascii"),
    bytearray: lambda v: base64.b64encode(v).decode("ascii"),
    datetime.datetime: lambda v: v.isoformat(),
    datetime.date: lambda v: v.isoformat(),
    datetime.time: lambda v: v.isoformat(),
    datetime.timedelta: lambda v: [v.days, v.seconds, v.microseconds],
    uuid.UUID: lambda v: v.hex,
    decimal.Decimal: str,
}
_SIMPLE_UNPACKERS: dict[str, Callable[[Any], Any]] = {
    "bytes": lambda v: base64.b64decode(v, validate=True),
    "bytearray": lambda v: bytearray(base64.b64decode(v, validate=True)),
    "datetime": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
    "timedelta": lambda v: datetime.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "UUID": lambda v: uuid.UUID(hex=v),
    "Decimal": decimal.Decimal,
}


class PickleSerializer:
    """Pickle, for values JSON cannot hold; the cache requires an HMAC key with it.

    Args:
        protocol: the pickle protocol used to write.

    .. versionadded:: 0.1
    """

    name = "pickle"
    requires_signature = True

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, value: Any) -> bytes:
        """Pickle ``value``."""
        try:
            return pickle.dumps(value, protocol=self.protocol)
        except Exception as exc:
            raise SerializationError(f"cannot pickle a {type(value).__name__}: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        """Unpickle ``data``; only ever called on an entry whose signature was verified."""
        try:
            return pickle.loads(data)  # verified by HMAC before this call
        except Exception as exc:
            raise SerializationError(f"cannot unpickle an entry: {exc}") from exc


def types_in_annotation(annotation: Any) -> list[type]:
    """Dataclasses and enums named by ``annotation``, and by their fields, recursively."""
    found: list[type] = []
    seen: set[int] = set()
    pending: list[Any] = [annotation]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        pending.extend(typing.get_args(current))
        if isinstance(current, type) and issubclass(current, enum.Enum):
            found.append(current)
        elif isinstance(current, type) and dataclasses.is_dataclass(current):
            found.append(current)
            try:
                hints = typing.get_type_hints(current)
            except Exception:  # unresolvable forward references: the fields stay unknown
                hints = {}
            pending.extend(hints.values())
    return found
