"""Reading the demo's summary table back into numbers."""

from __future__ import annotations

import re

ROWS = (
    "requests sent",
    "served (2xx)",
    "latency p50",
    "latency p99",
    "cache hit ratio",
    "rate limited (429)",
    "breaker trips",
    "breaker rejections (503)",
    "errors (502, no answer)",
    "upstream calls",
)


def _number(text: str) -> float:
    return float(text.replace(",", "").removesuffix(" ms").removesuffix("%"))


def summary(output: str) -> dict[str, tuple[float, float]]:
    """Each row of the table: (without resilient, with resilient)."""
    table = output.split("without resilient   with resilient")[-1]
    rows: dict[str, tuple[float, float]] = {}
    for name in ROWS:
        match = re.search(rf"^  {re.escape(name)}\s+([\d.,]+(?: ms|%)?)\s+([\d.,]+(?: ms|%)?)$",
                          table, re.MULTILINE)  # fmt: skip
        assert match is not None, f"no row {name!r} in:\n{output}"
        rows[name] = (_number(match.group(1)), _number(match.group(2)))
    saved = re.search(r"^  upstream calls saved\s+(-?[\d,]+)$", table, re.MULTILINE)
    assert saved is not None, output
    rows["upstream calls saved"] = (0.0, _number(saved.group(1)))
    return rows


def assert_consistent(rows: dict[str, tuple[float, float]]) -> None:
    """Every request sent is counted once: served, 429, 503 or an error."""
    for side in (0, 1):
        parts = ("served (2xx)", "rate limited (429)", "breaker rejections (503)",
                 "errors (502, no answer)")  # fmt: skip
        assert sum(rows[name][side] for name in parts) == rows["requests sent"][side]
        assert rows["requests sent"][side] > 0
    without, with_ = rows["upstream calls"]
    assert rows["upstream calls saved"][1] == without - with_
