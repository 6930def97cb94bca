"""Keys: stable across processes and runs, unambiguous, and strict about what they accept."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from resilient.cache import cached
from resilient.cache.decorator import engine_of
from resilient.cache.keys import (
    MAX_ARGUMENT_TEXT,
    SLOW,
    encode_value,
    finish_argument_text,
    key_prefix,
)
from resilient.config import Settings
from resilient.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings.from_env({})


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Pair(NamedTuple):
    left: int
    right: int


class Account:
    def __init__(self, number: str) -> None:
        self.number = number

    def __cache_key__(self) -> str:
        return self.number


class Opaque:
    """No __cache_key__: its repr holds a memory address, so it must never key a cache."""


SAMPLES: list[Any] = [
    None, True, False, 0, 1, -7, 2**100, 1.0, -0.0, float("inf"), "", "a", "a,b", "s1:a",
    b"\x00\xff", bytearray(b"ab"), (), (1,), [1, "x"], {"b": 1, "a": [2]}, {3, 1, 2},
    frozenset({"z"}), Color.RED, Point(1, 2), Pair(1, 2), Account("42"), int, Color,
    datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
    datetime.date(2024, 5, 1), datetime.time(12, 30), datetime.timedelta(days=1, seconds=2),
    uuid.UUID(int=7), decimal.Decimal("1.50"),
]  # fmt: skip

SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from tests.cache.test_keys import SAMPLES, encode_value
print(json.dumps([encode_value(v) for v in SAMPLES]))
"""


def test_encodings_are_identical_in_another_process_with_another_hash_seed() -> None:
    """A fresh interpreter with a different hash seed produces the very same key text."""
    here = [encode_value(value) for value in SAMPLES]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(root=str(ROOT))],
        capture_output=True, text=True, check=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert json.loads(result.stdout) == here


def test_encodings_are_unambiguous() -> None:
    """Every sample encodes differently, including values Python considers equal."""
    texts = [encode_value(value) for value in SAMPLES]
    assert len(set(texts)) == len(texts)
    assert len({encode_value(1), encode_value(True), encode_value(1.0)}) == 3
    # Separators inside strings cannot fake a second argument: lengths are encoded.
    assert encode_value(("a,s1:b",)) != encode_value(("a", "b"))


def test_sets_and_dicts_encode_in_a_stable_order() -> None:
    """Insertion order and hash order do not matter."""
    assert encode_value({"a": 1, "b": 2}) == encode_value({"b": 2, "a": 1})
    assert encode_value({"x", "y", "z"}) == encode_value({"z", "y", "x"})


def test_unsupported_argument_is_rejected_with_guidance() -> None:
    """An object without a stable form raises TypeError naming the argument and the fixes."""
    with pytest.raises(TypeError) as caught:
        encode_value(Opaque(), "client")
    message = str(caught.value)
    assert "'client'" in message
    assert "Opaque" in message
    assert "__cache_key__" in message
    assert "key=" in message
    assert "ignore=" in message


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    id: int = dataclasses.field(compare=False)


@dataclasses.dataclass(eq=False)
class Session:
    token: str


@dataclasses.dataclass(eq=False)
class KeyedSession:
    token: str

    def __cache_key__(self) -> str:
        return self.token


def test_dataclass_fields_left_out_of_equality_still_key() -> None:
    """``compare=False`` is about ``==``, not about what the function reads: two users
    with one name are two entries."""
    assert User("ann", 1) == User("ann", 2)
    assert encode_value(User("ann", 1)) != encode_value(User("ann", 2))
    calls: list[int] = []

    @cached(ttl=60, settings=SETTINGS)
    def profile(user: User) -> str:
        calls.append(user.id)
        return f"profile of #{user.id}"

    assert profile(User("ann", 1)) == "profile of #1"
    assert profile(User("ann", 2)) == "profile of #2"
    assert profile(User("ann", 2)) == "profile of #2"
    assert calls == [1, 2]


def test_dataclass_with_identity_equality_is_rejected_with_guidance() -> None:
    """``eq=False`` instances are distinct objects whatever their fields; identity has no
    stable key, so the usual guidance applies (and ``__cache_key__`` is honoured)."""
    with pytest.raises(TypeError, match="eq=False") as caught:
        encode_value(Session("t"), "session")
    assert "'session'" in str(caught.value)
    assert "__cache_key__" in str(caught.value)
    assert encode_value(KeyedSession("t")) == encode_value(KeyedSession("t"))

    @cached(ttl=60, settings=SETTINGS)
    def whoami(session: Session) -> str:
        return session.token

    with pytest.raises(TypeError, match="eq=False"):
        whoami(Session("t"))


def test_deep_nesting_is_rejected() -> None:
    """Runaway nesting is refused instead of recursing without end."""
    value: Any = 1
    for _ in range(100):
        value = [value]
    with pytest.raises(TypeError, match="nested too deeply"):
        encode_value(value)


def test_long_text_and_braces_are_hashed() -> None:
    """Long argument text and text with braces become a digest; short text stays readable."""
    assert finish_argument_text("i1") == "i1"
    long = "s" * (MAX_ARGUMENT_TEXT + 1)
    hashed = finish_argument_text(long)
    assert hashed.startswith("#")
    assert len(hashed) == 41
    assert finish_argument_text(long) == hashed
    assert finish_argument_text("s3:{a}").startswith("#")


def test_key_prefix_skips_empty_parts() -> None:
    """Namespace and version are optional."""
    assert key_prefix("", "", "mod.f") == "mod.f:"
    assert key_prefix("app", "v2", "mod.f") == "app:v2:mod.f:"


