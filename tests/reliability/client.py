"""HTTP on loopback for the reliability suite: single requests, bursts, a bounded load loop.

Plain ``http.client`` with one keep-alive connection per thread: the client must cost
little, since it shares two cores with nginx, the apps and Redis.
"""

from __future__ import annotations

import http.client
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

#: What a request that never got an HTTP answer reports as its status.
NO_ANSWER = -1


@dataclass(frozen=True)
class Sample:
    """One request: when it started (monotonic), how long it took, what came back."""

    started: float
    elapsed: float
    status: int
    upstream: str = ""
    body: bytes = b""


class Client:
    """One keep-alive connection to ``port``, reopened after any error."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Sample:
        started = time.monotonic()
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
            self._conn.request("GET", path, headers=dict(headers or {}))
            response = self._conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return Sample(started, time.monotonic() - started, NO_ANSWER)
        if response.will_close:
            self.close()
        upstream = response.getheader("x-upstream", "")
        return Sample(started, time.monotonic() - started, response.status, upstream, body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def get(port: int, path: str, headers: Mapping[str, str] | None = None) -> Sample:
    """One request on a connection of its own."""
    client = Client(port)
    try:
        return client.get(path, headers)
    finally:
        client.close()


def burst(
    port: int, paths: list[str], *, threads: int = 6, headers: Mapping[str, str] | None = None
) -> list[Sample]:
    """One request per item of ``paths``, from ``threads`` threads released at once."""
    start = threading.Barrier(threads)
    lock = threading.Lock()
    queue = list(reversed(paths))

    def worker() -> list[Sample]:
        client = Client(port)
        samples: list[Sample] = []
        start.wait(timeout=30)
        while True:
            with lock:
                if not queue:
                    break
                path = queue.pop()
            samples.append(client.get(path, headers))
        client.close()
        return samples

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        return [sample for future in futures for sample in future.result()]


@dataclass
class LoadLoop:
    """Requests from ``threads`` threads, each ``interval`` seconds apart per thread, until
    ``stop()``, ``max_requests`` or ``max_seconds``: bounded in count and duration.

    ``request(n)`` gives the path and headers of the ``n``-th request of a thread.
    """

    port: int
    request: Callable[[int], tuple[str, Mapping[str, str]]]
    threads: int = 3
    interval: float = 0.01
    max_requests: int = 20_000
    max_seconds: float = 30.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)
        ]

    def start(self) -> LoadLoop:
        self._deadline = time.monotonic() + self.max_seconds
        for worker in self._workers:
            worker.start()
        return self

    def _run(self) -> None:
        client = Client(self.port)
        number = 0
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                if len(self.samples) >= self.max_requests:
                    break
            path, headers = self.request(number)
            sample = client.get(path, headers)
            with self._lock:
                self.samples.append(sample)
            number += 1
            self._stop.wait(self.interval)
        client.close()

    def stop(self) -> list[Sample]:
        """Stop the threads; the samples, in order of start."""
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)
        return sorted(self.samples, key=lambda sample: sample.started)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.99 for p99); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]
