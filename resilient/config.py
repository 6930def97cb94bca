"""Settings, read from ``RESILIENT_*`` environment variables when an object is built.

Precedence, highest first (documented once, here and in ``docs/configuration.md``):

1. an explicit argument (``Settings.from_env(overrides={"cache_ttl": 30})``, or the
   keyword of a decorator or constructor);
2. framework config (``app.config["RESILIENT_CACHE_TTL"]``: the same names as the env);
3. a per-name environment variable (``RESILIENT_BREAKER__PAYMENTS__FAIL_MAX``);
4. a global environment variable (``RESILIENT_BREAKER_FAIL_MAX``);
5. the default.

Nothing is read at import time. A bad value raises :class:`ConfigurationError` naming the
variable, its value and what was expected; an unknown ``RESILIENT_*`` variable warns with
the closest known name.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from resilient._sections import BreakerSettings, CacheSettings, HttpSettings, RateLimitSettings
from resilient._variables import BY_KEY, NAMED_SECTIONS, VARIABLES, Variable
from resilient.errors import ConfigurationError

__all__ = [
    "BreakerSettings",
    "CacheSettings",
    "HttpSettings",
    "RateLimitSettings",
    "Settings",
    "mask_url",
    "normalize_name",
]

_RANK = {"default": 0, "env": 1, "env per-name": 2, "framework": 3,
         "framework per-name": 4, "argument": 5}  # fmt: skip
_NAMED = re.compile(r"^(?P<section>[A-Z]+)__(?P<name>[A-Z0-9_]+?)__(?P<field>[A-Z0-9_]+)$")


_SECTION_TYPES: dict[str, type[Any]] = {
    "cache": CacheSettings,
    "breaker": BreakerSettings,
    "ratelimit": RateLimitSettings,
    "http": HttpSettings,
}
_S = TypeVar("_S", CacheSettings, BreakerSettings, RateLimitSettings, HttpSettings)


def normalize_name(name: str) -> str:
    """The form of a breaker/cache/limit name used in per-name variables.

    ``"payments-api"`` becomes ``"PAYMENTS_API"``, as in
    ``RESILIENT_BREAKER__PAYMENTS_API__FAIL_MAX``.
    """
    return re.sub(r"[^0-9A-Z]+", "_", name.upper()).strip("_")


@dataclass(frozen=True, slots=True)
class _Value:
    value: object
    source: str
    origin: str  # the variable or argument name the value came from


@dataclass(frozen=True, slots=True)
class Settings:
    """The effective settings: global fields plus one section per feature.

    Build it with :meth:`from_env`; read per-name values with :meth:`breaker_for`,
    :meth:`cache_for`, :meth:`ratelimit_for` and :meth:`http_for`.

    .. versionadded:: 0.1
    """

    backend_url: str
    op_timeout: float
    connect_timeout: float
    memory_max_entries: int
    guard_failures: int
    guard_cooldown: float
    cache: CacheSettings
    breaker: BreakerSettings
    ratelimit: RateLimitSettings
    http: HttpSettings
    prefix: str = "RESILIENT_"
    _values: Mapping[str, _Value] = field(default_factory=dict, repr=False)
    _named: Mapping[tuple[str, str, str], _Value] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        prefix: str = "RESILIENT_",
        config: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``), now.

        Args:
            environ: the environment to read; injectable for tests.
            prefix: the variable prefix.
            config: framework config (e.g. Flask's ``app.config``), same names as the env.
            overrides: explicit values by lower-case name (``{"cache_ttl": 30}``).

        Raises:
            ConfigurationError: a value cannot be parsed, or an override name is unknown.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, _Value] = {}
        named: dict[tuple[str, str, str], _Value] = {}
        for variable in VARIABLES:
            values[variable.key] = _Value(variable.default, "default", "default")
        _read_layer(environ, prefix, "env", values, named, warn_unknown=True)
        if config is not None:
            _read_layer(config, prefix, "framework", values, named, warn_unknown=False)
        for name, raw in (overrides or {}).items():
            known = BY_KEY.get(name.upper())
            if known is None:
                hint = _suggest(name.upper(), "")
                raise ConfigurationError(name, raw, f"a known setting name ({hint})")
            values[known.key] = _Value(_parse(known, raw, name), "argument", name)
        sections: dict[str, Any] = {
            section: _build_section(kind, section, values)
            for section, kind in _SECTION_TYPES.items()
        }
        top: dict[str, Any] = {v.field: values[v.key].value for v in VARIABLES if not v.section}
        return cls(
            **top,
            **sections,
            prefix=prefix,
            _values=values,
            _named=named,
        )

    def cache_for(self, name: str | None) -> CacheSettings:
        """Cache settings with the per-name overrides of ``name`` applied."""
        return self._section_for(self.cache, "cache", name)

    def breaker_for(self, name: str | None) -> BreakerSettings:
        """Breaker settings with the per-name overrides of ``name`` applied."""
        return self._section_for(self.breaker, "breaker", name)

    def ratelimit_for(self, name: str | None) -> RateLimitSettings:
        """Rate-limit settings with the per-name overrides of ``name`` applied."""
        return self._section_for(self.ratelimit, "ratelimit", name)

    def http_for(self, name: str | None) -> HttpSettings:
        """HTTP middleware settings with the per-route overrides of ``name`` applied."""
        return self._section_for(self.http, "http", name)

    def url_for(self, section: str) -> str:
        """The backend URL a feature uses: its own URL, else ``backend_url``."""
        own: str | None = getattr(getattr(self, section), "url")  # noqa: B009
        return own or self.backend_url

    def explain(self) -> list[tuple[str, str, str]]:
        """Every setting as ``(variable, shown value, source)``, secrets masked."""
        rows = []
        for variable in VARIABLES:
            current = self._values[variable.key]
            shown = _mask(variable, current.value)
            rows.append((self.prefix + variable.key, shown, current.source))
        for (section, name, fld), current in sorted(self._named.items()):
            variable = BY_KEY[f"{section}_{fld}".upper()]
            env_name = f"{self.prefix}{section.upper()}__{name}__{fld.upper()}"
            rows.append((env_name, _mask(variable, current.value), current.source))
        return rows

    def _section_for(self, base: _S, section: str, name: str | None) -> _S:
        if name is None:
            return base
        key = normalize_name(name)
        changes: dict[str, Any] = {}
        for fld in dataclasses.fields(base):
            override = self._named.get((section, key, fld.name))
            if override is None:
                continue
            current = self._values[f"{section}_{fld.name}".upper()]
            if _RANK[override.source] > _RANK[current.source]:
                changes[fld.name] = override.value
        return dataclasses.replace(base, **changes) if changes else base


def _read_layer(
    mapping: Mapping[str, Any],
    prefix: str,
    source: str,
    values: dict[str, _Value],
    named: dict[tuple[str, str, str], _Value],
    *,
    warn_unknown: bool,
) -> None:
    for full_name, raw in mapping.items():
        if not full_name.startswith(prefix):
            continue
        key = full_name[len(prefix) :]
        variable = BY_KEY.get(key)
        if variable is not None:
            values[key] = _Value(_parse(variable, raw, full_name), source, full_name)
            continue
        match = _NAMED.match(key)
        if match is not None:
            section = match.group("section").lower()
            variable = BY_KEY.get(f"{match.group('section')}_{match.group('field')}")
            if section in NAMED_SECTIONS and variable is not None:
                slot = (section, match.group("name"), variable.field)
                parsed = _parse(variable, raw, full_name)
                named[slot] = _Value(parsed, f"{source} per-name", full_name)
                continue
        if warn_unknown:
            warnings.warn(
                f"unknown setting {full_name}; " + _suggest(key, "", prefix),
                stacklevel=4,
            )


def _suggest(key: str, fallback: str, prefix: str = "") -> str:
    close = difflib.get_close_matches(key, list(BY_KEY), n=1, cutoff=0.5)
    if close:
        return f"did you mean {prefix}{close[0]}?"
    return fallback or "no setting has a similar name"


def _parse(variable: Variable, raw: object, name: str) -> object:
    text = _as_text(raw)
    try:
        return variable.parser.parse(text)
    except ValueError:
        raise ConfigurationError(name, raw, variable.parser.expected) from None


def _as_text(raw: object) -> str:
    # Framework config and arguments may hold typed values; validate them the same way.
    if raw is None:
        return ""
    if isinstance(raw, timedelta):
        return repr(raw.total_seconds())
    if isinstance(raw, (list, tuple)):
        return ",".join(str(item) for item in raw)
    return str(raw)


def _build_section(kind: type[_S], section: str, values: Mapping[str, _Value]) -> _S:
    names = [fld.name for fld in dataclasses.fields(kind)]
    kwargs: dict[str, Any] = {name: values[f"{section}_{name}".upper()].value for name in names}
    return kind(**kwargs)


def _mask(variable: Variable, value: object) -> str:
    if variable.secret and isinstance(value, str) and value:
        return mask_url(value) if "://" in value else "***"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return "" if value is None else str(value)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
