"""The response store: cached responses over any backend, as flows.

Layout, for a URL whose digest is ``D`` (``prefix`` defaults to ``resilient:http``):

- ``prefix:D`` holds either the stored response itself (when it does not vary), or a
  :class:`~resilient.sansio.entry.VaryMarker` listing the request fields its responses
  vary on and a random generation;
- ``prefix:D:G:V`` holds the variant for generation ``G`` and request values ``V``;
- ``prefix:D:refresh`` is a short lease: one request refreshes a stale response.

A hit without ``Vary`` is one ``GET``; with ``Vary``, two. Invalidation deletes ``prefix:D``
only: the variants of the old generation can no longer be reached and expire on their
own, and a marker is only ever created with ``SET NX``, so a slow writer cannot bring an
invalidated generation back. Keys hold fixed-length digests, never client input.

With an HMAC key every record is signed, and the signature covers the key it is stored
under: a record that was altered, forged by someone who can write to Redis, or copied
under another URL's key fails verification and is a miss, never served. Records are
JSON and raw bytes either way (never pickle); signing is about who wrote them.

Every method is a flow (:mod:`._drivers`): the same code runs over a sync backend under
WSGI and an asyncio backend under ASGI. Backend errors propagate to the caller, which
decides what failing open means.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping, Sequence

from resilient.backends.base import AsyncBackend, SyncBackend
from resilient.cache.wire import ALGORITHMS, Signer
from resilient.errors import ConfigurationError
from resilient.middleware._drivers import Call, Flow
from resilient.sansio.entry import StoredResponse, VaryMarker, decode_record
from resilient.sansio.keys import url_digest, variant_digest, vary_values

__all__ = ["MARKER_TTL", "ResponseStore"]

#: How long a Vary marker lives at least: it is tiny, and when it goes, so do its variants.
MARKER_TTL = 24 * 3600.0


class _Decoded:
    """Records decoded lately, reused while the backend hands back the very same bytes.

    A hot URL is then decoded once, not on every hit. The bytes are compared (identity
    first: the memory backend returns the object it holds), so a changed record is
    always decoded afresh. Bounded in entries and in the size of what it keeps; records
    are immutable, so sharing them between requests is safe.
    """

    __slots__ = ("_items", "_lock", "max_bytes", "max_items", "opener")

    def __init__(
        self,
        opener: Callable[[str, bytes], bytes | None],
        max_items: int = 256,
        max_bytes: int = 64 * 1024,
    ) -> None:
        self.opener = opener
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: dict[str, tuple[bytes, StoredResponse | VaryMarker]] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str, raw: bytes | None) -> StoredResponse | VaryMarker | None:
        if raw is None:
            return None
        known = self._items.get(key)
        if known is not None and (known[0] is raw or known[0] == raw):
            # The very bytes verified under this very key before: no need to again.
            return known[1]
        record = decode_record(self.opener(key, raw))
        if record is not None and len(raw) <= self.max_bytes:
            with self._lock:
                while len(self._items) >= self.max_items:
                    del self._items[next(iter(self._items))]  # the oldest
                self._items[key] = (raw, record)
        return record


class ResponseStore:
    """Stored responses, keyed by URL and ``Vary`` values, over one backend.

    Args:
        backend: a sync backend (WSGI) or an asyncio backend (ASGI).
        prefix: prefix of every key.
        hmac_key: signs every record, and a record failing verification is a miss
            (``None``: records are not signed).
        hmac_algorithm: ``sha256``, ``sha384`` or ``sha512``; the only one accepted.

    Raises:
        ConfigurationError: an unknown algorithm, or an empty key.

    .. versionadded:: 0.1
    """

    __slots__ = ("_decoded", "_signer", "backend", "prefix")

    def __init__(
        self,
        backend: SyncBackend | AsyncBackend,
        *,
        prefix: str = "resilient:http",
        hmac_key: str | bytes | None = None,
        hmac_algorithm: str = "sha256",
    ) -> None:
        if hmac_algorithm not in ALGORITHMS:
            raise ConfigurationError("hmac_algorithm", hmac_algorithm,
                                     "one of " + ", ".join(ALGORITHMS))  # fmt: skip
        if hmac_key is not None and not hmac_key:
            raise ConfigurationError("hmac_key", "", "a non-empty secret, or None")
        self.backend = backend
        self.prefix = prefix
        self._signer = None if hmac_key is None else Signer(hmac_key, hmac_algorithm)
        self._decoded = _Decoded(self._open)

    def _seal(self, key: str, data: bytes) -> bytes:
        """The bytes to store under ``key``: ``data``, signed when there is a key."""
        signer = self._signer
        return data if signer is None else signer.seal(key, data)

    def _open(self, key: str, raw: bytes) -> bytes | None:
        """The record in ``raw`` read from ``key``; ``None`` when it fails verification."""
        signer = self._signer
        return raw if signer is None else signer.open(key, raw)

    def primary_key(self, url: str) -> str:
        """The key a URL's response or Vary marker lives under."""
        return f"{self.prefix}:{url_digest(url)}"

    def variant_key(
        self, url: str, generation: str, values: tuple[tuple[str, str | None], ...]
    ) -> str:
        """The key of one variant of a URL."""
        return f"{self.primary_key(url)}:{generation}:{variant_digest(values)}"

    def lookup(
        self, url: str, headers: Mapping[str, str], cookies: frozenset[str] = frozenset()
    ) -> Flow[StoredResponse | None]:
        """The stored response for a request to ``url`` with ``headers``, if any.

        A record is returned only when its URL and ``Vary`` values equal the request's,
        so neither a digest collision nor a misplaced record can serve one request's
        response to another.
        """
        primary = self.primary_key(url)
        record = self._decoded(primary, (yield Call(self.backend.get, primary)))
        if isinstance(record, StoredResponse):
            return record if record.url == url and not record.vary else None
        if not isinstance(record, VaryMarker):
            return None
        values = vary_values(headers, record.fields, cookies)
        key = f"{primary}:{record.generation}:{variant_digest(values)}"
        variant = self._decoded(key, (yield Call(self.backend.get, key)))
        if isinstance(variant, StoredResponse) and variant.url == url and variant.vary == values:
            return variant
        return None

    def save(self, entry: StoredResponse, fields: tuple[str, ...], ttl: float) -> Flow[None]:
        """Store ``entry`` for ``ttl`` seconds; ``fields`` are the ones it varies on."""
        primary = self.primary_key(entry.url)
        if not fields:
            yield Call(self.backend.set, primary, self._seal(primary, entry.encode()), ttl)
            return
        marker = VaryMarker(fields, secrets.token_hex(8))
        marker_ttl = max(ttl, MARKER_TTL)
        sealed = self._seal(primary, marker.encode())
        created = yield Call(self.backend.set, primary, sealed, marker_ttl, only_if_new=True)
        if not created:
            raw = yield Call(self.backend.get, primary)
            current = None if raw is None else decode_record(self._open(primary, raw))
            if isinstance(current, VaryMarker) and current.fields == fields:
                marker = current
            else:
                # A response without Vary, or with other fields (or a record failing
                # verification), was there: this one's fields win and the old variants
                # become unreachable.
                yield Call(self.backend.set, primary, sealed, marker_ttl)
        key = self.variant_key(entry.url, marker.generation, entry.vary)
        yield Call(self.backend.set, key, self._seal(key, entry.encode()), ttl)

    def invalidate(self, urls: Sequence[str]) -> Flow[None]:
        """Forget every stored response of ``urls`` (one key each; Cluster-safe)."""
        for url in dict.fromkeys(urls):
            yield Call(self.backend.delete, self.primary_key(url))

    def claim_refresh(self, url: str, ttl: float) -> Flow[bool]:
        """Whether this caller refreshes ``url`` now (one caller per ``ttl`` seconds)."""
        key = f"{self.primary_key(url)}:refresh"
        claimed = yield Call(self.backend.set, key, b"1", ttl, only_if_new=True)
        return bool(claimed)
