"""The ``resilient`` command.

``resilient config`` prints the effective settings, where each came from, secrets masked.
``resilient demo`` runs the cache, a circuit breaker and a rate limiter on the configured
backend (in memory by default) and prints what each did.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from resilient.config import Settings
from resilient.errors import ConfigurationError

__all__ = ["main"]


def _config(args: argparse.Namespace, out: TextIO) -> int:
    # Shown as the command's own lines: a Python warning would point at this file.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = Settings.from_env().explain()
    for warning in caught:
        print(f"resilient: warning: {warning.message}", file=sys.stderr)
    if args.format == "json":
        payload = [{"name": n, "value": v, "source": s} for n, v, s in rows]
        json.dump(payload, out, indent=2)
        out.write("\n")
        return 0
    width = max(len(name) for name, _, _ in rows)
    value_width = min(40, max(len(value) for _, value, _ in rows))
    for name, value, source in rows:
        out.write(f"{name:<{width}}  {value:<{value_width}}  ({source})\n")
    return 0


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from resilient._demo import run_demo  # imports every feature: only when asked

    return run_demo(Settings.from_env(), out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resilient",
        description="Caching, circuit breakers and rate limits for Python services.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="print the effective settings")
    config.add_argument("--format", choices=("table", "json"), default="table")
    config.set_defaults(run=_config)
    demo = commands.add_parser("demo", help="show each feature at work on the backend")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``resilient`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args, out or sys.stdout)
    except ConfigurationError as exc:
        print(f"resilient: configuration error: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
