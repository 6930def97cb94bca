"""State and decisions shared by the sync and asyncio caches of one function."""

from __future__ import annotations

import logging
import random
import string
import typing
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from resilient.cache.entries import EARLY_WINDOW, Counters, Entry, should_refresh_early
from resilient.cache.fastpath import CallPlan
from resilient.cache.keys import argument_text_of, finish_argument_text, key_prefix
from resilient.cache.memory import MemoryStore
from resilient.cache.options import CacheOptions
from resilient.cache.serializers import JsonSerializer
from resilient.cache.stampede import HIT, STALE, Outcome
from resilient.cache.twotier import L1Coherence, channel_for
from resilient.cache.wire import WireEntry
from resilient.errors import ConfigurationError
from resilient.instrumentation import _hub as _metrics

__all__ = ["REGISTRY", "CacheCore"]

logger = logging.getLogger("resilient.cache")

#: Every live cache, for :func:`resilient.cache.invalidate_tags`.
REGISTRY: weakref.WeakSet[CacheCore] = weakref.WeakSet()


class CacheCore:
    """One cached function's store, counters, keys and entry rules.

    The miss path lives in :mod:`resilient.cache.flows`; the sync and asyncio drivers and
    the handles live in :mod:`resilient.cache.sync_cache` and
    :mod:`resilient.cache.async_cache`.
    """

    is_async = False

    def __init__(self, func: Callable[..., Any], options: CacheOptions, plan: CallPlan) -> None:
        self.func = func
        self.options = options
        self.plan = plan
        self.clock = options.clock
        self.counts = Counters()
        _metrics.track("cache", self)  # exporters read self.counts when they collect
        self.store = MemoryStore(options.max_entries)
        self.remote = options.remote
        self.codec = options.codec
        self.ttl = options.ttl
        self.beta = options.xfetch_beta
        self.swr = options.stale_while_revalidate
        self.sie = options.stale_if_error
        self.stale_for = max(self.swr, self.sie)
        self.early = EARLY_WINDOW * self.beta  # times delta: where XFetch starts drawing
        self.scope = key_prefix(options.namespace, options.version, "")
        self.prefix = key_prefix(options.namespace, options.version, options.name)
        self.channel = channel_for(self.scope)
        self.coherence = L1Coherence(self.store, self.prefix) if options.two_tier else None
        # Memory caches keep values here; remote caches only with an L1 tier.
        self.keeps_local = self.remote is None or options.two_tier
        self._types_known = False
        self._l2keys: dict[Hashable, str] = {}
        #: Caches without a memory tier remember, per key, the bytes last read or written
        #: and the value decoded from them: (Redis key, bytes, value, check_at). A GET that
        #: returns the very same bytes needs no decoding (those bytes passed verification)
        #: and no flight. It answers only after Redis does, so it is never stale; and the
        #: value is shared between callers exactly as memory hits are.
        self.decoded: dict[Hashable, tuple[str, bytes, Any, float]] = {}
        _check_templates(options, plan)
        REGISTRY.add(self)

    # keys -------------------------------------------------------------------------------

    def l2key(self, key: Hashable) -> str:
        """The Redis key of a memory key (remembered: it is needed on every remote hit)."""
        l2key = self._l2keys.get(key)
        if l2key is None:
            text = argument_text_of(key, self.plan.key_names, self.plan.custom)
            l2key = self.prefix + finish_argument_text(text)
            if len(self._l2keys) >= self.options.max_entries:
                self._l2keys.clear()
            self._l2keys[key] = l2key
        return l2key

    def tag_key(self, tag: str) -> str:
        """The Redis set listing the keys stored with ``tag``."""
        return f"{self.scope}resilient-tag:{tag}"

    def tags_for(self, values: tuple[Any, ...]) -> tuple[str, ...]:
        """The tags of an entry computed from ``values``."""
        if not self.options.tags:
            return ()
        arguments = dict(zip(self.plan.names, values, strict=True))
        found: list[str] = []
        for tag in self.options.tags:
            if isinstance(tag, str):
                found.append(tag.format_map(arguments) if "{" in tag else tag)
            else:
                found.extend(str(item) for item in self.plan.apply(tag, values))
        return tuple(dict.fromkeys(found))

    # entries ----------------------------------------------------------------------------

    def new_entry(
        self, key: Hashable, value: Any, now: float, delta: float, values: tuple[Any, ...],
        l2key: str | None,
    ) -> Entry:  # fmt: skip
        """A freshly computed entry."""
        local_until = now + self.options.l1_ttl if self.coherence is not None else None
        entry = Entry(
            value,
            fresh_until=now + self.ttl,
            delta=delta,
            beta=self.beta,
            stale_for=self.stale_for,
            local_until=local_until,
            version=random.getrandbits(63) | 1,
            tags=self.tags_for(values),
            l2key=l2key,
        )
        entry.key = key
        return entry

    def remember(self, key: Hashable, entry: Entry) -> None:
        """Keep ``entry`` in memory when this cache has a memory tier that may hold it."""
        if self.coherence is not None:
            if self.coherence.live:
                self.store.put(key, entry)
        elif self.keeps_local:
            self.store.put(key, entry)

    def remember_decoded(
        self, key: Hashable, l2key: str, raw: bytes, value: Any, check_at: float
    ) -> None:
        """See :attr:`decoded`; bounded like the memory store."""
        decoded = self.decoded
        if len(decoded) >= self.options.max_entries:
            decoded.clear()
        decoded[key] = (l2key, raw, value, check_at)

    def forget_decoded(self, key: Hashable | None = None) -> None:
        """Drop what :attr:`decoded` holds for ``key`` (everything when None)."""
        if key is None:
            self.decoded.clear()
        else:
            self.decoded.pop(key, None)

    def clear(self) -> None:
        """Forget everything this process holds for this cache (Redis is untouched)."""
        self.store.clear()
        self.decoded.clear()

    def reserved(self, key: Hashable) -> Entry | None:
        """What L1 held for ``key`` when its invalidation stream dropped (failure paths)."""
        return self.coherence.reserve.get(key) if self.coherence is not None else None

    def recheck(self, key: Hashable, local: Entry | None, now: float) -> Outcome | None:
        """A hit if an earlier flight filled memory since the caller looked."""
        if self.keeps_local:
            entry = self.store.get(key)
            if entry is not None and entry is not local and now < entry.expires:
                self.counts.hits += 1
                return Outcome(entry.value, HIT)
        return None

    def stale_candidate(self, entry: Entry | None, now: float) -> Entry | None:
        """``entry`` if stale-if-error may still serve it."""
        return entry if entry is not None and now < entry.fresh_until + self.sie else None

    def judge_read(
        self, key: Hashable, l2key: str, raw: bytes | None, stamp: tuple[int, int],
        stale: Entry | None, now: float,
    ) -> tuple[Outcome | None, Entry | None]:  # fmt: skip
        """What a Redis read gives: an outcome to return, or the stale candidate."""
        if raw is None:
            return None, stale
        wire = self.decode(l2key, raw)
        if wire is None:
            return None, stale
        counts = self.counts
        check_at = wire.fresh_until - self.early * wire.delta
        if self.coherence is None and now < check_at:
            # The common remote hit: fresh, far from the XFetch window, no L1 to fill.
            counts.hits += 1
            counts.remote_hits += 1
            self.remember_decoded(key, l2key, raw, wire.value, check_at)
            return Outcome(wire.value, HIT), None
        found = self.adopt(key, l2key, wire, stamp, now)
        if now < found.fresh_until:
            counts.hits += 1
            counts.remote_hits += 1
            early = self.beta > 0 and should_refresh_early(found, now, self.beta)
            return Outcome(found.value, HIT, early, found), stale
        if now < found.fresh_until + self.swr:
            counts.stale += 1
            return Outcome(found.value, STALE, True, found), stale
        return None, self.stale_candidate(found, now) or stale

    def judge_failure(
        self, key: Hashable, local: Entry | None, now: float
    ) -> tuple[Outcome | None, Entry | None]:
        """Redis could not be read: serve what L1 held if still fresh, else compute."""
        self.counts.errors += 1
        kept = local if local is not None else self.reserved(key)
        if kept is not None and now < kept.fresh_until:
            self.counts.hits += 1
            return Outcome(kept.value, HIT), None
        return None, self.stale_candidate(kept, now)

    def stamp(self, l2key: str) -> tuple[int, int]:
        """See :meth:`L1Coherence.stamp`; constant without an L1."""
        return self.coherence.stamp(l2key) if self.coherence is not None else (0, 0)

    def adopt(
        self, key: Hashable, l2key: str, wire: WireEntry, stamp: tuple[int, int], now: float
    ) -> Entry:
        """An entry read from Redis; kept in L1 when coherence allows."""
        coherence = self.coherence
        entry = Entry(
            wire.value,
            fresh_until=wire.fresh_until,
            delta=wire.delta,
            beta=self.beta,
            stale_for=self.stale_for,
            local_until=now + self.options.l1_ttl if coherence is not None else None,
            version=wire.version,
            l2key=l2key,
        )
        if coherence is not None and now < entry.stale_until and coherence.may_fill(stamp, l2key):
            self.store.put(key, entry)
        return entry

    def read_entry(self, key: Hashable, l2key: str, raw: bytes | None) -> Entry | None:
        """Decode and adopt ``raw`` (or None) read under a lease; see :meth:`adopt`."""
        wire = self.decode(l2key, raw) if raw is not None else None
        if wire is None:
            return None
        return self.adopt(key, l2key, wire, self.stamp(l2key), self.clock())

    # serialization ----------------------------------------------------------------------

    def _learn_types(self) -> None:
        # The return annotation names the dataclasses and enums JSON may rebuild. Resolved
        # lazily: at decoration time the classes it names may not exist yet.
        self._types_known = True
        serializer = self.codec.serializer
        if not isinstance(serializer, JsonSerializer):
            return
        try:
            hints = typing.get_type_hints(self.func)
        except Exception:
            logger.debug("cannot resolve the annotations of %s", self.options.name)
            return
        if "return" in hints:
            serializer.register(hints["return"])

    def encode(self, l2key: str, entry: Entry) -> bytes | None:
        """The stored bytes of ``entry``, or None (counted) when it cannot be encoded."""
        if not self._types_known:
            self._learn_types()
        try:
            return self.codec.encode(
                l2key, entry.value, entry.fresh_until, entry.delta, entry.version
            )
        except Exception as exc:
            self.counts.errors += 1
            logger.debug("%s: value not stored: %s", self.options.name, exc)
            return None

    def decode(self, l2key: str, raw: bytes) -> WireEntry | None:
        """The entry in ``raw``, or None (counted) when it fails verification or decoding."""
        if not self._types_known:
            self._learn_types()
        try:
            return self.codec.decode(l2key, raw)
        except Exception as exc:
            self.counts.errors += 1
            logger.debug("%s: unusable entry treated as a miss: %s", self.options.name, exc)
            return None


def _check_templates(options: CacheOptions, plan: CallPlan) -> None:
    for tag in options.tags:
        if not isinstance(tag, str):
            continue
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(tag) if name is not None]
        except ValueError:
            raise ConfigurationError("tags", tag, "a valid format template") from None
        for field_name in fields:
            root = field_name.split(".")[0].split("[")[0]
            if root not in plan.names:
                raise ConfigurationError(
                    "tags", tag, "a template naming parameters of the function: " +
                    ", ".join(plan.names)
                )  # fmt: skip
