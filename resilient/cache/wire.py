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

__all__ = ["ALGORITHMS", "EntryCodec", "WireEntry"]

ALGORITHMS = ("sha256", "sha384", "sha512")
_MAGIC = b"RC1"
_HEADER = struct.Struct("<3sddQB")


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
        self._key = hmac_key.encode() if isinstance(hmac_key, str) else hmac_key
        self._algorithm = algorithm
        self._digest_size = hashlib.new(algorithm).digest_size

    def encode(
        self, l2key: str, value: Any, fresh_until: float, delta: float, version: int
    ) -> bytes:
        """The stored form of ``value`` (raises :class:`SerializationError`)."""
        payload = self.serializer.dumps(value)
        header = _HEADER.pack(_MAGIC, fresh_until, delta, version, len(self._format))
        body = header + self._format + payload
        if self._key is None:
            return body
        return self._sign(l2key, body) + body

    def decode(self, l2key: str, data: bytes) -> WireEntry:
        """Verify and decode stored bytes (raises :class:`SerializationError`)."""
        body = data
        if self._key is not None:
            size = self._digest_size
            if len(data) < size or not hmac.compare_digest(
                data[:size], self._sign(l2key, data[size:])
            ):
                raise SerializationError(f"entry {l2key!r} failed HMAC verification")
            body = data[size:]
        if len(body) < _HEADER.size:
            raise SerializationError(f"entry {l2key!r} is truncated")
        magic, fresh_until, delta, version, length = _HEADER.unpack_from(body)
        start = _HEADER.size
        if magic != _MAGIC or body[start : start + length] != self._format:
            raise SerializationError(f"entry {l2key!r} is not in this cache's format")
        value = self.serializer.loads(body[start + length :])
        return WireEntry(value, fresh_until, delta, version)

    def _sign(self, l2key: str, body: bytes) -> bytes:
        assert self._key is not None
        mac = hmac.new(self._key, l2key.encode("utf-8", "surrogatepass"), self._algorithm)
        mac.update(b"\x00")
        mac.update(body)
        return mac.digest()
