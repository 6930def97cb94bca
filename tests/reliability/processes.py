"""The processes of the reliability suite: app servers and nginx on loopback.

Two gunicorn Flask instances and one uvicorn FastAPI instance serve the apps of this
package; nginx, started in the foreground with its own configuration in a temp dir,
balances them round robin on ``/`` and reaches instance ``n`` alone on ``/i<n>/``.
Every process is started in its own session and stopped by its id, even on failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.redis_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(path, os.X_OK)), None
)


def missing_tools() -> list[str]:
    """What the suite needs and this machine lacks (nginx, gunicorn, uvicorn)."""
    missing = [] if NGINX else ["nginx (apt-get install nginx)"]
    for module in ("gunicorn", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{module} (pip install {module})")
    return missing


def wait_listening(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    """Return once something accepts on 127.0.0.1:``port``; fail if ``process`` exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.pid} exited with {process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {seconds}s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by id, then SIGKILL to the process group if it does not leave in 10 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # Its own session: the group id is its id, and holds its workers only.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # Workers a master could not stop (it was SIGKILLed) leave with their group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Instance:
    """One app server: ``kind`` is ``"flask"`` (gunicorn) or ``"fastapi"`` (uvicorn)."""

    kind: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        bind = f"127.0.0.1:{self.port}"
        if self.kind == "flask":
            return [sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", "1",
                    "--worker-class", "gthread", "--threads", "8", "--graceful-timeout", "2",
                    "--log-level", "warning",
                    "tests.reliability.flask_app:create_app()"]  # fmt: skip
        return [sys.executable, "-m", "uvicorn", "--factory", "--host", "127.0.0.1",
                "--port", str(self.port), "--log-level", "warning", "--no-access-log",
                "--timeout-graceful-shutdown", "2",
                "tests.reliability.fastapi_app:create_app"]  # fmt: skip


def app_environ(backend_url: str, counter_url: str, **extra: str) -> dict[str, str]:
    """The apps' environment: this one without RESILIENT_* or coverage variables, plus
    the backend URL and the test's own ``REL_*`` values."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RESILIENT_", "COV_CORE_", "COVERAGE_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        RESILIENT_BACKEND_URL=backend_url,
        # Exact counts: a fixed window starts at a key's first hit, never on a boundary.
        RESILIENT_RATELIMIT_STRATEGY="fixed-window",
        RESILIENT_RATELIMIT_FAIL_MODE="open",
        REL_COUNTER_URL=counter_url,
        **extra,
    )
    return env


NGINX_CONF = """\
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream apps {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        # An app's failure must reach the client, not be retried on another instance.
        proxy_next_upstream off;
        proxy_connect_timeout 5s;
        proxy_read_timeout 10s;
        add_header X-Upstream $upstream_addr always;
        location / {{ proxy_pass http://apps; }}
{locations}
    }}
}}
"""


class Fleet:
    """The app instances behind one nginx; ``start()`` then ``stop()`` (always)."""

    def __init__(self, backend_url: str, counter_url: str, **extra: str) -> None:
        self.instances = [Instance("flask"), Instance("flask"), Instance("fastapi")]
        self.env = app_environ(backend_url, counter_url, **extra)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="resilient-nginx-"))
        self.nginx: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def upstream(self, index: int) -> str:
        """What nginx's ``X-Upstream`` says for instance ``index``."""
        return f"127.0.0.1:{self.instances[index].port}"

    def start(self) -> Fleet:
        try:
            for instance in self.instances:
                with (self.dir / f"{instance.port}.log").open("wb") as log:
                    instance.process = subprocess.Popen(
                        instance.argv(), cwd=ROOT, env=self.env, start_new_session=True,
                        stdout=subprocess.DEVNULL, stderr=log,
                    )  # fmt: skip
            self._start_nginx()
            for instance in self.instances:
                assert instance.process is not None
                wait_listening(instance.port, instance.process)
            wait_listening(self.port, self.nginx)  # type: ignore[arg-type]
        except BaseException:
            self.stop()
            raise
        return self

    def _start_nginx(self) -> None:
        assert NGINX is not None
        self.dir.chmod(0o755)  # workers may run as nobody
        servers = "\n".join(
            f"        server 127.0.0.1:{i.port} max_fails=0;" for i in self.instances
        )
        locations = "\n".join(
            f"        location /i{n}/ {{ proxy_pass http://127.0.0.1:{i.port}/; }}"
            for n, i in enumerate(self.instances)
        )
        conf = self.dir / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(dir=self.dir, port=self.port, servers=servers, locations=locations)
        )
        self.nginx = subprocess.Popen(
            [NGINX, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log"),
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def logs(self) -> str:
        """The app servers' and nginx's error output, for a failing test's message."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.dir.glob("*.log"))
        )

    def stop(self) -> None:
        for process in [self.nginx, *(i.process for i in self.instances)]:
            if process is not None:
                stop_process(process)
        self.nginx = None
        for instance in self.instances:
            instance.process = None
        shutil.rmtree(self.dir, ignore_errors=True)
