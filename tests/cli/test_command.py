"""The resilient command as a program: version, entry points, and failures in one line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

from resilient.cli import main
from tests.support.redis_servers import RedisServer, free_port

SECRET_URL = "redis://app:hunter2@127.0.0.1:{port}/0"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESILIENT_")}
    return {**env, **extra}


def _refused_port() -> int:
    return free_port(65535)  # free now: a connection to it is refused


def test_version_is_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints what importlib.metadata knows, then exits 0."""
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"resilient {metadata.version('resilient')}\n"


def test_python_dash_m_resilient_is_the_console_script() -> None:
    """``python -m resilient`` runs the same command as ``resilient``."""
    by_module = subprocess.run(
        [sys.executable, "-m", "resilient", "config", "--json"],
        capture_output=True, text=True, check=True, env=_env(),
    )  # fmt: skip
    script = os.path.join(os.path.dirname(sys.executable), "resilient")
    by_script = subprocess.run(
        [script, "config", "--json"], capture_output=True, text=True, check=True, env=_env()
    )
    assert json.loads(by_module.stdout) == json.loads(by_script.stdout)
    assert {"name": "RESILIENT_BACKEND_URL", "value": "memory://", "source": "default"} in (
        json.loads(by_module.stdout)
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["inspect"],
        ["inspect", "--json"],
        ["breaker", "open", "payments"],
        ["breaker", "reset", "payments", "--json"],
        ["cache", "purge", "--tag", "users"],
        ["cache", "purge", "--namespace", "app", "--json"],
        ["cache", "purge", "--url", "https://example.com/items"],
    ],
)
def test_an_unreachable_backend_is_one_line_with_the_password_masked(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused connection: exit status 1, one line naming the URL, no password, no
    traceback; nothing on stdout."""
    port = _refused_port()
    assert main([*argv, "--backend", SECRET_URL.format(port=port)], io.StringIO()) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    shown = f"redis://app:***@127.0.0.1:{port}/0"
    assert lines[0].startswith(f"resilient: cannot reach the backend at {shown}: ")
    assert "hunter2" not in captured.err
    assert "Traceback" not in captured.err


def test_unreachable_backend_from_the_environment_as_a_program() -> None:
    """The same through the console script, with the URL (and a password in its query)
    coming from RESILIENT_BACKEND_URL."""
    port = _refused_port()
    url = f"redis://127.0.0.1:{port}/0?password=hunter2"
    result = subprocess.run(
        [sys.executable, "-m", "resilient", "inspect"],
        capture_output=True, text=True, env=_env(RESILIENT_BACKEND_URL=url),
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"resilient: cannot reach the backend at redis://127.0.0.1:{port}/0"
    )
    assert result.stderr.count("\n") == 1
    assert "hunter2" not in result.stderr


def test_the_in_memory_backend_is_said_in_one_line() -> None:
    """Another process's memory cannot be read: inspect says so and exits 0."""
    out = io.StringIO()
    assert main(["inspect"], out) == 0
    assert out.getvalue().count("\n") == 1
    assert "in-memory backend" in out.getvalue()
    out = io.StringIO()
    assert main(["inspect", "--json"], out) == 0
    assert json.loads(out.getvalue())["backend"] == "memory://"
    assert main(["breaker", "open", "payments"], io.StringIO()) == 1  # nothing was changed


def test_a_configuration_error_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad variable: status 2 and the message, for the new commands too."""
    monkeypatch.setenv("RESILIENT_BACKEND_URL", "mongodb://app:hunter2@db/0")
    assert main(["inspect"], io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.startswith("resilient: configuration error: RESILIENT_BACKEND_URL")
    assert "hunter2" not in err
    assert main(["inspect", "--backend", "memory://", "--limits", "ten/minute"]) == 2


def test_an_unknown_per_name_variable_keeps_its_name_in_the_suggestion(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """RESILIENT_BREAKER__PAYMENTS__FAIL_MAXX suggests ..._PAYMENTS__FAIL_MAX: a warning
    line of the command's own, on every command, and the command still runs."""
    monkeypatch.setenv("RESILIENT_BREAKER__PAYMENTS__FAIL_MAXX", "3")
    assert main(["inspect"], io.StringIO()) == 0
    assert capsys.readouterr().err == (
        "resilient: warning: unknown setting RESILIENT_BREAKER__PAYMENTS__FAIL_MAXX; "
        "did you mean RESILIENT_BREAKER__PAYMENTS__FAIL_MAX?\n"
    )


def test_a_closed_pipe_is_no_traceback(redis_server: RedisServer) -> None:
    """``resilient inspect | head -1``: the reader leaves early; no traceback, no
    "Exception ignored" at exit."""
    client = redis_server.client()
    client.mset({f"app:v1:f:{n}": b"x" for n in range(300)})  # enough output to fill no pipe
    head = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert head.stdin is not None
    resilient = subprocess.Popen(
        [sys.executable, "-m", "resilient", "inspect", "--backend", redis_server.url],
        stdout=head.stdin, stderr=subprocess.PIPE, env=_env(),
    )  # fmt: skip
    head.stdin.close()  # only the two processes hold the pipe now
    head.wait(timeout=30)
    _, err = resilient.communicate(timeout=30)
    assert err == b""
    assert resilient.returncode in (0, 1)


def test_a_closed_stdout_is_no_traceback(redis_server: RedisServer) -> None:
    """Output to a pipe whose reader is already gone: exit status 1, stderr empty."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "resilient", "inspect", "--backend", redis_server.url],
            stdout=write_end, stderr=subprocess.PIPE, env=_env(), timeout=30,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert result.stderr == b""
    assert result.returncode == 1
