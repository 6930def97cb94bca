"""Metrics: exact counts through both exporters, nothing registered while off."""

from __future__ import annotations

import logging
import subprocess
import sys
from wsgiref.util import setup_testing_defaults

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from resilient import CachePolicy, ResilientWSGIMiddleware, Rule, cached
from resilient.backends._guard import BackendGuard
from resilient.breaker import CircuitBreaker
from resilient.config import Settings
from resilient.errors import CircuitOpenError
from resilient.instrumentation import (
    Event,
    add_listener,
    enable_otel,
    enable_prometheus,
    remove_listener,
    samples,
)
from resilient.instrumentation._catalog import METRICS, exported_name
from resilient.ratelimit import RateLimiter
from tests.support.clock import FakeClock

SETTINGS = Settings.from_env({})


def _value(metric: str, **labels: str) -> float:
    wanted = tuple(sorted(labels.items()))
    found = [s.value for s in samples() if s.metric == metric and tuple(sorted(s.labels)) == wanted]
    assert len(found) == 1, (metric, labels, found)
    return found[0]


def _fail() -> None:
    raise ConnectionError("down")


def _exercise(prefix: str, clock: FakeClock) -> None:
    """5 cache calls (1 miss, 4 hits), 16 limiter decisions (2 allowed, 2 of them timed:
    one in 8), a breaker that succeeds twice, fails twice (opens), rejects three calls."""

    @cached(ttl=60, name=f"{prefix}.price", settings=SETTINGS)
    def price(item: str) -> float:
        return 9.99

    for _ in range(5):
        price("book")
    limiter = RateLimiter("2/minute", name=f"{prefix}.api", settings=SETTINGS, clock=clock)
    for _ in range(16):
        limiter.hit("client")
    breaker = CircuitBreaker(f"{prefix}.up", fail_max=2, reset_timeout=30, clock=clock,
                             settings=SETTINGS)  # fmt: skip
    for _ in range(2):
        breaker.call(lambda: 1)
    for _ in range(2):
        with pytest.raises((ConnectionError, CircuitOpenError)):
            breaker.call(_fail)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: 1)
    _exercise.keep = (price, limiter, breaker)  # type: ignore[attr-defined]


