"""Start servers on loopback, load them with wrk in alternating rounds, report medians.

Every variant runs in its own server process on a free 127.0.0.1 port. Rounds alternate
between variants so that drift on a noisy machine hits all of them alike; the figure kept
per variant is the median requests per second, reported as a ratio to the bare app of the
same run. Every process started here is stopped by its id at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


#: CPU lists for ``taskset``: servers on one core, the load generator on the other, so
#: that the scheduler does not move them onto each other between rounds. Empty: no pinning.
PINNING: dict[str, str] = {}


def pin(server: str, load: str) -> None:
    """Pin servers to the CPUs ``server`` and wrk to ``load`` (``taskset -c`` lists)."""
    if shutil.which("taskset") is None:
        raise SystemExit("taskset is not installed (util-linux)")
    PINNING.update(server=server, load=load)


def pin_process(pid: int, role: str) -> None:
    """Move an already started process (redis-server) onto the CPUs of ``role``."""
    cpus = PINNING.get(role)
    if cpus:
        os.sched_setaffinity(pid, {int(cpu) for cpu in cpus.split(",")})


def _pinned(argv: Sequence[str], role: str) -> list[str]:
    cpus = PINNING.get(role)
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


@dataclass
class Variant:
    """One server to measure: a label, the command that serves on ``{port}``, a path."""

    label: str
    command: Sequence[str]
    path: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    results: list[float] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def start(variant: Variant) -> None:
    variant.port = free_port()
    argv = [part.format(port=variant.port) for part in variant.command]
    variant.process = subprocess.Popen(
        _pinned(argv, "server"),
        env={**os.environ, **variant.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_listening(variant.port, variant.process)


def stop(variant: Variant) -> None:
    if variant.process is None:
        return
    try:
        os.killpg(variant.process.pid, signal.SIGTERM)
        variant.process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(variant.process.pid, signal.SIGKILL)
        variant.process.wait(timeout=10)
    variant.process = None


def load(variant: Variant, *, seconds: float, connections: int) -> float:
    """One wrk run against the variant; returns requests per second."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    url = f"http://127.0.0.1:{variant.port}{variant.path}"
    duration = max(1, round(seconds))  # wrk takes whole seconds only ("2s", not "2.0s")
    result = subprocess.run(
        _pinned([wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url], "load"),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    )
    match = _RPS.search(result.stdout)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{result.stdout}")
    errors = _NON_2XX.search(result.stdout)
    if errors is not None and variant.label.startswith("bare"):
        raise RuntimeError(f"{variant.label}: {errors.group(1)} non-2xx responses")
    return float(match.group(1))


def run(
    variants: Sequence[Variant],
    *,
    rounds: int,
    seconds: float,
    connections: int,
    fresh: bool = False,
) -> list[tuple[str, float, float]]:
    """Alternating rounds over all variants; returns (label, median req/s, ratio to first).

    With ``fresh``, every round starts new server processes (and warms them up): a
    process's own luck (memory layout, hash seeds, where the scheduler put it) then
    varies from round to round instead of biasing all of one variant's rounds alike.
    """
    try:
        for number in range(rounds):
            if fresh or number == 0:
                for variant in variants:
                    stop(variant)
                    start(variant)
                for variant in variants:  # warm-up: imports done, caches filled
                    load(variant, seconds=1, connections=connections)
            for variant in variants:
                variant.results.append(load(variant, seconds=seconds, connections=connections))
    finally:
        for variant in variants:
            stop(variant)
    base = statistics.median(variants[0].results)
    return [
        (v.label, statistics.median(v.results), statistics.median(v.results) / base)
        for v in variants
    ]


def report(title: str, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}")
    print(f"{'variant':<44} {'median req/s':>13} {'x bare':>8}")
    for label, rps, ratio in rows:
        print(f"{label:<44} {rps:>13.0f} {ratio:>8.2f}")
    sys.stdout.flush()
