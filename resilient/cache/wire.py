"""The bytes of one entry in Redis: a small header, the payload, and an optional signature.

Layout (little-endian)::

    [HMAC digest]  b"RC1"  fresh_until:f64  delta:f64  version:u64  len:u8  format  payload

The header carries what XFetch and two-tier coherence need (expiry, recompute time, a
per-write version). With an HMAC key, the digest covers the Redis key too, so a valid
entry cannot be copied under another key. The format name must be the configured one:
stored data never picks the serializer or the algorithm.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any, NamedTuple

from resilient.cache.serializers import SerializationError, Serializer
from resilient.errors import ConfigurationError

__all__ = ["ALGORITHMS", "EntryCodec", "Signer", "WireEntry"]

ALGORITHMS = ("sha256", "sha384", "sha512")
_MAGIC = b"RC1"
_HEADER = struct.Struct("<3sddQB")


class Signer:
    """Signs stored bytes with an HMAC over the Redis key and the bytes, so that a record
    can be neither altered nor copied under another key: the stored form is
    ``digest + data``. Used by ``@cached`` entries and the HTTP response store."""

    __slots__ = ("_algorithm", "_key", "_size")

    def __init__(self, key: str | bytes, algorithm: str) -> None:
        self._key = key.encode() if isinstance(key, str) else key
        self._algorithm = algorithm
        self._size = hashlib.new(algorithm).digest_size

    def _digest(self, name: str, data: bytes) -> bytes:
        mac = hmac.new(self._key, name.encode("utf-8", "surrogatepass"), self._algorithm)
        mac.update(b"\x00")
        mac.update(data)
        return mac.digest()

    def seal(self, name: str, data: bytes) -> bytes:
        """The signed form of ``data`` stored under ``name``."""
        return self._digest(name, data) + data

    def open(self, name: str, stored: bytes) -> bytes | None:
        """The data in ``stored`` read from ``name``; ``None`` when it fails verification."""
        size = self._size
        if len(stored) < size or not hmac.compare_digest(
            stored[:size], self._digest(name, stored[size:])
        ):
            return None
        return stored[size:]


class WireEntry(NamedTuple):
    """A decoded entry."""

    value: Any
    fresh_until: float
    delta: float
    version: int


class EntryCodec:
    """Encodes and decodes entries for one cache.

    Args:
        serializer: the payload format.
        hmac_key: signs and verifies every entry when given; required by pickle.
        algorithm: the one digest accepted, from :data:`ALGORITHMS`.

    Raises:
        ConfigurationError: a serializer that needs a signature without a key, or an
            unknown algorithm.
    """

    def __init__(
        self, serializer: Serializer, hmac_key: str | bytes | None, algorithm: str
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ConfigurationError("hmac_algorithm", algorithm, "one of " + ", ".join(ALGORITHMS))
        if serializer.requires_signature and not hmac_key:
            raise ConfigurationError(
                "hmac_key",
                hmac_key,
                f"a secret key when the serializer is {serializer.name} "
                "(RESILIENT_CACHE_HMAC_KEY or hmac_key=): unsigned entries could run code",
            )
        self.serializer = serializer
        self._format = serializer.name.encode()
        if len(self._format) > 255:
            raise ConfigurationError("serializer", serializer.name, "a name of 255 bytes at most")
        self._signer = None if hmac_key is None else Signer(hmac_key, algorithm)

    def encode(
        self, l2key: str, value: Any, fresh_until: float, delta: float, version: int
    ) -> bytes:
        """The stored form of ``value`` (raises :class:`SerializationError`)."""
        payload = self.serializer.dumps(value)
        header = _HEADER.pack(_MAGIC, fresh_until, delta, version, len(self._format))
        body = header + self._format + payload
        signer = self._signer
        return body if signer is None else signer.seal(l2key, body)

    def decode(self, l2key: str, data: bytes) -> WireEntry:
        """Verify and decode stored bytes (raises :class:`SerializationError`)."""
        body = data
        if self._signer is not None:
            opened = self._signer.open(l2key, data)
            if opened is None:
                raise SerializationError(f"entry {l2key!r} failed HMAC verification")
            body = opened
        if len(body) < _HEADER.size:
            raise SerializationError(f"entry {l2key!r} is truncated")
        magic, fresh_until, delta, version, length = _HEADER.unpack_from(body)
        start = _HEADER.size
        if magic != _MAGIC or body[start : start + length] != self._format:
            raise SerializationError(f"entry {l2key!r} is not in this cache's format")
        value = self.serializer.loads(body[start + length :])
        return WireEntry(value, fresh_until, delta, version)
