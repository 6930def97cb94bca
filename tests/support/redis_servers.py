"""Real redis-server processes for tests: single nodes and a 3-master cluster.

Each process listens on a free loopback port (never 6379), can be killed, paused
(SIGSTOP) and restarted, and is stopped by its process id when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import redis

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
# Read once and taken out of the environment: it is the test rig's switch, not a
# setting, and Settings.from_env() would warn about it as an unknown RESILIENT_* name
# wherever a test module builds a breaker or limiter at import time.
REQUIRE = os.environ.pop("RESILIENT_TEST_REQUIRE_REDIS", None) == "1"
MISSING_REASON = "redis-server is not installed (apt-get install redis-server)"


def free_port(highest: int = 65535) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (never 6379).

    Cluster nodes need ``highest=55535``: their bus listens 10,000 ports higher.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 6379 and port <= highest:
            return port


class RedisServer:
    """One redis-server process on 127.0.0.1 that a test controls."""

    def __init__(self, *extra: str, port: int | None = None, highest: int = 65535) -> None:
        if REDIS_SERVER is None:  # pragma: no cover - checked by the fixtures
            raise RuntimeError(MISSING_REASON)
        self.port = port or free_port(highest)
        self.extra = extra
        self.dir = Path(tempfile.mkdtemp(prefix=f"resilient-redis-{self.port}-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, **kwargs)  # type: ignore[arg-type]

    def start(self) -> RedisServer:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir),
             "--protected-mode", "no", *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.paused = False
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.client(socket_connect_timeout=0.2) as client:
                    client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on {self.port} did not start") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the server vanishes, connections are reset."""
        if self.process is not None:
            if self.paused:
                os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the server accepts nothing and answers nothing until resumed."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def faulted(server: RedisServer, fault: str, *, restart: bool = False) -> Iterator[None]:
    """``server`` paused (``"pause"``) or killed (``"kill"``) for the block; afterwards
    resumed, or with ``restart`` started again on its port."""
    server.pause() if fault == "pause" else server.kill()
    try:
        yield
    finally:
        if fault == "pause":
            server.resume()
        elif restart:
            server.start()


_Cluster = TypeVar("_Cluster", bound="RedisCluster")


class RedisCluster:
    """Three masters with ``replicas`` replicas each (none by default), slots split
    evenly, on free loopback ports; ``options`` go to every node."""

    def __init__(self, *options: str, replicas: int = 0, node_timeout_ms: int = 2000) -> None:
        self.replicas = replicas
        self.nodes = [
            RedisServer("--cluster-enabled", "yes",
                        "--cluster-node-timeout", str(node_timeout_ms),
                        "--cluster-config-file", "nodes.conf", *options, highest=55535)
            for _ in range(3 * (1 + replicas))
        ]  # fmt: skip

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"redis+cluster://{hosts}"

    def start(self: _Cluster) -> _Cluster:
        try:
            assert REDIS_CLI is not None
            for node in self.nodes:
                node.start()
            subprocess.run(
                [REDIS_CLI, "--cluster", "create",
                 *(f"127.0.0.1:{node.port}" for node in self.nodes),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
            )  # fmt: skip
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        """Until every node says ``cluster_state:ok`` (30 s at most)."""
        deadline = time.monotonic() + 30
        while not all(self._ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not reach cluster_state:ok")
            time.sleep(0.05)

    @staticmethod
    def _ok(node: RedisServer) -> bool:
        with node.client(socket_connect_timeout=1) as client:
            info = client.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def flushall(self) -> None:
        for node in self.nodes:
            with node.client() as client, contextlib.suppress(redis.ResponseError):
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def remote_url(request: Any, kind: str) -> str:
    """The URL of the session's ``"redis"`` server or ``"cluster"``, started on demand
    through the fixtures of that name (``request`` is pytest's ``FixtureRequest``)."""
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    return cluster.url
