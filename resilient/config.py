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
the closest known name. Keyword arguments of decorators and constructors are checked by
the same parsers (:func:`check_option`), so both accept the same values. Secrets (backend
passwords, the HMAC key) are masked in everything shown: errors, reprs, ``explain()``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from resilient._checks import (
    NAMED,
    check_option,
    check_option_names,
    closest,
    parse,
    shown_value,
    suggest_variable,
)
from resilient._secrets import MASK, mask_text, mask_url
from resilient._sections import BreakerSettings, CacheSettings, HttpSettings, RateLimitSettings
from resilient._variables import BY_KEY, NAMED_SECTIONS, VARIABLES, Variable
from resilient.errors import ConfigurationError

__all__ = [
    "BreakerSettings",
    "CacheSettings",
    "HttpSettings",
    "RateLimitSettings",
    "Settings",
    "check_option",
    "check_option_names",
    "mask_url",
    "normalize_name",
]

_RANK = {"default": 0, "env": 1, "env per-name": 2, "framework": 3,
         "framework per-name": 4, "argument": 5}  # fmt: skip


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
    metrics: tuple[str, ...] = ()  # RESILIENT_METRICS; read by resilient.instrumentation
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
                close = closest(name.upper())
                hint = f"did you mean {close.key}?" if close else "no setting has a similar name"
                shown = shown_value(close, raw) if close else raw
                raise ConfigurationError(name, shown, f"a known setting name ({hint})")
            values[known.key] = _Value(parse(known, raw, name), "argument", name)
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

    def origin_of(self, section: str, field: str, name: str | None = None) -> str:
        """Who set ``field`` of ``section`` (as :meth:`breaker_for` etc. of ``name`` see it).

        The variable for a value from the environment or framework config
        (``RESILIENT_BREAKER__PAYMENTS__FAIL_MAX``), the override's name for an explicit
        argument, the global variable for a default: errors name where to fix a value.
        """
        key = f"{section}_{field}".upper() if section else field.upper()
        current = self._values[key]
        if name is not None and section:
            override = self._named.get((section, normalize_name(name), field))
            if override is not None and _RANK[override.source] > _RANK[current.source]:
                return override.origin
        return self.prefix + key if current.source == "default" else current.origin

    def __repr__(self) -> str:
        # The generated repr would show the backend URL with its password.
        top = [v for v in VARIABLES if not v.section]
        shown = [f"{v.field}={self._shown(v)!r}" for v in top]
        shown += [f"{section}={getattr(self, section)!r}" for section in _SECTION_TYPES]
        return f"Settings({', '.join(shown)}, prefix={self.prefix!r})"

    def _shown(self, variable: Variable) -> object:
        value = getattr(self, variable.field)
        return _mask(variable, value) if variable.secret else value

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
            values[key] = _Value(parse(variable, raw, full_name), source, full_name)
            continue
        match = NAMED.match(key)
        if match is not None:
            section = match.group("section").lower()
            variable = BY_KEY.get(f"{match.group('section')}_{match.group('field')}")
            if section in NAMED_SECTIONS and variable is not None:
                slot = (section, match.group("name"), variable.field)
                parsed = parse(variable, raw, full_name)
                named[slot] = _Value(parsed, f"{source} per-name", full_name)
                continue
        if warn_unknown:
            # The name only, never the value: a misspelt URL variable holds a password.
            suggestion = suggest_variable(key)
            hint = f"did you mean {prefix}{suggestion}?" if suggestion else (
                "no setting has a similar name")  # fmt: skip
            warnings.warn(f"unknown setting {full_name}; {hint}", stacklevel=4)


def _build_section(kind: type[_S], section: str, values: Mapping[str, _Value]) -> _S:
    names = [fld.name for fld in dataclasses.fields(kind)]
    kwargs: dict[str, Any] = {name: values[f"{section}_{name}".upper()].value for name in names}
    return kind(**kwargs)


def _mask(variable: Variable, value: object) -> str:
    if variable.secret and isinstance(value, (str, bytes)) and value:
        return mask_url(value) if isinstance(value, str) and "://" in value else MASK
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return "" if value is None else mask_text(str(value))
