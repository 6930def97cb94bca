"""``resilient demo``: a small service under load, without resilient and with it. Strictly private.

The service (``GET /items/{id}``, see :mod:`resilient._demo_app`) depends on an upstream
that takes 20 to 50 ms, fails 5% of calls, and goes down completely for a while in the
middle of each run. Clients (:mod:`resilient._demo_load`) send it traffic for half the
duration with the bare app, then half behind :class:`~resilient.ResilientWSGIMiddleware`
with a cached item route, a rate limit per client and a breaker around the upstream; the
two summaries are printed side by side (:mod:`resilient._demo_report`).

Names in the backend carry a part unique to the run (so that runs on a shared Redis do not
see each other's counts); what is printed uses the names a user would give.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path
from typing import TextIO

from resilient._demo_app import Plan
from resilient._demo_html import page
from resilient._demo_load import CLIENTS, drive
from resilient._demo_progress import Progress, breaker_notes
from resilient._demo_report import Summary, table
from resilient._demo_servers import DemoError, Servers
from resilient._secrets import mask_url
from resilient.backends import backend_from_url
from resilient.errors import BackendError

DEFAULT_DURATION = 10.0  # seconds, both runs together


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def plan_for(phase: float, backend_url: str, run: str, workers: int) -> Plan:
    """The service's settings for runs of ``phase`` seconds: timings scale with it, so a
    short run still sees the outage, the breaker trip and recover, and cache hits."""
    environ = {
        # Only what the demo sets: the same figures whatever else the environment tunes.
        "RESILIENT_BACKEND_URL": backend_url,
        "RESILIENT_HTTP_KEY_PREFIX": f"resilient:demo:{run}:http",
        "RESILIENT_RATELIMIT_KEY_PREFIX": f"resilient:demo:{run}:limits",
    }
    return Plan(
        outage=(0.3 * phase, 0.6 * phase),
        cache_ttl=_clamp(0.2 * phase, 0.2, 1.0),
        reset_timeout=_clamp(0.08 * phase, 0.1, 0.5),
        run=run,
        environ=environ,
        shared=workers > 1,
    )


def unreachable(url: str) -> str | None:
    """Why the backend at ``url`` cannot be used, in a few words; ``None`` when it can."""
    if url.startswith("memory://"):
        return None
    backend = backend_from_url(url)
    try:
        backend.get("resilient:demo:ping")
    except BackendError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        return str(cause or exc).split(": ", 1)[-1]
    finally:
        backend.close()
    return None


def _run(plan: Plan, *, resilient: bool, workers: int, phase: float, out: TextIO,
         tty: bool) -> Summary:  # fmt: skip
    label = "with resilient" if resilient else "without resilient"
    servers = Servers(plan, resilient=resilient, workers=workers)
    progress = Progress(out, label, phase, tty)
    with breaker_notes(progress.note):
        try:
            servers.begin(time.time(), progress.note)
            started = time.monotonic()
            record = drive(servers.ports, phase, progress=progress)
            seconds = time.monotonic() - started
        finally:  # the servers stop before the display ends: no note comes after it
            calls, trips = servers.stop()
    progress.done()
    return Summary.of(label, record, calls, trips, seconds)


def run_demo(backend_url: str, out: TextIO, *, duration: float = DEFAULT_DURATION,
             workers: int = 1, html: str | None = None, err: TextIO | None = None,
             tty: bool | None = None) -> int:  # fmt: skip
    """Run the demo; exit status 0 when it ran, 1 when it could not (said in one line)."""
    err = sys.stderr if err is None else err
    tty = out.isatty() if tty is None else tty
    shown = mask_url(backend_url)
    if not duration > 0:
        err.write("resilient demo: --duration must be a positive number of seconds\n")
        return 2
    if workers > 1 and backend_url.startswith("memory://"):
        err.write(f"resilient demo: --workers {workers} needs a shared backend: on memory:// "
                  "each process would count alone (add --backend redis://...)\n")  # fmt: skip
        return 2
    reason = unreachable(backend_url)
    if reason is not None:
        err.write(f"resilient demo: cannot reach {shown} ({reason})\n")
        return 1
    phase = duration / 2
    run = f"{os.getpid()}-{secrets.token_hex(4)}"
    plan = plan_for(phase, backend_url, run, workers)
    processes = f"{workers} server processes" if workers > 1 else "one server process"
    out.write(
        f"resilient demo on {shown}, {processes}: {len(CLIENTS)} clients "
        f"({len(CLIENTS) - 1} polite, 1 greedy) ask GET /items/{{id}} for {phase:.1f} s "
        "without resilient, then as long with it.\n"
        f"The upstream takes {plan.slow[0] * 1e3:.0f}-{plan.slow[1] * 1e3:.0f} ms, fails "
        f"{plan.failure_rate:.0%} of calls, and is down from {plan.outage[0]:.1f} s to "
        f"{plan.outage[1]:.1f} s into each run.\n"
        f"With resilient: cached for {plan.cache_ttl:.1f} s (stale if error), "
        f"{plan.limits} per client, breaker 'upstream' (fail_max={plan.fail_max}, "
        f"reset_timeout={plan.reset_timeout:.1f}s).\n\n"
    )
    out.flush()
    try:
        without = _run(plan, resilient=False, workers=workers, phase=phase, out=out, tty=tty)
        with_ = _run(plan, resilient=True, workers=workers, phase=phase, out=out, tty=tty)
    except DemoError as exc:
        err.write(f"resilient demo: {exc}\n")
        return 1
    out.write("\n" + table(without, with_))
    if html is not None:
        heading = f"On {shown}, {processes}, {phase:.1f} s per run."
        try:
            Path(html).write_text(page((without, with_), heading), encoding="utf-8")
        except OSError as exc:
            err.write(f"resilient demo: cannot write {html} ({exc.strerror or exc})\n")
            return 1
        out.write(f"\nreport written to {html}\n")
    return 0
