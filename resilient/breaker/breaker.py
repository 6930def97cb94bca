"""The circuit breaker: pybreaker's vocabulary, a call path that never serializes calls.

.. versionadded:: 0.1
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, overload

import pybreaker
from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from resilient.backends import async_backend_from_url, backend_from_url
from resilient.backends.base import AsyncBackend, SyncBackend
from resilient.breaker import _hub
from resilient.breaker.calls import MISSING, Guard, Source, acall_through, call_through, wrap
from resilient.breaker.control import PybreakerSurface
from resilient.breaker.engine import Exclusion
from resilient.breaker.options import BreakerOptions, resolve
from resilient.breaker.policies import ConsecutiveFailures
from resilient.breaker.shared import SharedStore
from resilient.breaker.state import Permit, StateMachine
from resilient.config import Settings
from resilient.errors import ConfigurationError
from resilient.instrumentation import _hub as _metrics
from resilient.instrumentation._meters import BreakerMeter

__all__ = ["CircuitBreaker"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")
_Seconds = float | timedelta
_counter = iter(range(1, 1 << 62))


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class CircuitBreaker(PybreakerSurface, pybreaker.CircuitBreaker):
    """A circuit breaker usable as a decorator, a context manager or through ``call()``.

    It speaks pybreaker's language (``fail_max``, ``reset_timeout``,
    ``success_threshold``, ``exclude``, listeners, ``STATE_*``; it *is* a
    ``pybreaker.CircuitBreaker``, so pybreaker listeners work unchanged) but its lock
    only covers admission and bookkeeping: calls run concurrently, a native ``async``
    path awaits coroutines, and half-open admits exactly ``permitted_calls`` probes.

    Every option left as ``None`` comes from the ``RESILIENT_BREAKER_*`` settings (with
    this name's per-name overrides), read now; explicit arguments win.

    Args:
        name: identifies the breaker in logs, errors, per-name settings and Redis keys.
        fail_max: consecutive failures that open the circuit (``policy="consecutive"``).
        reset_timeout: seconds the circuit stays open before probes are admitted.
        success_threshold: successful probes that close the circuit again.
        permitted_calls: probes admitted at once while half-open; others are rejected.
        probe_timeout: seconds a probe's lease lasts if the probe never reports.
        policy: ``"consecutive"`` or ``"rate"`` (failure/slow-call rate over a window).
        failure_rate: rate policy: failure percentage that opens the circuit.
        slow_call_rate: rate policy: slow-call percentage that opens the circuit.
        slow_call_duration: rate policy: seconds from which a call is slow.
        window_type: rate policy: ``"count"`` (last N calls) or ``"time"`` (last N s).
        window_size: rate policy: N.
        minimum_calls: rate policy: calls in the window before a rate is judged.
        exclude: exception types or predicates whose exceptions count as nothing
            (unlike pybreaker, where they count as successes). A caller's
            cancellation, ``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit``
            always do; a cancellation by a timeout around the call is a failure, and
            under the rate policy one after ``slow_call_duration`` is a slow call.
        failure_predicate: called with each result; True counts it as a failure
            (e.g. ``lambda response: response.status_code >= 500``).
        fallback: what a rejected call returns: a callable (called with the call's
            arguments) or a value. Without one, rejections raise ``CircuitOpenError``.
        listeners: ``pybreaker.CircuitBreakerListener`` instances.
        throw_new_error_on_trip: raise ``CircuitOpenError`` (from the original error)
            on the failure that opens the circuit, as pybreaker does by default.
        force_open: reject every call (maintenance switch).
        disabled: let every call through and record nothing.
        shared: share state between processes through Redis (``url``).
        url: the Redis URL for shared state (default: ``RESILIENT_BREAKER_URL``, then
            ``RESILIENT_BACKEND_URL``).
        backend: a sync Redis backend to share state through (implies ``shared``).
        async_backend: its asyncio twin for async calls (built from ``url`` if omitted).
        resync_interval: seconds between re-reads of shared state; 0 turns them off.
        clock: monotonic seconds. An injected clock also replaces Redis ``TIME`` in
            shared state, so tests move time everywhere at once.
        settings: settings to use instead of reading the environment.

    Raises:
        ConfigurationError: an option has a value that cannot be used.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        fail_max: int | None = None,
        reset_timeout: _Seconds | None = None,
        success_threshold: int | None = None,
        permitted_calls: int | None = None,
        probe_timeout: _Seconds | None = None,
        policy: Literal["consecutive", "rate"] | None = None,
        failure_rate: float | None = None,
        slow_call_rate: float | None = None,
        slow_call_duration: _Seconds | None = None,
        window_type: Literal["count", "time"] | None = None,
        window_size: int | None = None,
        minimum_calls: int | None = None,
        exclude: Iterable[Exclusion] | None = None,
        failure_predicate: Callable[[Any], bool] | None = None,
        fallback: object = MISSING,
        listeners: Sequence[pybreaker.CircuitBreakerListener] | None = None,
        throw_new_error_on_trip: bool = False,
        force_open: bool | None = None,
        disabled: bool | None = None,
        shared: bool | None = None,
        url: str | None = None,
        backend: SyncBackend | None = None,
        async_backend: AsyncBackend | None = None,
        resync_interval: _Seconds | None = None,
        clock: Callable[[], float] | None = None,
        settings: Settings | None = None,
    ) -> None:
        # pybreaker's constructor is not called: it builds a storage-backed state and an
        # RLock this class replaces. Every public pybreaker member is overridden below.
        if name is None:
            name = f"breaker-{next(_counter)}"
        elif not isinstance(name, str) or not name:
            raise ConfigurationError("name", name, "a non-empty string")
        if shared is None and backend is not None:
            shared = True
        if settings is None:
            settings = Settings.from_env()
        explicit = {
            "fail_max": fail_max, "reset_timeout": reset_timeout,
            "success_threshold": success_threshold, "permitted_calls": permitted_calls,
            "probe_timeout": probe_timeout, "policy": policy, "failure_rate": failure_rate,
            "slow_call_rate": slow_call_rate, "slow_call_duration": slow_call_duration,
            "window_type": window_type, "window_size": window_size,
            "minimum_calls": minimum_calls, "force_open": force_open, "disabled": disabled,
            "shared": shared, "url": url, "resync_interval": resync_interval,
        }  # fmt: skip
        self.options: BreakerOptions = resolve(name, explicit, settings)
        options = self.options
        policy_object = options.build_policy()
        self._clock = clock or time.monotonic
        self._machine = StateMachine(
            name, policy_object,
            reset_timeout=options.reset_timeout, success_threshold=options.success_threshold,
            permitted_calls=options.permitted_calls, probe_timeout=options.probe_timeout,
        )  # fmt: skip
        self._counting = policy_object if isinstance(policy_object, ConsecutiveFailures) else None
        self._timed = policy_object.timed
        self._slow_call_duration = options.slow_call_duration
        self._excluded = list(exclude or ())
        self._predicate = failure_predicate
        self._fallback = fallback
        self._listeners = list(listeners or ())
        self._meter: BreakerMeter | None = None  # set by metrics exporters (track below)
        self._throw_new_error_on_trip = throw_new_error_on_trip
        self._state_views = {
            STATE_CLOSED: pybreaker.CircuitClosedState(self),
            STATE_OPEN: pybreaker.CircuitOpenState(self),
            STATE_HALF_OPEN: pybreaker.CircuitHalfOpenState(self, None),
        }
        self._permits: contextvars.ContextVar[tuple[Permit, ...]] = contextvars.ContextVar(
            f"resilient-breaker-{name}", default=()
        )
        if options.force_open:
            self._machine.set_forced("open")
        elif options.disabled:
            self._machine.set_forced("disabled")
        self._store = None
        if options.shared:
            self._connect(backend, async_backend, settings, clock)
        _metrics.track("circuitbreaker", self)  # its state is exported from now on

    def _connect(
        self,
        backend: SyncBackend | None,
        async_backend: AsyncBackend | None,
        settings: Settings,
        clock: Callable[[], float] | None,
    ) -> None:
        owns = backend is None
        url = self.options.url
        defaults: dict[str, Any] = {
            "timeout": settings.op_timeout,
            "connect_timeout": settings.connect_timeout,
            "guard_failures": settings.guard_failures,
            "guard_cooldown": settings.guard_cooldown,
        }
        if backend is None:
            backend = backend_from_url(url, **defaults)
        source: AsyncBackend | Callable[[], AsyncBackend] | None = async_backend
        if async_backend is None and owns:
            source = lambda: async_backend_from_url(url, **defaults)  # noqa: E731
        try:
            store = SharedStore(self.name, self._machine, backend, async_backend=source,
                                clock=self._clock, time_source=clock,
                                owns_backends=owns)  # fmt: skip
        except ConfigurationError:
            if owns:
                backend.close()
            raise
        self._machine.authoritative = False
        self._store = store
        interval = self.options.resync_interval
        if _in_event_loop():
            # Built by a coroutine (a decorator's first call): no waiting and no sync
            # round trip on the loop; the resync thread reads the shared state at once.
            _hub.subscribe(backend, self.name, self)
            _hub.resyncer.add(self, interval, first=0.0)
            return
        _hub.subscribe(backend, self.name, self, wait=settings.connect_timeout)
        self.resync()  # one round trip: start from the cluster's state, not "closed"
        if interval > 0:
            _hub.resyncer.add(self, interval)

    def shutdown(self) -> None:
        """Stop listening for shared state and close the connections this breaker made.

        A breaker without shared state has nothing to release.
        """
        store = self._store
        if store is not None:
            _hub.resyncer.remove(self)
            _hub.unsubscribe(store.backend, self.name, self)
            store.close()

    async def ashutdown(self) -> None:
        """:meth:`shutdown`, also closing the asyncio connections of the running loop."""
        store = self._store
        if store is not None:
            _hub.resyncer.remove(self)
            _hub.unsubscribe(store.backend, self.name, self)
            await store.aclose()

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.current_state}>"

    # -- calling -------------------------------------------------------------------------

    @overload  # type: ignore[override]
    def __call__(self, func: Callable[_P, _R], /) -> Callable[_P, _R]: ...

    @overload
    def __call__(self) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...

    def __call__(self, *call_args: Any, **call_kwargs: Any) -> Any:
        """Decorate a function: sync, ``async def``, generator or async generator.

        ``@breaker`` and ``@breaker()`` both work. The breaker's ``fallback`` applies.
        """
        if call_kwargs or len(call_args) > 1:
            raise TypeError("use @breaker or @breaker(); options go to the constructor")
        if call_args:
            return wrap(call_args[0], Source(self), self._fallback)
        return lambda func: wrap(func, Source(self), self._fallback)

    def call(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Call ``func(*args, **kwargs)`` through the breaker and return its result.

        A generator returned by ``func`` stays guarded until it is exhausted or closed.

        Raises:
            CircuitOpenError: the call was rejected and there is no fallback.
            TypeError: ``func`` returned a coroutine: use :meth:`acall`.
        """
        result: _T = call_through(self, func, self._fallback, args, kwargs)
        return result

    async def acall(self, func: Callable[..., Coroutine[Any, Any, _T]], *args: Any,
                    **kwargs: Any) -> _T:  # fmt: skip
        """Await ``func(*args, **kwargs)`` through the breaker; the asyncio ``call()``."""
        result: _T = await acall_through(self, func, self._fallback, args, kwargs)
        return result

    def call_async(self, func: Callable[..., Coroutine[Any, Any, _T]], *args: Any,
                   **kwargs: Any) -> Coroutine[Any, Any, _T]:  # fmt: skip
        """pybreaker's name (Tornado there): here a coroutine, the same as :meth:`acall`."""
        return self.acall(func, *args, **kwargs)

    def calling(self) -> Guard:  # type: ignore[override]
        """A context manager for one guarded block, usable with ``with`` and ``async with``."""
        return Guard(self)

    def __enter__(self) -> CircuitBreaker:
        permit = self.admit()
        self._permits.set((*self._permits.get(), permit))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        *rest, permit = self._permits.get()
        self._permits.set(tuple(rest))
        if exc is None:
            self.record_success(permit)
        else:
            self._failed(permit, exc)

    async def __aenter__(self) -> CircuitBreaker:
        permit = await self.aadmit()
        self._permits.set((*self._permits.get(), permit))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        *rest, permit = self._permits.get()
        self._permits.set(tuple(rest))
        if exc is None:
            await self.arecord_success(permit)
        else:
            await self._afailed(permit, exc)

    @property
    def name(self) -> str:
        """The breaker's name (fixed when it is built)."""
        return self._machine.name

    @name.setter
    def name(self, name: str) -> None:
        raise AttributeError("a breaker's name is fixed when it is built")
