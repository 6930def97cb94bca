"""Rate-limit decisions against their anchors, side by side in one process.

    python -m benchmarks.bench_ratelimit [--quick]

Memory: one ``RateLimiter.hit`` (a full decision with per-limit figures) against one raw
``limits`` strategy ``hit()`` on ``limits``' ``MemoryStorage``, for each strategy.
Target: at most 1.3 x.

Redis: one ``RateLimiter.hit`` (one script, figures for the headers included) against one
raw redis-py ``EVALSHA`` of the same script with the same keys, i.e. the bare round trip.
Target: at most 1.2 x, over a given redis-py client and over a backend built from a URL
(whose evals take the lane, see docs/backends.md). For context, ``limits``' hit
plus ``get_window_stats`` (what a limiter needing headers does with it) is shown too. A
redis-server is started on a free loopback port (never 6379) and stopped by its id.

Contenders alternate in small blocks of calls; the best block of each is reported (the
least disturbed by other work on the machine).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable

import limits
import limits.storage
import limits.strategies
import redis

from benchmarks import _instrumented
from benchmarks._common import best_ns, redis_server
from resilient.backends import MemoryBackend
from resilient.backends.redis import RedisBackend
from resilient.config import Settings
from resilient.ratelimit import RateLimiter
from resilient.ratelimit.redis import SCRIPTS, limit_args

STRATEGIES = ("sliding-window-counter", "fixed-window", "moving-window")
MEMORY_TARGET = 1.3
REDIS_TARGET = 1.2
SETTINGS = Settings.from_env({})


def memory_section(block: int, blocks: int) -> bool:
    print(
        "in-memory decision vs limits strategy hit() on MemoryStorage "
        f"(best of {blocks} blocks of {block} calls)"
    )
    keys = [f"client-{number}" for number in range(1000)]
    passed = True
    for strategy in STRATEGIES:
        item = limits.parse("1000000000/hour")
        anchor = limits.strategies.STRATEGIES[strategy](limits.storage.MemoryStorage())
        with warnings.catch_warnings():  # a huge moving window warns; it is the point here
            warnings.simplefilter("ignore")
            ours = RateLimiter(
                "1000000000/hour", strategy=strategy, backend=MemoryBackend(), settings=SETTINGS
            )

        def run_anchor(
            count: int, hit: Callable[..., bool] = anchor.hit, item: limits.RateLimitItem = item
        ) -> None:
            for number in range(count):
                hit(item, keys[number % 1000])

        def run_ours(count: int, hit: Callable[..., object] = ours.hit) -> None:
            for number in range(count):
                hit(keys[number % 1000])

        best = best_ns({"limits": run_anchor, "resilient": run_ours}, block, blocks)
        ratio = best["resilient"] / best["limits"]
        passed &= ratio <= MEMORY_TARGET
        print(
            f"  {strategy:24} limits {best['limits']:8.0f} ns   resilient "
            f"{best['resilient']:8.0f} ns   ratio {ratio:.2f} (target <= {MEMORY_TARGET})"
        )
    return passed


def redis_section(block: int, blocks: int) -> bool:
    print(
        "Redis decision with header figures vs one raw EVALSHA "
        f"(best of {blocks} blocks of {block} calls)"
    )
    passed = True
    with redis_server() as port:
        client = redis.Redis(port=port)
        backend = RedisBackend(client)
        storage = limits.storage.RedisStorage(f"redis://127.0.0.1:{port}")
        for strategy in STRATEGIES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours = RateLimiter(
                    "1000000/hour", strategy=strategy, backend=backend, settings=SETTINGS
                )
                # Built from a URL, as most users do: its evals take the lane.
                lane = RateLimiter("1000000/hour", strategy=strategy, settings=SETTINGS,
                                   url=f"redis://127.0.0.1:{port}/0")  # fmt: skip
            ours.hit("warm-up")
            lane.hit("warm-up")
            script = SCRIPTS[strategy]
            (key,) = ours._keys_for("client")  # the very key our decision uses
            args = (1, 1, *limit_args(ours.limits))
            anchor = limits.strategies.STRATEGIES[strategy](storage)
            item = limits.parse("1000000/hour")
            theirs = f"client-{strategy}"  # limits names keys alike for every strategy
            anchor.hit(item, theirs)

            def run_raw(
                count: int, key: str = key, sha: str = script.sha, args: tuple[int, ...] = args
            ) -> None:
                evalsha = client.evalsha
                for _ in range(count):
                    evalsha(sha, 1, key, *args)

            def run_ours(count: int, hit: Callable[..., object] = ours.hit) -> None:
                for _ in range(count):
                    hit("client")

            def run_lane(count: int, hit: Callable[..., object] = lane.hit) -> None:
                for _ in range(count):
                    hit("client")

            def run_limits(
                count: int,
                anchor: limits.strategies.RateLimiter = anchor,
                item: limits.RateLimitItem = item,
                theirs: str = theirs,
            ) -> None:
                for _ in range(count):
                    anchor.hit(item, theirs)
                    anchor.get_window_stats(item, theirs)

            contenders: dict[str, Callable[[int], None]] = {
                "raw": run_raw,
                "resilient": run_ours,
                "lane": run_lane,
                "limits": run_limits,
            }
            best = best_ns(contenders, block, blocks)
            ratio = best["resilient"] / best["raw"]
            lane_ratio = best["lane"] / best["raw"]
            passed &= ratio <= REDIS_TARGET and lane_ratio <= REDIS_TARGET
            print(
                f"  {strategy:24} raw EVALSHA {best['raw'] / 1000:6.1f} us   resilient "
                f"{best['resilient'] / 1000:6.1f} us   ratio {ratio:.2f} "
                f"(target <= {REDIS_TARGET})   from a URL (lane) "
                f"{best['lane'] / 1000:6.1f} us ({lane_ratio:.2f} x)   limits hit+stats "
                f"{best['limits'] / 1000:6.1f} us ({best['limits'] / best['raw']:.2f} x)"
            )
            lane.close()
        client.close()
    return passed


def instrumented_section(block: int, blocks: int) -> bool:
    """A decision timed into the histogram against one untimed (see _instrumented)."""
    print(f"metrics: in-memory decision, Prometheus on vs off (best of {blocks} blocks)")
    _instrumented.enable()
    keys = [f"client-{number}" for number in range(1000)]
    ours = RateLimiter("1000000000/hour", name="bench", backend=MemoryBackend(), settings=SETTINGS)

    def run(count: int, hit: Callable[..., object] = ours.hit) -> None:
        for number in range(count):
            hit(keys[number % 1000])

    return _instrumented.compare(
        "decision (sliding window)", _instrumented.untimed(run), run, block, blocks
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, for CI smoke runs")
    options = parser.parse_args(argv)
    memory = (2_000, 10) if options.quick else (5_000, 20)
    remote = (200, 10) if options.quick else (250, 40)
    started = time.monotonic()
    passed = memory_section(*memory)
    passed &= redis_section(*remote)
    passed &= instrumented_section(*memory)  # last: the exporter stays on once enabled
    print(
        f"{'all targets met' if passed else 'TARGET MISSED'} in {time.monotonic() - started:.1f}s"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
