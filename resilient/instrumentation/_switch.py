"""``RESILIENT_METRICS``: which exporters start by themselves. Strictly private.

Read once, when the first cache, limiter, breaker, middleware or backend is built, so an
application switches metrics on without code; imports nothing heavy (the variable table
imports the parser).
"""

from __future__ import annotations

import logging
import os

from resilient import _parsers as p

logger = logging.getLogger("resilient.instrumentation")

EXPORTERS = ("prometheus", "otel")


def _exporters(raw: str) -> tuple[str, ...]:
    parts = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    if parts == ("none",):
        return ()
    if not all(part in EXPORTERS for part in parts):
        raise ValueError
    return tuple(dict.fromkeys(parts))


#: The parser of ``RESILIENT_METRICS``.
EXPORTER_LIST = p.Parser(
    "exporters", "comma-separated exporters: prometheus, otel, or none", _exporters
)


def configure_from_env(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Start the exporters ``RESILIENT_METRICS`` names; the ones started.

    An exporter whose package is missing is reported in the log, not raised: metrics
    must never stop an application from starting.
    """
    from resilient.errors import ConfigurationError
    from resilient.instrumentation import enable_otel, enable_prometheus

    raw = (os.environ if environ is None else environ).get("RESILIENT_METRICS", "")
    try:
        wanted = _exporters(raw)
    except ValueError:
        raise ConfigurationError("RESILIENT_METRICS", raw, EXPORTER_LIST.expected) from None
    started = []
    for name in wanted:
        try:
            enable_prometheus() if name == "prometheus" else enable_otel()
        except ImportError as exc:
            logger.error("RESILIENT_METRICS=%s: %s is not installed (%s)", raw, name, exc)
            continue
        started.append(name)
    return tuple(started)
