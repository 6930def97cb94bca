"""Tables and JSON for the command line. Strictly private."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

from resilient._cli_inspect import Report

__all__ = ["print_breaker", "print_json", "print_report", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, a header line first."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]  # fmt: skip
    return "\n".join(lines) + "\n"


def print_json(out: TextIO, payload: Any) -> None:
    """``payload`` as indented JSON, one document."""
    json.dump(payload, out, indent=2)
    out.write("\n")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _failures(row: dict[str, Any]) -> str:
    fail_max = row.get("fail_max")
    return f"{row['failures']}/{fail_max}" if fail_max else str(row["failures"])


def print_breaker(out: TextIO, row: dict[str, Any]) -> None:
    """One breaker's state, as ``resilient breaker`` reports it."""
    out.write(table(
        ("BREAKER", "STATE", "FAILURES", "HALF-OPEN IN", "GENERATION"),
        [(row["name"], row["state"], _failures(row), _seconds(row["half_open_in"]),
          row["generation"])],
    ))  # fmt: skip


def print_report(out: TextIO, report: Report) -> None:
    """``resilient inspect``'s tables."""
    out.write(f"backend {report.backend}\n\n")
    if report.breakers:
        out.write(table(
            ("BREAKER", "STATE", "FAILURES", "HALF-OPEN IN"),
            [(row["name"], row["state"], _failures(row), _seconds(row["half_open_in"]))
             for row in report.breakers],
        ))  # fmt: skip
    else:
        out.write("no shared breakers\n")
    out.write("\n")
    if report.limits:
        out.write(table(
            ("LIMIT KEY", "COUNT", "AMOUNT", "WINDOW", "USAGE"),
            [(row["key"], row["count"], row["amount"], f"{row['window']}s",
              f"{row['usage']:.0%}") for row in report.limits],
        ))  # fmt: skip
    else:
        out.write("no limit at 80% of its amount or more\n")
    out.write(f"({report.counters} rate-limit counters")
    if report.counters_unknown:
        out.write(f", {report.counters_unknown} of windows with no known amount: --limits")
    out.write(")\n\n")
    rows = [(name or "(none)", count) for name, count in report.namespaces.items()]
    rows += [("tag sets", report.tags), ("http responses", report.http_entries)]
    out.write(table(("CACHE NAMESPACE", "KEYS"), rows))
    if report.truncated:
        out.write("\nstopped at --limit keys scanned: figures are partial\n")
