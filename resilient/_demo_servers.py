"""Starting and stopping the demo's servers: a thread, or N processes. Strictly private.

With ``--workers N`` each worker is a process of the ``spawn`` context (no state copied
from the parent, as with a real process manager) serving on a port of its own; the load
goes round robin over the ports, and the middleware in every worker uses the same Redis.
Whatever is started here is stopped by :meth:`Servers.stop`, also on errors.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import threading
from collections.abc import Callable
from typing import Any

from resilient._demo_app import Plan, Served, serve_in_worker

_START_TIMEOUT = 60.0  # seconds a worker may take to import resilient and listen
_STOP_TIMEOUT = 10.0


class DemoError(Exception):
    """Something the demo explains in one line (a worker that could not start)."""


class Servers:
    """The app (bare or behind the middleware), served by one thread or N processes."""

    def __init__(self, plan: Plan, *, resilient: bool, workers: int) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._epoch: Any = self._context.Value("d", math.inf)  # no outage before the start
        self._served: Served | None = None
        self._processes: list[Any] = []
        self._reports: Any = None
        self._notes: Any = None  # the workers' breaker transitions, for the display
        self._relay: threading.Thread | None = None
        self._stop: Any = None
        self.ports: list[int] = []
        if workers == 1:
            self._served = Served(plan, self._epoch, resilient=resilient)
            self.ports = [self._served.port]
            return
        self._reports = self._context.Queue()
        self._notes = self._context.Queue()
        self._stop = self._context.Event()
        for seed in range(workers):
            channels = (self._reports, self._notes, self._stop)
            process = self._context.Process(
                target=serve_in_worker,
                args=(plan, self._epoch, resilient, seed, *channels),
                name=f"resilient-demo-worker-{seed}",
                daemon=True,
            )
            process.start()
            self._processes.append(process)
        try:
            for _ in range(workers):
                self.ports.append(int(self._expect("port")[1]))
        except BaseException:
            self._end_processes()
            raise

    def _expect(self, kind: str) -> tuple[Any, ...]:
        try:
            report: tuple[Any, ...] = self._reports.get(timeout=_START_TIMEOUT)
        except queue.Empty:
            raise DemoError(f"a worker sent no {kind} in {_START_TIMEOUT:.0f}s") from None
        if report[0] == "error":
            raise DemoError(f"a worker failed: {report[1]}")
        return report

    def begin(self, wall_clock: float, note: Callable[[str], None]) -> None:
        """Mark the start of the traffic: the upstream's outage is timed from it. The
        workers' breaker transitions are passed to ``note`` from now until :meth:`stop`."""
        self._epoch.value = wall_clock
        if self._notes is not None:
            self._relay = threading.Thread(target=self._pass_notes, args=(note,),
                                           name="resilient-demo-notes")  # fmt: skip
            self._relay.start()

    def _pass_notes(self, note: Callable[[str], None]) -> None:
        while (message := self._notes.get()) is not None:
            note(message)

    def stop(self) -> tuple[int, int]:
        """Stop every server; return the upstream calls and breaker trips counted.

        With several workers sharing a breaker, each sees every trip (its own, and the
        others' through the backend), so the trips are the most any worker saw.
        """
        if self._served is not None:
            self._served.stop()
            return self._served.upstream.calls, self._served.trips.trips
        self._stop.set()
        calls, trips = 0, 0
        try:
            for _ in self._processes:
                report = self._expect("report")
                calls += int(report[1])
                trips = max(trips, int(report[2]))
        finally:
            self._end_processes()
        return calls, trips

    def _end_processes(self) -> None:
        if self._stop is not None:
            self._stop.set()
        for process in self._processes:
            process.join(_STOP_TIMEOUT)
            if process.is_alive():  # pragma: no cover - a worker stuck in shutdown
                process.kill()
                process.join()
        # Every worker has ended, so its notes are all in the queue: the relay shows
        # them, then meets the end mark.
        self._notes.put(None)
        if self._relay is not None:
            self._relay.join()
        for channel in (self._reports, self._notes):
            channel.close()
            channel.join_thread()
