"""The demo's traffic: paced clients on loopback, bounded in time. Strictly private.

Each client is a thread with one ``http.client`` connection (opened again when the server
closes it), sending ``GET /items/{id}`` at its own pace with its own ``X-Client`` header,
so that the rate limit applies per client. Popular items are asked for more often (a
skewed choice), as in real traffic. Every request's status, latency and whether the cache
answered it (an ``Age`` header) is recorded; the figures of the summary come from these.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

ERROR = 0  # the status recorded when no HTTP answer came (connection reset, timeout)


@dataclass(frozen=True, slots=True)
class Client:
    """One client of the load: its name and how many requests a second it sends."""

    name: str
    rate: float


#: Eight well-behaved clients and one that sends far more than its share.
CLIENTS = (*(Client(f"client-{n}", 15.0) for n in range(1, 9)), Client("greedy", 120.0))


@dataclass(slots=True)
class Record:
    """What the clients saw: per request a status, a latency (s) and a cache flag."""

    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, latency: float, hit: bool) -> None:
        with self.lock:
            self.statuses.append(status)
            self.latencies.append(latency)
            self.hits += hit


def _item(rng: random.Random, items: int) -> int:
    # A skewed choice: item 1 most often, the tail rarely (a Pareto-like popularity).
    return min(items, int(rng.paretovariate(1.2)))


def _client(port: int, client: Client, deadline: float, record: Record, seed: int,
            items: int) -> None:  # fmt: skip
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    interval = 1 / client.rate
    next_send = time.monotonic() + rng.uniform(0, interval)
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            if next_send > now:
                time.sleep(min(next_send - now, deadline - now))
                continue
            next_send += interval
            started = time.perf_counter()
            try:
                connection.request("GET", f"/items/{_item(rng, items)}",
                                   headers={"X-Client": client.name})  # fmt: skip
                response = connection.getresponse()
                response.read()
                status, hit = response.status, response.getheader("Age") is not None
            except (OSError, http.client.HTTPException):
                connection.close()  # the next request opens a new connection
                status, hit = ERROR, False
            record.add(status, time.perf_counter() - started, hit)
    finally:
        connection.close()


def drive(ports: Sequence[int], duration: float, *, clients: Sequence[Client] = CLIENTS,
          items: int = 200, seed: int = 1,
          progress: Callable[[float, Record], None] | None = None) -> Record:  # fmt: skip
    """Send the clients' traffic at ``ports`` (round robin) for ``duration`` seconds.

    ``progress`` is called about four times a second with the elapsed time and the
    record so far. Every thread started here has ended when this returns.
    """
    record = Record()
    started = time.monotonic()
    deadline = started + duration
    threads = [
        threading.Thread(
            target=_client,
            name=f"resilient-demo-{client.name}",
            args=(ports[n % len(ports)], client, deadline, record, seed + n, items),
        )
        for n, client in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    while alive := [thread for thread in threads if thread.is_alive()]:
        alive[0].join(0.25)
        if progress is not None:
            progress(min(time.monotonic() - started, duration), record)
    for thread in threads:
        thread.join()
    return record
