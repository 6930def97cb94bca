"""The negative cache under threads: remembering, recalling and forgetting at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from resilient.ratelimit.decision import Decision
from resilient.ratelimit.negative import NegativeCache

REJECTED = Decision(False, True, "x", (), "redis", 1.0)
THREADS, ROUNDS = 8, 4000


def test_another_thread_forgetting_during_an_eviction_cannot_break_it() -> None:
    """Another thread forgets an identity exactly while ``remember`` picks the oldest entry
    to evict (between ``iter()`` and ``next()``): the eviction still succeeds."""
    cache = NegativeCache(max_keys=2)
    cache.remember("a", 1, 0.0, REJECTED)
    cache.remember("b", 1, 0.0, REJECTED)
    interleaved: list[threading.Thread] = []

    def at_next(frame: FrameType, event: str, arg: object) -> None:
        # The profiler sees builtin calls: let another thread run at the worst moment.
        if event == "c_call" and arg is next and frame.f_code.co_name == "remember":
            other = threading.Thread(target=cache.forget, args=("b",))
            other.start()
            other.join(0.2)  # returns at once without a lock; waits in vain with one
            interleaved.append(other)

    sys.setprofile(at_next)
    try:
        cache.remember("c", 1, 0.0, REJECTED)  # evicts "a"
    finally:
        sys.setprofile(None)
    for other in interleaved:
        other.join()
    assert len(interleaved) == 1
    assert [key for key in ("a", "b", "c") if cache.recall(key, 1, 0.5) is not None] == ["c"]


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Threads switch every microsecond: the races a busy server hits now and then."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_threads_remembering_recalling_and_forgetting_keep_the_bound(
    fast_switching: None,
) -> None:
    """8 threads remember, recall (expiring) and forget distinct identities in a cache
    of 16: no error in any thread, and the bound holds."""
    cache = NegativeCache(max_keys=16)
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(number: int) -> None:
        start.wait()
        try:
            for round_ in range(ROUNDS):
                cache.remember(f"{number}-{round_}", 1, 0.0, REJECTED)
                cache.recall(f"{number}-{round_ - 3}", 1, 5.0)  # expired: dropped
                cache.forget(f"{number}-{round_ - 5}")
        except BaseException as exc:  # reported below, whatever its kind
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(number,)) for number in range(THREADS)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert errors == []
    assert len(cache) <= 16
