"""Serializers and the entry format: what round-trips, what is refused, what is verified."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import pickle
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest

from resilient.cache import JsonSerializer, PickleSerializer, SerializationError, Serializer
from resilient.cache.serializers import types_in_annotation
from resilient.cache.wire import EntryCodec
from resilient.errors import ConfigurationError


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Address:
    city: str
    since: datetime.date


@dataclasses.dataclass
class User:
    id: uuid.UUID
    name: str
    address: Address
    level: Level
    tags: tuple[str, ...] = ()
    avatar: bytes = b""
    balance: decimal.Decimal = decimal.Decimal("0")
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.extra.setdefault("created_by_init", True)


class Tricky(dict[str, Any]):
    """A dict subclass: not a plain dict, so not silently encoded as one."""


ROUND_TRIPS: list[Any] = [
    None, True, 0, -3, 2**70, 1.5, float("inf"), "", "é", [], [1, [2, "x"]], {"a": None},
    (), (1, (2, 3)), [(1, 2)], {1: "int key", (1, 2): "tuple key"}, {"\x00t": "looks tagged"},
    {1, 2}, frozenset({"a"}), b"\x00\xff", bytearray(b"xy"),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
    datetime.datetime(2024, 1, 2, 3, 4), datetime.date(2024, 1, 2), datetime.time(1, 2, 3),
    datetime.timedelta(days=-1, seconds=5, microseconds=7), uuid.UUID(int=99),
    decimal.Decimal("12.340"), decimal.Decimal("NaN"),
]  # fmt: skip


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_json_round_trips_common_types(value: Any) -> None:
    """Values come back equal and of the same type, all the way down."""
    serializer = JsonSerializer()
    back = serializer.loads(serializer.dumps(value))
    if isinstance(value, decimal.Decimal) and value.is_nan():
        assert back.is_nan()
        return
    assert back == value
    assert type(back) is type(value)
    if isinstance(value, (list, tuple)) and value:
        assert [type(item) for item in back] == [type(item) for item in value]


def test_json_round_trips_registered_dataclasses_and_enums() -> None:
    """A dataclass named by the registered type is rebuilt, nested ones included."""
    serializer = JsonSerializer(types=[User])
    user = User(uuid.uuid4(), "ada", Address("Paris", datetime.date(2020, 1, 1)), Level.HIGH,
                ("a", "b"), b"\x89PNG", decimal.Decimal("9.99"))  # fmt: skip
    back = serializer.loads(serializer.dumps(user))
    assert back == user
    assert type(back.address) is Address
    assert back.level is Level.HIGH
    assert back.extra == {"created_by_init": True}  # restored, __post_init__ not rerun


def test_types_are_found_through_generic_annotations() -> None:
    """list[User] | None names User, and User's fields name Address and Level."""
    found = set(types_in_annotation(list[User] | None))
    assert found == {User, Address, Level}


def test_json_refuses_unregistered_and_unknown_types() -> None:
    """Encoding an unknown class fails loudly; it is never stored in a lossy form."""
    serializer = JsonSerializer()
    address = Address("Oslo", datetime.date(2021, 1, 1))
    for value in (address, Level.LOW, object(), Tricky(a=1)):
        with pytest.raises(SerializationError):
            serializer.dumps(value)


def test_json_decoding_never_builds_types_chosen_by_the_data() -> None:
    """A tag naming a class that was not registered is rejected, not imported."""
    serializer = JsonSerializer(types=[Address])
    for forged in (
        {"\x00t": "dataclass", "c": "subprocess.Popen", "v": {"args": ["true"]}},
        {"\x00t": "enum", "c": "tests.cache.test_serializers.Level", "v": 1},
        {"\x00t": "dataclass", "c": "tests.cache.test_serializers.Address", "v": {"x": 1}},
        {"\x00t": "nonsense", "v": 1},
        {"\x00t": "set", "v": [[1]]},
    ):
        with pytest.raises(SerializationError):
            serializer.loads(json.dumps(forged).encode())
    with pytest.raises(SerializationError):
        serializer.loads(b"{not json")


