"""The ``resilient`` command (also ``python -m resilient``).

- ``resilient config``: the effective settings, where each came from, secrets masked;
- ``resilient demo``: the cache, a circuit breaker and a rate limiter at work;
- ``resilient inspect``: shared breakers, limits near their cap and cache figures, read
  from a Redis backend;
- ``resilient breaker open|close|reset NAME``: move a shared breaker for every process;
- ``resilient cache purge --tag T | --namespace N | --url U``: remove cached entries.

Tables by default, ``--json`` for scripts. Failures are one line on stderr, never a
traceback: exit status 1 for a backend that cannot be reached (its URL shown with the
password masked), 2 for a configuration error or a bad argument.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, TextIO

from resilient._cli_backend import CliError, Target, connect, unreachable
from resilient.config import Settings
from resilient.errors import BackendError, ConfigurationError

__all__ = ["main"]

_DEFAULT_LIMIT = 100_000  # keys a command's scans may examine


def _warn(message: str) -> None:
    print(f"resilient: warning: {message}", file=sys.stderr)


def _settings() -> Settings:
    # Unknown variables are shown as the command's own lines: a Python warning would
    # point at this file. Only names are shown, never values (a misspelt URL variable
    # holds a password).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings = Settings.from_env()
    for warning in caught:
        _warn(str(warning.message))
    return settings


def _config(args: argparse.Namespace, out: TextIO) -> int:
    rows = _settings().explain()
    if args.json or args.format == "json":
        from resilient._cli_output import print_json

        print_json(out, [{"name": n, "value": v, "source": s} for n, v, s in rows])
        return 0
    width = max(len(name) for name, _, _ in rows)
    value_width = min(40, max(len(value) for _, value, _ in rows))
    for name, value, source in rows:
        out.write(f"{name:<{width}}  {value:<{value_width}}  ({source})\n")
    return 0


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from resilient._demo import run_demo  # imports every feature: only when asked

    backend = args.backend or _settings().backend_url
    return run_demo(backend, out, duration=args.duration, workers=args.workers, html=args.html)


def _on_backend(
    args: argparse.Namespace, out: TextIO, section: str,
    work: Callable[[Target, Settings], Any], show: Callable[[TextIO, Any], None],
) -> int:  # fmt: skip
    """Connect, run ``work``, print its result; the in-memory backend has nothing to show."""
    from resilient._cli_output import print_json

    settings = _settings()
    target = connect(args.backend, settings, section)
    if target is None:
        message = "the in-memory backend keeps state inside each process: nothing to reach"
        if args.json:
            print_json(out, {"backend": "memory://", "error": message})
        else:
            out.write(f"{message} (set RESILIENT_BACKEND_URL or --backend)\n")
        return 1 if args.command != "inspect" else 0
    try:
        result = work(target, settings)
    except (BackendError, OSError) as exc:
        raise unreachable(target.shown, exc) from None
    except Exception as exc:
        if _is_redis_error(exc):
            raise unreachable(target.shown, exc) from None
        raise
    finally:
        target.close()
    if args.json:
        print_json(out, result if isinstance(result, dict) else result.as_json())
    else:
        show(out, result)
    return 0


def _is_redis_error(exc: Exception) -> bool:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - no redis extra
        return False
    return isinstance(exc, RedisError)


def _amounts(settings: Settings, extra: Sequence[str]) -> dict[int, int]:
    """Window (s) -> the smallest configured amount of that window."""
    from resilient.ratelimit.policy import parse_limits

    amounts: dict[int, int] = {}
    for text in (settings.ratelimit.default, settings.http.limits, *extra):
        if not text:
            continue
        for limit in parse_limits(text, argument="--limits"):
            window = int(limit.window)
            amounts[window] = min(amounts.get(window, limit.amount), limit.amount)
    return amounts


def _inspect(args: argparse.Namespace, out: TextIO) -> int:
    from resilient._cli_inspect import inspect_backend
    from resilient._cli_output import print_report

    def work(target: Target, settings: Settings) -> Any:
        return inspect_backend(
            target, limit_prefix=settings.ratelimit.key_prefix,
            http_prefix=settings.http.key_prefix,
            amounts=_amounts(settings, args.limits), budget=args.limit,
        )  # fmt: skip

    return _on_backend(args, out, "", work, print_report)


def _breaker(args: argparse.Namespace, out: TextIO) -> int:
    from resilient._cli_actions import move_breaker
    from resilient._cli_output import print_breaker

    def work(target: Target, settings: Settings) -> Any:
        return move_breaker(target, settings, args.action, args.name, _warn)

    return _on_backend(args, out, "breaker", work, print_breaker)


def _purge(args: argparse.Namespace, out: TextIO) -> int:
    from resilient import _cli_actions as actions

    if args.tag is None and (args.cache_namespace is not None or args.cache_version is not None):
        raise CliError("--cache-namespace and --cache-version go with --tag", 2)

    def work(target: Target, settings: Settings) -> Any:
        if args.tag is not None:
            cache = settings.cache
            namespace = cache.namespace if args.cache_namespace is None else args.cache_namespace
            version = cache.version if args.cache_version is None else args.cache_version
            return actions.purge_tag(target, args.tag, namespace, version)
        if args.namespace is not None:
            return actions.purge_namespace(target, settings, args.namespace, args.limit)
        return actions.purge_url(target, settings, args.url, args.limit)

    def show(stream: TextIO, result: dict[str, Any]) -> None:
        if "tag" in result:
            stream.write(f"tag {result['tag']}: {result['deleted']} entries deleted\n")
        elif "namespace" in result:
            stream.write(f"namespace {result['namespace']}: {result['deleted']} keys deleted\n")
        else:
            stream.write(f"{result['url']}: {result['deleted']} response and "
                         f"{result['variants_deleted']} variants deleted\n")  # fmt: skip
        if result.get("truncated"):
            stream.write("stopped at --limit keys scanned: run it again for the rest\n")

    return _on_backend(args, out, "http" if args.url is not None else "cache", work, show)


def _version() -> str:
    try:
        return metadata.version("resilient")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resilient",
        description="Caching, circuit breakers and rate limits for Python services.",
    )
    parser.add_argument("--version", action="version", version=f"resilient {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON, for scripts")
    remote = argparse.ArgumentParser(add_help=False, parents=[common])
    remote.add_argument(
        "--backend",
        metavar="URL",
        help="Redis URL (default: the feature's, else RESILIENT_BACKEND_URL)",
    )
    remote.add_argument("--limit", type=_positive, default=_DEFAULT_LIMIT, metavar="N",
                        help="most keys each scan examines (default %(default)s)")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", parents=[common], help="print the effective settings")
    config.add_argument("--format", choices=("table", "json"), default="table")
    config.set_defaults(run=_config)
    demo = commands.add_parser(
        "demo", help="a slow, flaky service under load, without resilient and with it"
    )
    demo.add_argument(
        "--backend",
        metavar="URL",
        help="backend URL (default: RESILIENT_BACKEND_URL, else memory://)",
    )
    demo.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="server processes; more than one needs Redis (default 1)",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="both runs together (default 10)",
    )
    demo.add_argument("--html", metavar="FILE", help="also write the report, with a chart")
    demo.set_defaults(run=_demo)  # fmt: skip
    inspect = commands.add_parser(
        "inspect", parents=[remote], help="breakers, limits near their cap and cache figures"
    )
    inspect.add_argument(
        "--limits",
        action="append",
        default=[],
        metavar="LIMITS",
        help="amounts of the counters to judge (100/minute;5/second)",
    )
    inspect.set_defaults(run=_inspect)  # fmt: skip
    breaker = commands.add_parser("breaker", parents=[remote], help="move a shared breaker")
    breaker.add_argument("action", choices=("open", "close", "reset"))
    breaker.add_argument("name")
    breaker.set_defaults(run=_breaker)
    cache = commands.add_parser("cache", help="cached entries")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True)
    purge = cache_commands.add_parser("purge", parents=[remote], help="remove entries")
    chosen = purge.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--tag", help="entries stored with this tag (configured namespace)")
    chosen.add_argument("--namespace", help="every key of this cache namespace")
    chosen.add_argument("--url", help="the HTTP cache's responses of this URL")
    purge.add_argument(
        "--cache-namespace",
        metavar="NS",
        help="with --tag: the caches' namespace (default RESILIENT_CACHE_NAMESPACE)",
    )
    purge.add_argument(
        "--cache-version",
        metavar="V",
        help="with --tag: the caches' version (default RESILIENT_CACHE_VERSION)",
    )
    purge.set_defaults(run=_purge)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("a positive number")
    return value


def _silence_stdout() -> None:
    # The reader went away (`resilient inspect | head -1`): send what is left nowhere,
    # so that the interpreter's last flush does not fail again (Python's signal docs).
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (captured): nothing to flush later
        pass


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``resilient`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        status: int = args.run(args, stream)
        stream.flush()  # inside the try: a closed pipe fails here, not at exit
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except ConfigurationError as exc:
        print(f"resilient: configuration error: {exc}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"resilient: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