def test_prometheus_counts_are_exact_and_named_as_documented(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    enable_prometheus(registry)
    _exercise("prom", clock)
    text = generate_latest(registry).decode()
    for metric in METRICS:
        assert f"# TYPE {exported_name(metric)} " in text
    assert 'resilient_cache_requests_total{name="prom.price",result="hit"} 4.0' in text
    assert 'resilient_cache_requests_total{name="prom.price",result="miss"} 1.0' in text
    calls = 'resilient_ratelimiter_calls_total{name="prom.api",outcome='
    assert calls + '"allowed",policy="2/minute"} 2.0' in text
    assert calls + '"limited",policy="2/minute"} 14.0' in text
    assert 'resilient_circuitbreaker_calls_total{kind="successful",name="prom.up"} 2.0' in text
    assert 'resilient_circuitbreaker_calls_total{kind="failed",name="prom.up"} 2.0' in text
    assert 'resilient_circuitbreaker_calls_total{kind="not_permitted",name="prom.up"} 3.0' in text
    assert 'resilient_circuitbreaker_state{name="prom.up",state="open"} 1.0' in text
    assert 'resilient_circuitbreaker_state{name="prom.up",state="closed"} 0.0' in text
    # The transition is counted once, though three rejections followed it.
    assert (
        'resilient_circuitbreaker_transitions_total{from="closed",name="prom.up",to="open"} 1.0'
        in text
    )
    assert 'resilient_ratelimiter_decision_seconds_count{name="prom.api"} 2.0' in text
    assert 'resilient_ratelimiter_decision_seconds_bucket{le="+Inf",name="prom.api"} 2.0' in text


def test_breaker_state_gauge_is_set_at_construction() -> None:
    registry = CollectorRegistry()
    enable_prometheus(registry)
    breaker = CircuitBreaker("never.called", settings=SETTINGS)
    text = generate_latest(registry).decode()
    assert 'resilient_circuitbreaker_state{name="never.called",state="closed"} 1.0' in text
    assert breaker.listeners == ()  # metrics count without a listener of the user's


def test_otel_sees_the_same_counts(clock: FakeClock) -> None:
    reader = InMemoryMetricReader()
    enable_otel(MeterProvider(metric_readers=[reader]))
    _exercise("otel", clock)
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[tuple[str, tuple[tuple[str, object], ...]], float] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                    histogram = isinstance(point, HistogramDataPoint)
                    points[key] = point.count if histogram else point.value  # type: ignore[union-attr]
    assert points[("resilient_cache_requests", (("name", "otel.price"), ("result", "hit")))] == 4
    assert points[("resilient_cache_requests", (("name", "otel.price"), ("result", "miss")))] == 1
    limited = (("name", "otel.api"), ("outcome", "limited"), ("policy", "2/minute"))
    assert points[("resilient_ratelimiter_calls", limited)] == 14
    rejected = (("kind", "not_permitted"), ("name", "otel.up"))
    assert points[("resilient_circuitbreaker_calls", rejected)] == 3
    assert points[("resilient_circuitbreaker_state", (("name", "otel.up"), ("state", "open")))] == 1
    assert points[("resilient_ratelimiter_decision_seconds", (("name", "otel.api"),))] == 2


OFF_SCRIPT = """
import prometheus_client
from resilient import cached
from resilient.breaker import CircuitBreaker
from resilient.instrumentation import _hub
from resilient.ratelimit import RateLimiter
b = CircuitBreaker("off")
b.call(lambda: 1)
RateLimiter("5/second", name="off").hit("k")
cached(ttl=5, name="off")(lambda: 1)()
exported = b"resilient_" in prometheus_client.generate_latest()
print(exported, b._meter, _hub.timing)
"""


def test_with_no_exporter_nothing_is_registered_and_breakers_count_nothing() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", OFF_SCRIPT], env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.strip() == "False None False"


def test_the_environment_switches_prometheus_on() -> None:
    env = {"PATH": "/usr/bin:/bin", "RESILIENT_METRICS": "prometheus"}
    out = subprocess.run([sys.executable, "-c", OFF_SCRIPT], env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    exported, meter, timing = out.split(" ", 1)[0], out.split()[1], out.split()[-1]
    assert (exported, timing) == ("True", "True")
    assert "BreakerMeter" in meter


def test_a_raising_listener_never_breaks_a_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    add_listener(broken)
    add_listener(seen.append)
    try:
        breaker = CircuitBreaker("listened", fail_max=1, reset_timeout=5, clock=clock,
                                 settings=SETTINGS)  # fmt: skip
        with caplog.at_level(logging.ERROR, "resilient.instrumentation"):
            with pytest.raises(ConnectionError):
                breaker.call(_fail)
            clock.advance(5)
            assert breaker.call(lambda: "ok") == "ok"
    finally:
        remove_listener(broken)
        remove_listener(seen.append)
    kinds = [(e.detail["old"], e.detail["new"]) for e in seen if e.name == "listened"]
    assert kinds == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
    failures = [r for r in caplog.records if "listener" in r.getMessage()]
    assert len(failures) == 1  # logged once, not per event


def test_guard_counts_errors_by_kind_and_reports_both_changes(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Event] = []
    add_listener(seen.append)
    try:
        guard = BackendGuard("redis://:***@cache:6380/0", 2, 1.0, clock)
        with caplog.at_level(logging.INFO, "resilient.backends"):
            guard.failure(TimeoutError("slow"))
            guard.failure(ConnectionError("refused"))
            assert _value("backend_guard_state", backend=guard.name) == 1.0
            guard.success()
    finally:
        remove_listener(seen.append)
    assert _value("backend_errors", backend=guard.name, kind="timeout") == 1
    assert _value("backend_errors", backend=guard.name, kind="error") == 1
    assert _value("backend_guard_state", backend=guard.name) == 0.0
    assert [e.kind for e in seen if e.name == guard.name] == ["guard_open", "guard_closed"]
    levels = [r.levelno for r in caplog.records if r.name == "resilient.backends"]
    assert levels == [logging.WARNING, logging.WARNING]  # recovery at the failure's level


def test_breaker_logs_recovery_at_the_failures_level(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker("logged", fail_max=1, reset_timeout=5, clock=clock,
                             settings=SETTINGS)  # fmt: skip
    with caplog.at_level(logging.INFO, "resilient.breaker"):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
        for _ in range(3):
            with pytest.raises(CircuitOpenError):
                breaker.call(lambda: 1)
        clock.advance(5)
        breaker.call(lambda: 1)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (logging.WARNING, "breaker 'logged': closed -> open"),
        (logging.INFO, "breaker 'logged': open -> half-open"),
        (logging.WARNING, "breaker 'logged': half-open -> closed"),
    ]  # state changes only: nothing for the three rejections


def _get(app: ResilientWSGIMiddleware, path: str) -> None:
    environ: dict[str, object] = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    b"".join(app(environ, lambda status, headers, exc_info=None: None))  # type: ignore[arg-type]


def test_http_cache_lookups_are_counted() -> None:
    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"hello"]

    wrapped = ResilientWSGIMiddleware(
        app, rules=[Rule("/c/**", cache=CachePolicy(ttl=30))], settings=SETTINGS
    )
    before = {r: _value("http_cache_requests", result=r) for r in ("hit", "miss")}
    for _ in range(4):
        _get(wrapped, "/c/x")
    assert _value("http_cache_requests", result="miss") - before["miss"] == 1
    assert _value("http_cache_requests", result="hit") - before["hit"] == 3


def test_an_unknown_exporter_is_a_configuration_error() -> None:
    from resilient.errors import ConfigurationError
    from resilient.instrumentation._switch import configure_from_env

    with pytest.raises(ConfigurationError, match="RESILIENT_METRICS"):
        configure_from_env({"RESILIENT_METRICS": "statsd"})
    assert configure_from_env({"RESILIENT_METRICS": "none"}) == ()


def test_scraping_while_features_are_built_is_safe() -> None:
    """A middleware builds limiters at first use: a scrape may run meanwhile."""
    import threading

    from resilient.instrumentation import _hub

    built: list[RateLimiter] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            try:
                _hub.tracked("ratelimiter")
            except BaseException as exc:
                errors.append(exc)
                return

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        built.extend(
            RateLimiter("5/second", name=f"race.{number}", settings=SETTINGS)
            for number in range(3000)
        )
    finally:
        done.set()
        scraper.join()
    assert errors == []
    names = {limiter.name for limiter in _hub.tracked("ratelimiter")}
    assert {f"race.{number}" for number in range(3000)} <= names