def test_serializers_satisfy_the_protocol() -> None:
    """Both built-ins are Serializers; pickle is the one that needs a signature."""
    assert isinstance(JsonSerializer(), Serializer)
    assert isinstance(PickleSerializer(), Serializer)
    assert not JsonSerializer.requires_signature
    assert PickleSerializer.requires_signature
    value = {"a": (1, {2})}
    assert PickleSerializer().loads(PickleSerializer().dumps(value)) == value
    with pytest.raises(SerializationError):
        PickleSerializer().dumps(lambda: None)
    with pytest.raises(SerializationError):
        PickleSerializer().loads(b"not a pickle")


def test_pickle_without_a_key_is_refused() -> None:
    """The codec refuses pickle unless entries are signed."""
    with pytest.raises(ConfigurationError, match="hmac_key"):
        EntryCodec(PickleSerializer(), None, "sha256")
    with pytest.raises(ConfigurationError, match="hmac_algorithm"):
        EntryCodec(JsonSerializer(), "k", "md5")


class _Marker:
    """Unpickling this creates a file: proof that pickle.loads ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def test_signed_entries_verify_before_unpickling(tmp_path: Path) -> None:
    """Unsigned, wrongly signed, re-keyed and truncated entries never reach pickle.loads."""
    marker = tmp_path / "executed"
    codec = EntryCodec(PickleSerializer(), "secret", "sha256")
    good = codec.encode("app:f:i1", {"ok": 1}, 100.0, 0.5, 7)
    assert codec.decode("app:f:i1", good) == ({"ok": 1}, 100.0, 0.5, 7)
    evil_payload = pickle.dumps(_Marker(marker))
    # A well-formed pickle entry, minus a valid signature: what an attacker can write.
    forged_body = struct.pack("<3sddQB", b"RC1", 1e12, 0.0, 1, 6) + b"pickle" + evil_payload
    other_key = EntryCodec(PickleSerializer(), "other-secret", "sha256")
    candidates = [
        evil_payload,
        forged_body,
        b"\x00" * 32 + forged_body,
        other_key.encode("app:f:i1", _Marker(marker), 1.0, 0.0, 1),
        codec.encode("app:f:i2", _Marker(marker), 1.0, 0.0, 1),  # valid, for another key
        EntryCodec(PickleSerializer(), "secret", "sha512").encode("app:f:i1", 1, 1.0, 0.0, 1),
        good[:10],
    ]
    for data in candidates:
        with pytest.raises(SerializationError):
            codec.decode("app:f:i1", data)
    assert not marker.exists()


def test_entry_format_is_pinned_to_the_configured_serializer() -> None:
    """An entry written as JSON is not decoded by a pickle cache and vice versa."""
    json_codec = EntryCodec(JsonSerializer(), "k", "sha256")
    pickle_codec = EntryCodec(PickleSerializer(), "k", "sha256")
    data = json_codec.encode("key", [1], 1.0, 0.0, 1)
    with pytest.raises(SerializationError, match="format"):
        pickle_codec.decode("key", data)
    with pytest.raises(SerializationError, match="format"):
        EntryCodec(JsonSerializer(), None, "sha256").decode("key", b"XXX" + b"\x00" * 30)
    with pytest.raises(SerializationError, match="truncated"):
        EntryCodec(JsonSerializer(), None, "sha256").decode("key", b"RC1")


def test_malformed_json_entries_are_rejected() -> None:
    """Trailing data, empty payloads and unknown tags of known classes all fail."""
    serializer = JsonSerializer(types=[Address])
    for data in (b"[1] [2]", b"", b'{"\\u0000t": "weird", "c": '
                 b'"tests.cache.test_serializers.Address", "v": 1}'):  # fmt: skip
        with pytest.raises(SerializationError):
            serializer.loads(data)


@dataclasses.dataclass
class Dangling:
    other: Missing  # type: ignore[name-defined]  # noqa: F821 - never defined on purpose


def test_unresolvable_field_annotations_are_skipped() -> None:
    """A dataclass whose field types cannot be resolved is still registered itself."""
    assert types_in_annotation(Dangling) == [Dangling]


def test_a_serializer_name_must_fit_the_header() -> None:
    """The format name is stored in one length byte."""

    class Verbose(JsonSerializer):
        name = "x" * 300

    with pytest.raises(ConfigurationError, match="serializer"):
        EntryCodec(Verbose(), None, "sha256")
