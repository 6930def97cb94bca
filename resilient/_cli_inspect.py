"""``resilient inspect``: what live processes keep in Redis, read-only. Strictly private.

Three reports from one bounded pass over the keyspace:

- **breakers**: every name in the registry that shared breakers write
  (:data:`~resilient.breaker.shared.REGISTRY_KEY`) plus the state keys a ``SCAN`` finds,
  with state, failure count and time to half-open (the stored open-until time against
  the server's clock, as the breaker script computes it);
- **limits near their cap**: rate-limit counters at 80% or more of their amount. Keys
  carry the window, not the amount, so amounts come from the configured limits
  (``RESILIENT_RATELIMIT_DEFAULT``, ``RESILIENT_HTTP_LIMITS``) and ``--limits``, matched
  by window; counters of other windows are only counted;
- **cache**: entries per namespace (the first part of a key), tag sets and HTTP responses.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from resilient._cli_backend import Budget, Target, escape_glob, scan
from resilient.breaker.shared import REGISTRY_KEY, STATES, state_keys

__all__ = ["NEAR_CAP", "Report", "inspect_backend"]

#: A counter at this share of its amount or more is "near its cap".
NEAR_CAP = 0.8
_STATE_PREFIX, _STATE_SUFFIX = "{resilient:breaker:", "}:state"


@dataclass
class Report:
    """Everything ``inspect`` shows; :meth:`as_json` is the ``--json`` form."""

    backend: str
    breakers: list[dict[str, Any]] = field(default_factory=list)
    limits: list[dict[str, Any]] = field(default_factory=list)
    counters: int = 0
    counters_unknown: int = 0
    namespaces: dict[str, int] = field(default_factory=dict)
    tags: int = 0
    http_entries: int = 0
    truncated: bool = False

    def as_json(self) -> dict[str, Any]:
        """The report as plain data."""
        return {
            "backend": self.backend,
            "breakers": self.breakers,
            "limits": {"near_cap": self.limits, "counters": self.counters,
                       "counters_without_known_amount": self.counters_unknown},
            "cache": {"entries_per_namespace": self.namespaces, "tag_sets": self.tags,
                      "http_entries": self.http_entries},
            "truncated": self.truncated,
        }  # fmt: skip


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def server_ms(target: Target) -> int:
    """The server's clock in ms: what the breaker and limit scripts measure time with."""
    seconds, micros = target.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def registered(target: Target) -> dict[str, dict[str, Any]]:
    """The registry: breaker name -> the settings it was built with."""
    found: dict[str, dict[str, Any]] = {}
    for name, raw in (target.client.hgetall(REGISTRY_KEY) or {}).items():
        try:
            found[_text(name)] = json.loads(raw)
        except ValueError:  # not ours: show the name without settings
            found[_text(name)] = {}
    return found


def breaker_row(target: Target, name: str, settings: dict[str, Any], now: int) -> dict[str, Any]:
    """One breaker as stored: a breaker without a state hash is closed with no failures."""
    values = target.client.hmget(state_keys(name)[0], "st", "gen", "until", "fails", "ok")
    state, generation, until, failures = 0, 0, 0, 0
    if values[1] is not None:
        state, generation, until, failures = (int(values[i]) for i in range(4))
    to_half_open = max(until - now, 0) / 1000 if state == 1 else None
    return {
        "name": name, "state": STATES[state], "failures": failures,
        "fail_max": settings.get("fail_max"), "generation": generation,
        "half_open_in": to_half_open, "stored": values[1] is not None,
    }  # fmt: skip


def _limit_count(target: Target, key: str, code: str, window_ms: int, now: int) -> int:
    """A counter's current count, as its strategy's script counts it (moving windows: the
    entries listed, which may include some the next call prunes)."""
    if code == "mw":
        return int(target.client.llen(key))
    raw = target.client.get(key)
    if raw is None:
        return 0
    parts = [int(part) for part in _text(raw).split(":")]
    if code == "fw":
        return parts[1] if now < parts[0] + window_ms else 0
    start, previous, current = parts
    rolled = (now - start) // window_ms
    if rolled == 1:
        start, previous, current = start + window_ms, current, 0
    elif rolled > 1:
        return 0
    elapsed = max(0, now - start)
    return previous * (window_ms - elapsed) // window_ms + current


def _limit_row(target: Target, key: str, amounts: dict[int, int], now: int, report: Report) -> None:
    # <prefix>:rl:{<scope>/<identity>}:<code>:<window seconds>
    head, _, window_text = key.rpartition(":")
    head, _, code = head.rpartition(":")
    open_brace, close_brace = head.find("{"), head.rfind("}")
    try:
        window = int(window_text)
    except ValueError:
        return
    report.counters += 1
    amount = amounts.get(window)
    if amount is None:
        report.counters_unknown += 1
        return
    from redis.exceptions import ResponseError  # only a Redis target gets here

    try:
        count = _limit_count(target, key, code, window * 1000, now)
    except (ValueError, IndexError, ResponseError):  # a foreign key under our prefix
        return
    if count >= NEAR_CAP * amount:
        scope, _, identity = head[open_brace + 1 : close_brace].partition("/")
        report.limits.append({
            "key": key, "scope": scope, "identity": identity, "window": window,
            "count": count, "amount": amount, "usage": round(count / amount, 3),
        })  # fmt: skip


def inspect_backend(
    target: Target,
    *,
    limit_prefix: str,
    http_prefix: str,
    amounts: dict[int, int],
    budget: int,
) -> Report:
    """Read the breakers, the limits near their cap and cache figures from ``target``,
    examining at most ``budget`` keys per scan."""
    report = Report(target.shown)
    now = server_ms(target)
    names = registered(target)
    spent = Budget(budget)
    for batch in scan(target, escape_glob(_STATE_PREFIX) + "*" + _STATE_SUFFIX, spent):
        for key in batch:
            names.setdefault(key[len(_STATE_PREFIX) : -len(_STATE_SUFFIX)], {})
    report.breakers = [breaker_row(target, name, names[name], now) for name in sorted(names)]
    _scan_everything(target, report, limit_prefix, http_prefix, amounts, now, budget)
    report.truncated = report.truncated or spent.exhausted
    report.limits.sort(key=lambda row: -row["usage"])
    return report


def _scan_everything(
    target: Target, report: Report, limit_prefix: str, http_prefix: str,
    amounts: dict[int, int], now: int, budget: int,
) -> None:  # fmt: skip
    """One pass over every key, sorting each into limits, HTTP entries and cache figures."""
    spent = Budget(budget)
    namespaces: Counter[str] = Counter()
    limits_head, http_head = f"{limit_prefix}:rl:", f"{http_prefix}:"
    for batch in scan(target, "*", spent):
        for key in batch:
            if key.startswith(limits_head):
                _limit_row(target, key, amounts, now, report)
            elif key.startswith(http_head):
                report.http_entries += not key.endswith(":refresh")
            elif key.startswith("{resilient:breaker:") or key == REGISTRY_KEY:
                continue
            elif ":resilient-tag:" in key or key.startswith("resilient-tag:"):
                report.tags += 1
            elif not key.endswith(":lease"):  # a computing process's lock, not an entry
                namespaces[key.partition(":")[0] if ":" in key else ""] += 1
    report.namespaces = dict(namespaces.most_common())
    report.truncated = spent.exhausted
