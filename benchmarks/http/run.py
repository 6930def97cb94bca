"""HTTP benchmark: resilient's middleware and the anchors against the bare app.

Usage::

    python -m benchmarks.http.run                     # ASGI and WSGI suites, memory backend
    python -m benchmarks.http.run --suite redis       # rate limiting with a Redis backend
    python -m benchmarks.http.run --quick             # 3 rounds of 2 s (a smoke run)
    python -m benchmarks.http.run --pin --fresh       # the method of docs/performance.md
    python -m benchmarks.http.run --suite redis --redis-py  # lane and redis-py side by side
    python -m benchmarks.http.run --suite asgi --metrics    # also with metrics on

``--pin`` keeps the servers on CPU 0 and wrk on CPU 1, with redis-server (which stands in
for a server on another host, so it must not take the app's core); ``--fresh`` starts new server
processes every round, so that one process's luck does not bias all of a variant's rounds.
``--metrics`` adds resilient's cached and limited routes with ``RESILIENT_METRICS=prometheus``
beside the same routes without it (what a request pays for being counted; a scrape
every few seconds is not part of the load).

FastAPI apps run under uvicorn (one worker), Flask apps under gunicorn (one gthread
worker); wrk loads ``GET /items`` with one thread and 32 connections. Rounds alternate
between variants; the figure per variant is the median requests per second, and the
ratio is to the bare app measured in the same run. Needs ``wrk`` (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.http.harness import Variant, pin, pin_process, report, run
from tests.support.redis_servers import RedisServer

UVICORN = [sys.executable, "-m", "uvicorn", "--factory", "benchmarks.http.asgi_apps:make_app",
           "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning",
           "--no-access-log"]  # fmt: skip
GUNICORN = [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", "4",
            "-b", "127.0.0.1:{port}", "--log-level", "warning",
            "benchmarks.http.wsgi_apps:app()"]  # fmt: skip
ASGI = ["bare", "resilient-cached", "fastapi-cache2-cached", "resilient-limited", "slowapi-limited"]
WSGI = ["bare", "resilient-cached", "flask-caching-cached", "resilient-limited",
        "flask-limiter-limited"]  # fmt: skip
METRICS_ON = {"RESILIENT_METRICS": "prometheus"}


def _variants(
    kind: str, names: list[str], env: dict[str, str] | None = None, tag: str = ""
) -> list[Variant]:
    command = UVICORN if kind == "asgi" else GUNICORN
    server = "FastAPI/uvicorn" if kind == "asgi" else "Flask/gunicorn"
    return [
        Variant(
            f"{name}{tag} ({server})", command, "/items", {"BENCH_VARIANT": name, **(env or {})}
        )
        for name in names
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--suite", choices=("asgi", "wsgi", "redis", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 2 s")
    parser.add_argument("--pin", action="store_true",
                        help="servers on CPU 0, wrk and redis-server on CPU 1")  # fmt: skip
    parser.add_argument("--fresh", action="store_true",
                        help="new server processes every round")  # fmt: skip
    parser.add_argument("--redis-py", action="store_true",
                        help="redis suite: also the limited routes with the lane off")  # fmt: skip
    parser.add_argument("--metrics", action="store_true",
                        help="also resilient's routes with the Prometheus exporter on")  # fmt: skip
    args = parser.parse_args()
    if args.pin:
        pin(server="0", load="1")
    if args.quick:
        args.rounds, args.seconds = 3, 2.0
    options = {"rounds": args.rounds, "seconds": args.seconds, "connections": args.connections,
               "fresh": args.fresh}  # fmt: skip
    metered = ["resilient-cached", "resilient-limited"] if args.metrics else []
    if args.suite in ("asgi", "all"):
        variants = _variants("asgi", ASGI) + _variants("asgi", metered, METRICS_ON, " metrics")
        report("ASGI: FastAPI under uvicorn, memory backend", run(variants, **options))
    if args.suite in ("wsgi", "all"):
        variants = _variants("wsgi", WSGI) + _variants("wsgi", metered, METRICS_ON, " metrics")
        report("WSGI: Flask under gunicorn, memory backend", run(variants, **options))
    if args.suite in ("redis", "all"):
        server = RedisServer().start()
        assert server.process is not None
        # Redis stands in for a server on another host: it must not take the app's core.
        pin_process(server.process.pid, "load")
        try:
            env = {"RESILIENT_BACKEND_URL": server.url}
            # A query option that only redis-py understands turns the lane off (a no-op
            # for redis-py itself: 0 is its default), so evals go through redis-py.
            plain = {"RESILIENT_BACKEND_URL": f"{server.url}?health_check_interval=0"}
            rows = []
            for kind in ("asgi", "wsgi"):
                variants = _variants(kind, ["bare", "resilient-limited"], env)
                if args.redis_py:
                    variants += _variants(kind, ["resilient-limited"], plain, " redis-py")
                if args.metrics:
                    on = {**env, **METRICS_ON}
                    variants += _variants(kind, ["resilient-limited"], on, " metrics")
                rows += run(variants, **options)
            report("Rate limiting on a loopback redis-server", rows)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
