"""Waiting for the backend guard's probes, which run in threads of their own."""

from __future__ import annotations

import threading


def _probes() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "resilient-probe"]


def probe_threads() -> int:
    """How many guard probes are running right now."""
    return len(_probes())


def wait_for_probes(timeout: float = 5.0) -> None:
    """Return once every running probe has reported to its guard."""
    for thread in _probes():
        thread.join(timeout)
        assert not thread.is_alive(), "a guard probe outlived its timeout"
