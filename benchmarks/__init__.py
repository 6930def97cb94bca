"""Side-by-side benchmarks of resilient and the libraries it replaces."""

from __future__ import annotations
