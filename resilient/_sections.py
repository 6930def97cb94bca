"""The settings of each feature, as ``Settings`` hands them out. Public through
:mod:`resilient.config`; one frozen dataclass per section of the variable table.

Their repr masks secrets (a backend URL's password, the HMAC key): settings get logged.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields

from resilient._secrets import MASK, mask_url
from resilient._variables import VARIABLES

__all__ = ["BreakerSettings", "CacheSettings", "HttpSettings", "RateLimitSettings"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Fields the table marks secret (``url``, ``hmac_key``, ...): masked in every section.
_SECRET_FIELDS = frozenset(v.field for v in VARIABLES if v.secret and v.section)


def _masked_repr(settings: object) -> str:
    shown = []
    for field in fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, field.name)
        if field.name in _SECRET_FIELDS and value:
            value = mask_url(value) if isinstance(value, str) and "://" in value else MASK
        shown.append(f"{field.name}={value!r}")
    return f"{type(settings).__name__}({', '.join(shown)})"


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """Caching settings (``RESILIENT_CACHE_*``). .. versionadded:: 0.1"""

    url: str | None
    enabled: bool
    ttl: float
    namespace: str
    version: str
    max_entries: int
    serializer: str
    hmac_key: str | None
    hmac_algorithm: str
    cache_none: bool
    two_tier: bool
    l1_ttl: float
    lock: bool
    lock_ttl: float
    xfetch_beta: float
    stale_while_revalidate: float
    stale_if_error: float

    __repr__ = _masked_repr


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Circuit-breaker settings (``RESILIENT_BREAKER_*``). .. versionadded:: 0.1"""

    url: str | None
    shared: bool
    policy: str
    fail_max: int
    reset_timeout: float
    success_threshold: int
    permitted_calls: int
    probe_timeout: float
    failure_rate: float
    slow_call_rate: float
    slow_call_duration: float
    window_type: str
    window_size: int
    minimum_calls: int
    force_open: bool
    disabled: bool
    resync_interval: float

    __repr__ = _masked_repr


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Rate-limit settings (``RESILIENT_RATELIMIT_*``). .. versionadded:: 0.1"""

    url: str | None
    default: str
    strategy: str
    mode: str
    fail_mode: str
    headers: str
    trusted_proxies: tuple[_Network, ...]
    key_prefix: str
    max_keys: int

    __repr__ = _masked_repr


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """HTTP middleware settings (``RESILIENT_HTTP_*``). .. versionadded:: 0.1"""

    url: str | None
    cache: bool
    cache_ttl: float | None
    cache_stale_while_revalidate: float
    cache_stale_if_error: float
    cache_max_body: int
    cache_max_entries: int
    cache_vary_cookies: tuple[str, ...]
    cache_credential_headers: tuple[str, ...]
    cache_keep: float
    cache_cdn_cache_control: bool
    cache_hmac_key: str | None
    respect_request_cache_control: bool
    key_prefix: str
    limits: str
    limit_key: str
    breaker: bool | str
    breaker_stale: float
    exclude_paths: tuple[str, ...]

    __repr__ = _masked_repr
