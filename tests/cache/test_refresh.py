"""Refreshes: XFetch windows, stale values shared by waiting callers, refreshes that
defer to a lease holder or to a newer value, and refreshes that fail."""

from __future__ import annotations

import asyncio
import inspect
import random
import threading
import time
import uuid
from typing import Any

from resilient.cache import cached
from resilient.cache.decorator import engine_of
from resilient.cache.flows import READ, REFRESH, compute
from resilient.cache.stampede import SKIP
from resilient.cache.sync_cache import SyncCache
from resilient.config import Settings
from tests.cache._backends import FlakyBackend, SlowAsyncBackend
from tests.cache.test_redis import raw_client
from tests.support.clock import FakeClock

SETTINGS = Settings.from_env({})


def _slow_compute(clock: FakeClock) -> Any:
    """A function whose computation takes 1 s of fake time (its recorded delta)."""
    versions: list[int] = []

    def compute(x: int) -> int:
        clock.advance(1.0)
        versions.append(x)
        return len(versions)

    return compute, versions


def test_sync_xfetch_window_refreshes_in_a_thread(clock: FakeClock) -> None:
    """Inside the XFetch window a hit may start one background refresh."""
    function, _ = _slow_compute(clock)
    value = cached(ttl=10, xfetch_beta=100, clock=clock, settings=SETTINGS)(function)
    random.seed(0)
    assert value(1) == 1
    assert value(1) == 1  # a hit; the draw (p = 0.9 here) starts a refresh
    assert value.drain(5)
    assert value.stats().refreshes == 1
    assert value(1) == 2  # the refreshed value (this hit may start the next refresh)
    assert value.drain(5)
    assert value.stats().misses == 1


async def test_async_xfetch_window_refreshes_in_a_task(clock: FakeClock) -> None:
    """The same for coroutine functions: the refresh is a task."""
    versions: list[int] = []

    @cached(ttl=10, xfetch_beta=100, clock=clock, settings=SETTINGS)
    async def value(x: int) -> int:
        clock.advance(1.0)
        versions.append(x)
        return len(versions)

    random.seed(0)
    assert await value(1) == 1
    assert await value(1) == 1
    await value.adrain()
    assert await value(1) == 2
    assert value.stats().refreshes == 1


def test_remote_xfetch_refresh(clock: FakeClock) -> None:
    """A Redis entry inside its XFetch window is served and refreshed in the background."""
    function, versions = _slow_compute(clock)
    backend = FlakyBackend()
    name = f"xf-{uuid.uuid4().hex}"
    value = cached(ttl=10, xfetch_beta=100, backend=backend, name=name, clock=clock,
                   settings=SETTINGS)(function)  # fmt: skip
    random.seed(0)
    assert value(1) == 1
    assert value(1) == 1
    assert value.drain(5)
    assert value.stats().refreshes == 1
    assert versions == [1, 1]


def test_followers_share_a_stale_value(clock: FakeClock) -> None:
    """Callers waiting on the flight that served a stale value get it too, counted."""
    backend = FlakyBackend()
    name = f"swr-{uuid.uuid4().hex}"

    @cached(ttl=10, stale_while_revalidate=60, xfetch_beta=0, backend=backend, name=name,
            clock=clock, settings=SETTINGS)  # fmt: skip
    def value(x: int) -> str:
        return "v"

    value(1)
    clock.advance(11)
    backend.slow_get = 0.2  # the leader's read lasts while the second caller arrives
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(value(1))) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    backend.slow_get = 0.0
    assert value.drain(5)
    assert results == ["v", "v"]
    assert value.stats().stale == 2


async def test_async_followers_share_a_stale_value(clock: FakeClock) -> None:
    """The asyncio flavour of the same."""
    name = f"aswr-{uuid.uuid4().hex}"
    backend = SlowAsyncBackend()

    @cached(ttl=10, stale_while_revalidate=60, xfetch_beta=0, backend=backend, name=name,
            clock=clock, settings=SETTINGS)  # fmt: skip
    async def value(x: int) -> str:
        return "v"

    await value(1)
    clock.advance(11)
    assert list(await asyncio.gather(value(1), value(1))) == ["v", "v"]
    await value.adrain()
    assert value.stats().stale == 2
    await backend.aclose()