def test_fast_arguments_key_memory_as_they_are() -> None:
    """Plain str/int/bytes/None arguments are the key; other types go through the text form."""
    seen: list[object] = []

    @cached(ttl=60, settings=SETTINGS)
    def one(x: object) -> object:
        seen.append(x)
        return x

    one(1)
    one("1")
    one(True)
    one(1.0)
    keys = engine_of(one).store.keys()
    assert 1 in keys
    assert "1" in keys
    encoded = [key for key in keys if isinstance(key, tuple)]
    assert sorted(text for _, text in encoded) == ["T", "f1.0"]
    assert all(marker is SLOW for marker, _ in encoded)
    assert seen == [1, "1", True, 1.0]  # 1, True and 1.0 never share an entry


def test_positional_keyword_and_default_forms_share_one_entry() -> None:
    """The arguments are bound to the signature before the key is built."""
    calls: list[tuple[int, int, int]] = []

    @cached(ttl=60, settings=SETTINGS)
    def add(a: int, b: int = 2, *, c: int = 3) -> int:
        calls.append((a, b, c))
        return a + b + c

    assert add(1) == add(1, 2) == add(1, b=2) == add(a=1, c=3) == add(1, 2, c=3) == 6
    assert calls == [(1, 2, 3)]
    assert add(1, c=4) == 7
    assert len(calls) == 2


def test_variadic_and_positional_only_parameters() -> None:
    """*args, **kwargs and positional-only parameters key by value."""
    calls: list[object] = []

    @cached(ttl=60, settings=SETTINGS)
    def gather(first: int, /, *rest: int, **named: str) -> int:
        calls.append((first, rest, named))
        return first + sum(rest)

    assert gather(1, 2, 3, a="x", b="y") == 6
    assert gather(1, 2, 3, b="y", a="x") == 6
    assert gather(1, 2, 3) == 6
    assert len(calls) == 2
    with pytest.raises(TypeError):
        gather(first=1)  # type: ignore[call-arg, arg-type]


def test_methods_need_a_stable_self() -> None:
    """``self`` keys by __cache_key__; without one the call fails loudly, never by repr."""

    class Repo:
        def __init__(self, name: str) -> None:
            self.name = name

        def __cache_key__(self) -> str:
            return self.name

        @cached(ttl=60, settings=SETTINGS)
        def find(self, user_id: int) -> str:
            return f"{self.name}:{user_id}"

    class Bare:
        @cached(ttl=60, settings=SETTINGS)
        def find(self, user_id: int) -> int:
            return user_id

    assert Repo("a").find(1) == "a:1"
    assert Repo("b").find(1) == "b:1"
    with pytest.raises(TypeError, match="'self'"):
        Bare().find(1)


def test_ignore_leaves_parameters_out_of_the_key() -> None:
    """Ignored parameters (a connection, ``self``) do not split the cache."""
    calls: list[int] = []

    class Service:
        @cached(ttl=60, ignore=("self", "connection"), settings=SETTINGS)
        def lookup(self, user_id: int, connection: object = None) -> int:
            calls.append(user_id)
            return user_id * 10

    assert Service().lookup(1, connection=Opaque()) == 10
    assert Service().lookup(1, connection=Opaque()) == 10
    assert calls == [1]


def test_ignore_must_name_parameters() -> None:
    """A typo in ignore= is a configuration error at decoration time."""
    with pytest.raises(ConfigurationError, match="ignore"):

        @cached(ttl=60, ignore=("sefl",), settings=SETTINGS)
        def f(self: object) -> None: ...


def test_custom_key_function() -> None:
    """key= receives the call's arguments and returns the key text."""
    calls: list[str] = []

    @cached(ttl=60, key=lambda user, lang="en": user.lower(), settings=SETTINGS)
    def greet(user: str, lang: str = "en") -> str:
        calls.append(user)
        return f"hello {user}"

    assert greet("Ada") == "hello Ada"
    assert greet("ADA", lang="fr") == "hello Ada"
    assert calls == ["Ada"]

    @cached(ttl=60, key=lambda n: n, settings=SETTINGS)
    def bad(n: int) -> int:
        return n

    with pytest.raises(TypeError, match="must return a str"):
        bad(1)


def test_parameter_names_cannot_clash_with_generated_code() -> None:
    """Names reserved by the compiled hit path are refused up front."""
    with pytest.raises(ConfigurationError, match="__rc_"):

        @cached(ttl=60, settings=SETTINGS)
        def f(__rc_key: int) -> int:
            return __rc_key


def test_builtins_without_signature_are_cached() -> None:
    """A callable whose signature cannot be read is keyed by *args/**kwargs."""
    cached_max = cached(ttl=60, settings=SETTINGS)(max)
    assert cached_max(3, 9, 4) == 9
    assert cached_max(3, 9, 4) == 9
    assert cached_max.stats().hits == 1


def test_rare_values_and_signatures() -> None:
    """Huge ints, str subclasses, zero-parameter functions and lambdas."""

    class Label(str):
        pass

    assert encode_value(10**5000).startswith("x")  # past the int-to-str digit limit
    assert encode_value(Label("a")) == encode_value("a")
    assert repr(SLOW) == "<encoded key>"
    calls: list[int] = []

    @cached(ttl=60, settings=SETTINGS)
    def constant() -> int:
        calls.append(1)
        return 42

    assert constant() == constant() == 42
    assert calls == [1]
    anonymous = cached(ttl=60, settings=SETTINGS)(lambda x: x + 1)
    assert anonymous(1) == anonymous(1) == 2
    assert anonymous.__wrapped__.__name__ == "<lambda>"
