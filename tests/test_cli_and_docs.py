"""The resilient command, the generated configuration page, README and CI agreeing."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from resilient import _docgen
from resilient.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_config_prints_values_sources_and_masks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """resilient config shows each setting, where it came from, secrets masked."""
    monkeypatch.setenv("RESILIENT_BACKEND_URL", "redis://:hunter2@cache:6379/0")
    monkeypatch.setenv("RESILIENT_CACHE_TTL", "45s")
    out = io.StringIO()
    assert main(["config"], out) == 0
    text = out.getvalue()
    assert re.search(r"RESILIENT_CACHE_TTL\s+45.0\s+\(env\)", text)
    assert re.search(r"RESILIENT_OP_TIMEOUT\s+0.1\s+\(default\)", text)
    assert "redis://:***@cache:6379/0" in text
    assert "hunter2" not in text


def test_config_json() -> None:
    """--format json is machine-readable."""
    out = io.StringIO()
    assert main(["config", "--format", "json"], out) == 0
    rows = json.loads(out.getvalue())
    assert {
        "name": "RESILIENT_BREAKER_FAIL_MAX",
        "value": "5",
        "source": "default",
    } in rows


def test_config_error_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad variable gives exit status 2 and the message, not a traceback."""
    monkeypatch.setenv("RESILIENT_CACHE_TTL", "forever")
    assert main(["config"], io.StringIO()) == 2
    assert "RESILIENT_CACHE_TTL has value 'forever'" in capsys.readouterr().err


def test_console_script_runs() -> None:
    """The installed entry point works as a program."""
    result = subprocess.run(
        [sys.executable, "-m", "resilient.cli", "config"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "RESILIENT_BACKEND_URL" in result.stdout


def test_configuration_doc_is_generated_and_current() -> None:
    """docs/configuration.md is exactly what the table renders (python -m resilient._docgen)."""
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == _docgen.render(), "run: python -m resilient._docgen > docs/configuration.md"


def _quickstart() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- quickstart:begin -->")[1].split("<!-- quickstart:end -->")[0]
    return [
        line
        for line in block.strip().strip("`").splitlines()
        if line and not line.startswith("```") and line != "sh"
    ]


def test_readme_quickstart_has_two_commands_that_ci_runs() -> None:
    """The README gives exactly two commands and .ci/run runs both, verbatim."""
    commands = _quickstart()
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command in ci


def test_config_reports_unknown_variables_by_name_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt variable is a line of the command's own, with the suggestion, and the
    value (here a URL with a password) is never shown."""
    monkeypatch.setenv("RESILIENT_CACHE__USERS__URLL", "redis://:hunter2@cache:6379/0")
    assert main(["config"], io.StringIO()) == 0
    err = capsys.readouterr().err
    assert err == (
        "resilient: warning: unknown setting RESILIENT_CACHE__USERS__URLL; "
        "did you mean RESILIENT_CACHE__USERS__URL?\n"
    )
