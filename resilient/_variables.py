"""The one table of settings: name, parser, default and help for every variable.

Both the parser in :mod:`resilient.config` and ``docs/configuration.md`` are generated
from it, so the two cannot drift. Strictly private.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from resilient import _parsers as p
from resilient.instrumentation._switch import EXPORTER_LIST


@dataclass(frozen=True, slots=True)
class Variable:
    """One setting. ``section`` is "" for global settings, else a feature name."""

    section: str
    field: str
    parser: p.Parser
    default: object
    help: str
    secret: bool = False

    @property
    def key(self) -> str:
        """The unprefixed upper-case name: ``CACHE_TTL``; add the prefix for the env."""
        name = f"{self.section}_{self.field}" if self.section else self.field
        return name.upper()


_HEADER = re.compile(r"^header:[!#$%&'*+.^_`|~0-9A-Za-z-]+$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _limit_key(raw: str) -> str:
    text = raw.strip()
    if text.lower() == "ip":
        return "ip"
    if not _HEADER.match(text):
        raise ValueError
    return "header:" + text[len("header:") :].lower()


def _breaker(raw: str) -> bool | str:
    try:
        return bool(p.BOOL.parse(raw))
    except ValueError:
        text = raw.strip()
        if not _NAME.match(text):
            raise
        return text


def _paths(raw: str) -> tuple[str, ...]:
    # Checked here as far as the table can without the middleware (which compiles them).
    parts = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not all(part.startswith("/") and not any(c.isspace() for c in part) for part in parts):
        raise ValueError
    return parts


#: Paths the HTTP middleware leaves alone, in the glob syntax of ``Rule.path``.
PATHS = p.Parser("paths", "comma-separated path patterns (/metrics/**,/healthz)", _paths)
#: Who a route's rate limits count against.
LIMIT_KEY = p.Parser("limit key", "ip, or header:<name> (header:X-Api-Key)", _limit_key)
#: A route's circuit breaker: one of its own, none, or a named one.
BREAKER = p.Parser(
    "breaker", "a boolean (1, 0, true, false, yes, no) or a breaker name (payments)", _breaker
)


def _var(section: str, field: str, parser: p.Parser, default: object, help: str,
         secret: bool = False) -> Variable:  # fmt: skip
    return Variable(section, field, parser, default, help, secret)


#: Sections whose variables can be overridden per name: RESILIENT_<SECTION>__<NAME>__<FIELD>.
NAMED_SECTIONS = ("cache", "breaker", "ratelimit", "http")

VARIABLES: tuple[Variable, ...] = (
    # global
    _var("", "backend_url", p.BACKEND_URL, "memory://",
         "Backend every feature uses unless its own URL is set.", secret=True),
    _var("", "op_timeout", p.POSITIVE_DURATION, 0.1,
         "Timeout of one backend operation. No client-side retries on the hot path."),
    _var("", "connect_timeout", p.POSITIVE_DURATION, 0.1,
         "Timeout to open a backend connection."),
    _var("", "memory_max_entries", p.POSITIVE_INT, 100_000,
         "Most keys the in-memory backend holds; the least recently used go first."),
    _var("", "guard_failures", p.POSITIVE_INT, 3,
         "Consecutive backend failures after which the backend is skipped at once."),
    _var("", "guard_cooldown", p.DURATION, 1.0,
         "How long a failing backend is skipped before a probe checks it again."),
    # cache
    _var("cache", "url", p.OPTIONAL_BACKEND_URL, None,
         "Backend for caching; empty means RESILIENT_BACKEND_URL.", secret=True),
    _var("cache", "enabled", p.BOOL, True, "Switch caching off everywhere (calls go through)."),
    _var("cache", "ttl", p.POSITIVE_DURATION, 300.0, "Default time to live of a cached value."),
    _var("cache", "namespace", p.TEXT, "", "Prefix of every cache key (per app or deploy)."),
    _var("cache", "version", p.TEXT, "", "Bump to invalidate every key at once on deploy."),
    _var("cache", "max_entries", p.POSITIVE_INT, 10_000,
         "Most entries an in-memory cache (or L1) holds; least recently used go first."),
    _var("cache", "serializer", p.choice("json", "pickle"), "json",
         "How values are stored in Redis. pickle needs RESILIENT_CACHE_HMAC_KEY."),
    _var("cache", "hmac_key", p.OPTIONAL_TEXT, None,
         "Key that signs every stored entry (pickle requires one); an entry failing "
         "verification is a miss.", secret=True),
    _var("cache", "hmac_algorithm", p.choice("sha256", "sha384", "sha512"), "sha256",
         "The one HMAC algorithm accepted; stored data never chooses it."),
    _var("cache", "cache_none", p.BOOL, False, "Store None results (off: None is a miss)."),
    _var("cache", "two_tier", p.BOOL, False,
         "Keep a memory L1 in front of Redis, kept coherent through pub/sub."),
    _var("cache", "l1_ttl", p.POSITIVE_DURATION, 60.0,
         "Longest time an entry lives in the L1 tier."),
    _var("cache", "lock", p.BOOL, False,
         "Take a Redis lease so one process in the cluster computes a missing key."),
    _var("cache", "lock_ttl", p.DURATION, 10.0,
         "Lease expiry, in case its holder dies, and the longest a caller waits for another "
         "one computing the same key; for the HTTP middleware, the longest a request waits "
         "for a concurrent one fetching the same URL. 0: nobody waits (then "
         "RESILIENT_CACHE_LOCK must be off: a lease needs an expiry)."),
    _var("cache", "xfetch_beta", p.NON_NEGATIVE_FLOAT, 1.0,
         "Probabilistic early refresh (XFetch); 0 turns it off, above 1 refreshes earlier."),
    _var("cache", "stale_while_revalidate", p.DURATION, 0.0,
         "Serve a stale value this long after expiry while one caller refreshes it."),
    _var("cache", "stale_if_error", p.DURATION, 0.0,
         "Serve a stale value this long after expiry when the function raises."),
    # breaker
    _var("breaker", "url", p.OPTIONAL_BACKEND_URL, None,
         "Backend for shared breaker state; empty means RESILIENT_BACKEND_URL.", secret=True),
    _var("breaker", "shared", p.BOOL, False,
         "Share breaker state between processes through the Redis backend."),
    _var("breaker", "policy", p.choice("consecutive", "rate"), "consecutive",
         "Trip on consecutive failures, or on a failure/slow-call rate over a window."),
    _var("breaker", "fail_max", p.POSITIVE_INT, 5, "Consecutive failures that open the circuit."),
    _var("breaker", "reset_timeout", p.DURATION, 60.0,
         "How long the circuit stays open before it lets probes through."),
    _var("breaker", "success_threshold", p.POSITIVE_INT, 1,
         "Successful probes needed to close the circuit again."),
    _var("breaker", "permitted_calls", p.POSITIVE_INT, 1,
         "Probes admitted at once while half-open; other callers are rejected."),
    _var("breaker", "probe_timeout", p.POSITIVE_DURATION, 30.0,
         "Lease on a probe, so a probe that dies does not leave the circuit stuck."),
    _var("breaker", "failure_rate", p.PERCENTAGE, 50.0,
         "rate policy: failure percentage that opens the circuit."),
    _var("breaker", "slow_call_rate", p.PERCENTAGE, 100.0,
         "rate policy: slow-call percentage that opens the circuit."),
    _var("breaker", "slow_call_duration", p.DURATION, 60.0,
         "rate policy: calls slower than this count as slow."),
    _var("breaker", "window_type", p.choice("count", "time"), "count",
         "rate policy: window over the last N calls, or the last N seconds."),
    _var("breaker", "window_size", p.POSITIVE_INT, 100,
         "rate policy: calls (count window) or seconds (time window)."),
    _var("breaker", "minimum_calls", p.POSITIVE_INT, 10,
         "rate policy: calls in the window before a rate is judged."),
    _var("breaker", "force_open", p.BOOL, False, "Reject every call (maintenance switch)."),
    _var("breaker", "disabled", p.BOOL, False, "Let every call through and record nothing."),
    _var("breaker", "resync_interval", p.DURATION, 1.0,
         "How often shared state is re-read in case a pub/sub message was lost; 0: never."),
    # rate limiting
    _var("ratelimit", "url", p.OPTIONAL_BACKEND_URL, None,
         "Backend for rate limits; empty means RESILIENT_BACKEND_URL.", secret=True),
    _var("ratelimit", "default", p.LIMITS, "",
         "Limits applied where none are given (200/day;50/hour); empty for none."),
    _var("ratelimit", "strategy",
         p.choice("sliding-window-counter", "fixed-window", "moving-window"),
         "sliding-window-counter", "Counting strategy, as named by limits."),
    _var("ratelimit", "mode", p.choice("enforce", "shadow", "off"), "enforce",
         "enforce rejects; shadow counts and reports would-be rejections; off skips."),
    _var("ratelimit", "fail_mode", p.choice("open", "closed", "local"), "open",
         "With the backend down: admit, reject, or count in memory meanwhile."),
    _var("ratelimit", "headers", p.choice("off", "legacy", "draft", "both"), "draft",
         "Rate-limit headers: IETF RateLimit/RateLimit-Policy, X-RateLimit-*, both, none."),
    _var("ratelimit", "trusted_proxies", p.CIDRS, (),
         "Peers whose X-Forwarded-For/Forwarded is believed, walked right to left."),
    _var("ratelimit", "key_prefix", p.TEXT, "resilient", "Prefix of every rate-limit key."),
    _var("ratelimit", "max_keys", p.POSITIVE_INT, 100_000,
         "Most keys the in-memory limiter holds; least recently used go first."),
    # http middleware
    _var("http", "url", p.OPTIONAL_BACKEND_URL, None,
         "Backend of the HTTP response cache; empty means RESILIENT_BACKEND_URL.", secret=True),
    _var("http", "cache", p.BOOL, True,
         "Cache responses as an RFC 9111 shared cache; off, every request goes to the app."),
    _var("http", "cache_ttl", p.OPTIONAL_DURATION, None,
         "App mode: freshness given to responses that carry none, sent to clients as "
         "Cache-Control: max-age. Empty: only what the app marks cacheable is stored."),
    _var("http", "cache_stale_while_revalidate", p.DURATION, 0.0,
         "App mode: serve a stale response this long after expiry while one request "
         "refreshes it."),
    _var("http", "cache_stale_if_error", p.DURATION, 0.0,
         "App mode: serve a stale response this long after expiry when the app fails "
         "(500, 502, 503, 504 or an exception)."),
    _var("http", "cache_max_body", p.SIZE, 1024 * 1024,
         "Largest response body stored; larger responses stream through uncached."),
    _var("http", "cache_max_entries", p.POSITIVE_INT, 1000,
         "Most responses the in-memory HTTP cache holds; with the body cap, bounds its memory."),
    _var("http", "cache_vary_cookies", p.NAMES, (),
         "Cookies a route varies on: requests with cookies are then cached, keyed on these "
         "cookies' values. Empty: requests with a Cookie header bypass the cache."),
    _var("http", "cache_credential_headers", p.NAMES, ("X-Api-Key",),
         "Request headers that carry credentials, besides Authorization and "
         "Proxy-Authorization: requests with any of them bypass the HTTP cache. Empty: none."),
    _var("http", "cache_keep", p.DURATION, 0.0,
         "How long a stored 200 is kept past its lifetime and stale windows, so that once "
         "stale it is revalidated with the app (If-None-Match, If-Modified-Since) and a 304 "
         "freshens it instead of a full response. 0: dropped when it expires."),
    _var("http", "cache_cdn_cache_control", p.BOOL, False,
         "Act as a CDN (RFC 9213): a response's CDN-Cache-Control, when usable, decides "
         "what is stored and for how long, instead of its Cache-Control and Expires."),
    _var("http", "cache_hmac_key", p.OPTIONAL_TEXT, None,
         "Key that signs every stored HTTP response (with RESILIENT_CACHE_HMAC_ALGORITHM); "
         "a record failing verification is a miss. Empty means RESILIENT_CACHE_HMAC_KEY.",
         secret=True),
    _var("http", "respect_request_cache_control", p.BOOL, False,
         "Honour the client's Cache-Control (no-cache, max-age, ...); off by default so "
         "clients cannot bust the cache."),
    _var("http", "key_prefix", p.TEXT, "resilient:http", "Prefix of every HTTP cache key."),
    _var("http", "limits", p.LIMITS, "",
         "Rate limits of every route that sets none (100/minute;1000/hour), counted per "
         "route and client; empty for none. Mode, strategy, headers and fail mode come from "
         "RESILIENT_RATELIMIT_* (for a named rule, RESILIENT_RATELIMIT__<NAME>__* first)."),
    _var("http", "limit_key", LIMIT_KEY, "ip",
         "Who a route's limits count against: ip (the client address; forwarding headers "
         "only from RESILIENT_RATELIMIT_TRUSTED_PROXIES), or header:<name> (a hash of its "
         "value, else the address)."),
    _var("http", "breaker", BREAKER, False,
         "Circuit breaker of every route that sets none: 1 for one per route, 0 for none, or "
         "the name of a breaker routes share (tuned by RESILIENT_BREAKER__<NAME>__*)."),
    _var("http", "breaker_stale", p.DURATION, 0.0,
         "How long past expiry a stored response of a route with a breaker is kept, to "
         "answer in place of a 503 while the circuit is open."),
    _var("http", "exclude_paths", PATHS,
         ("/metrics/**", "/health/**", "/healthz/**", "/livez/**", "/readyz/**"),
         "Paths the HTTP middleware leaves alone, in the pattern syntax of Rule paths (a "
         "trailing /** matches the path itself too): no cache, no limits, no breaker, even "
         "where a rule matches. Empty: none."),
    # metrics
    _var("", "metrics", EXPORTER_LIST, (),
         "Metrics exporters started when the first feature is built: prometheus (the "
         "prometheus_client registry), otel (the global OpenTelemetry meter provider), both "
         "(prometheus,otel), or none. Empty or none: nothing is registered."),
)  # fmt: skip

BY_KEY: dict[str, Variable] = {variable.key: variable for variable in VARIABLES}
