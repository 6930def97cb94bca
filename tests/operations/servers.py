"""Real servers in subprocesses for the shutdown tests, always stopped by their pid.

:func:`serving` starts uvicorn or gunicorn on a free loopback port and yields it once it
answers; whatever happens in the test, the process group is killed at the end (by pid,
never by name). :func:`traffic` sends requests from threads, each on a connection of its
own, and keeps every outcome.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.redis_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Server:
    """A server process and what it wrote."""

    process: subprocess.Popen[bytes]
    port: int
    started: Path
    stderr_path: Path
    stdout_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def started_count(self) -> int:
        """Requests the app has begun handling."""
        try:
            return len(self.started.read_text().splitlines())
        except FileNotFoundError:
            return 0

    def left_open(self) -> dict[int, int]:
        """Sockets to Redis each app process still held as it ended, by pid."""
        try:
            lines = self.started.with_name("open").read_text().splitlines()
        except FileNotFoundError:
            return {}
        return {int(pid): int(count) for pid, count in (line.split() for line in lines)}

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")


@contextlib.contextmanager
def serving(command: Sequence[str], env: dict[str, str], port: int) -> Iterator[Server]:
    """Run ``command`` (which listens on ``port``) until it answers; kill it at the end."""
    workdir = Path(tempfile.mkdtemp(prefix="resilient-shutdown-"))
    started = workdir / "started"
    opened = workdir / "open"
    environ = {key: value for key, value in os.environ.items() if not key.startswith("RESILIENT_")}
    environ.update(env)
    environ["SHUTDOWN_TEST_STARTED"] = str(started)
    environ["SHUTDOWN_TEST_OPEN"] = str(opened)
    # Show what is otherwise hidden: an unclosed socket or client is a ResourceWarning.
    environ["PYTHONWARNINGS"] = "always::ResourceWarning"
    environ["PYTHONPATH"] = str(ROOT)
    err_path, out_path = workdir / "stderr", workdir / "stdout"
    with open(err_path, "wb") as err, open(out_path, "wb") as out:
        process = subprocess.Popen(list(command), cwd=ROOT, env=environ, stdout=out,
                                   stderr=err, start_new_session=True)  # fmt: skip
    server = Server(process, port, started, err_path, out_path)
    try:
        _wait_until_listening(server)
        yield server
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # its own group: it and its workers
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_listening(server: Server, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited at startup:\n{server.stderr()}")
        try:
            httpx.get(server.url + "/nothing-here", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen within {timeout} s:\n{server.stderr()}")


@dataclass
class Traffic:
    """Requests sent from threads; ``outcomes`` holds a status or an exception name each."""

    threads: list[threading.Thread] = field(default_factory=list)
    outcomes: list[int | str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def traffic(url: str, paths: Sequence[str]) -> Traffic:
    """One request per path, all at once, each from a thread on its own connection."""
    sent = Traffic()

    def one(path: str) -> None:
        outcome: int | str
        try:
            outcome = httpx.get(url + path, timeout=10).status_code
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        with sent.lock:
            sent.outcomes.append(outcome)

    for path in paths:
        thread = threading.Thread(target=one, args=(path,), daemon=True)
        sent.threads.append(thread)
        thread.start()
    return sent


def wait_for(predicate: object, timeout: float, what: str) -> None:
    """Poll ``predicate`` (a callable) until true, else fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def error_lines(text: str, port: int) -> list[str]:
    """Lines of a server's output that report an error or a leak.

    gunicorn's sync workers leave the listening socket (on ``port``) to the collector
    at exit: a warning about gunicorn's own socket, not the app's, so it is left out.
    """
    marks = ("ERROR", "Traceback", "CRITICAL", "ResourceWarning", "Unclosed", "Exception ignored")
    own = f"laddr=('127.0.0.1', {port})"
    return [
        line
        for line in text.splitlines()
        if any(mark in line for mark in marks)
        and own not in line
        and "Enable tracemalloc" not in line
    ]


__all__ = ["BIN", "Server", "Traffic", "error_lines", "free_port", "serving", "traffic",
           "wait_for"]  # fmt: skip