async def test_async_followers_share_the_leaders_exception() -> None:
    """When the computing task raises, waiting tasks get the same error."""
    runs: list[int] = []

    @cached(ttl=60, settings=SETTINGS)
    async def fails(x: int) -> int:
        runs.append(x)
        await asyncio.sleep(0.01)
        raise ValueError("down")

    results = await asyncio.gather(fails(1), fails(1), fails(1), return_exceptions=True)
    assert [type(result) for result in results] == [ValueError] * 3
    assert runs == [1]


def test_a_refresh_leaves_the_key_to_whoever_holds_its_lease(clock: FakeClock) -> None:
    """A background refresh that cannot take the lease does nothing."""
    backend = FlakyBackend()
    name = f"skip-{uuid.uuid4().hex}"
    calls: list[int] = []

    @cached(ttl=10, stale_while_revalidate=60, xfetch_beta=0, lock=True, backend=backend,
            name=name, clock=clock, settings=SETTINGS)  # fmt: skip
    def value(x: int) -> int:
        calls.append(x)
        return len(calls)

    value(1)
    backend.client.set(f"{name}:i1:lease", b"another process", px=60_000)
    clock.advance(11)
    assert value(1) == 1
    assert value.drain(5)
    assert calls == [1]
    assert value.stats().refreshes == 0


def test_a_refresh_adopts_a_newer_value_written_elsewhere(remote: Any) -> None:
    """Holding the lease, a refresh that finds a newer version stores nothing."""
    name = f"newer-{uuid.uuid4().hex}"
    calls: list[str] = []

    def make(role: str) -> Any:
        @cached(ttl=60, backend=remote, name=name, lock=True, settings=SETTINGS)
        def compute(x: int) -> str:
            calls.append(role)
            return role

        return compute

    here, elsewhere = make("here"), make("elsewhere")
    here(1)
    engine = engine_of(here)
    assert isinstance(engine, SyncCache)
    l2key = engine.l2key(1)
    old = engine.read_entry(1, l2key, raw_client(remote).get(l2key))
    elsewhere.refresh(1)
    outcome = engine._compute(1, (1,), old, REFRESH, engine.backend(), None)
    assert (outcome.value, outcome.kind) == ("elsewhere", SKIP)
    assert calls == ["here", "elsewhere"]
    here.close()
    elsewhere.close()


def test_an_abandoned_flow_yields_nothing_more() -> None:
    """Closing a flow that holds the lease ends it quietly (the lease then expires)."""
    name = f"closed-{uuid.uuid4().hex}"
    backend = FlakyBackend()  # the flow is driven by hand below; nothing reaches it

    @cached(ttl=60, backend=backend, name=name, lock=True, settings=SETTINGS)
    def value(x: int) -> int:
        return x

    engine = engine_of(value)
    flow = compute(engine, 1, (1,), None, READ, remote=True, stale=None)
    assert next(flow)[1] == f"{name}:i1:lease"  # SET NX
    flow.send(True)  # acquired: read again
    assert flow.send(None) == (6,)  # nothing there: CALL the function
    flow.close()  # would raise RuntimeError if the flow tried to release the lease now
    assert inspect.getgeneratorstate(flow) == inspect.GEN_CLOSED


async def test_async_background_refresh_errors_are_counted(clock: FakeClock) -> None:
    """A failing refresh task keeps the stale value and counts an error."""
    outcomes: list[int | Exception] = [1, RuntimeError("boom")]

    @cached(ttl=10, stale_while_revalidate=5, xfetch_beta=0, clock=clock, settings=SETTINGS)
    async def value(x: int) -> int:
        result = outcomes.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    await value(1)
    clock.advance(11)
    assert await value(1) == 1
    await value.adrain()
    assert value.stats().errors == 1
