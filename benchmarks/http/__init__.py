"""HTTP benchmarks: real servers on loopback, wrk as the load generator."""

from __future__ import annotations
