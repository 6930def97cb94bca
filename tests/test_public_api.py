"""API hygiene: a sorted, complete __all__; no framework imports; one version everywhere."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import resilient
import resilient.backends
import resilient.breaker
import resilient.cache
import resilient.config
import resilient.errors
import resilient.middleware
import resilient.ratelimit
import resilient.sansio

ROOT = Path(__file__).resolve().parent.parent
MODULES = [
    resilient,
    resilient.backends,
    resilient.breaker,
    resilient.cache,
    resilient.config,
    resilient.errors,
    resilient.middleware,
    resilient.ratelimit,
    resilient.sansio,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted_and_complete(module: object) -> None:
    """__all__ is sorted, names only what exists, and covers every public name."""
    names = list(module.__all__)  # type: ignore[attr-defined]
    assert names == sorted(names)
    assert all(hasattr(module, name) for name in names)
    public = {
        name for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith(module.__name__)  # type: ignore[attr-defined]
        and not isinstance(value, type(sys))
    }  # fmt: skip
    assert public <= set(names) | {"annotations"}


def test_importing_resilient_loads_no_web_framework() -> None:
    """The core never imports flask, starlette or fastapi."""
    code = (
        "import sys, resilient, resilient.backends, resilient.config, resilient.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'starlette', 'fastapi', 'werkzeug'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_three_distributions_share_one_version() -> None:
    """resilient, resilient-flask and resilient-fastapi are released in lockstep."""
    import resilient_fastapi
    import resilient_flask

    files = [ROOT / "pyproject.toml", ROOT / "integrations/flask/pyproject.toml",
             ROOT / "integrations/fastapi/pyproject.toml"]  # fmt: skip
    texts = [path.read_text() for path in files]
    versions = {_field(text, "version") for text in texts}
    assert versions == {resilient.__version__}
    assert resilient_flask.__version__ == resilient_fastapi.__version__ == resilient.__version__
    for text in texts[1:]:
        assert f'"resilient=={resilient.__version__}"' in text
    names = [_field(text, "name") for text in texts]
    assert names == ["resilient", "resilient-flask", "resilient-fastapi"]


def _field(pyproject: str, name: str) -> str:
    match = re.search(rf'^{name} = "(.+)"$', pyproject, re.MULTILINE)
    assert match is not None
    return match.group(1)


def test_every_package_ships_py_typed() -> None:
    """All three packages are marked as typed."""
    for path in ("resilient", "integrations/flask/resilient_flask",
                 "integrations/fastapi/resilient_fastapi"):  # fmt: skip
        assert (ROOT / path / "py.typed").is_file()


def test_error_tree() -> None:
    """The documented exception hierarchy holds."""
    from pybreaker import CircuitBreakerError

    from resilient.errors import (
        BackendError,
        BackendUnavailable,
        CircuitOpenError,
        ConfigurationError,
        RateLimitExceeded,
        ResilientError,
    )

    assert issubclass(ConfigurationError, ResilientError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(BackendUnavailable, BackendError)
    assert issubclass(BackendError, ResilientError)
    assert issubclass(CircuitOpenError, CircuitBreakerError)
    limit = RateLimitExceeded("10/second", 0.25)
    assert (limit.limit, limit.retry_after) == ("10/second", 0.25)
    assert "retry after 0.250s" in str(limit)
    circuit = CircuitOpenError("payments", 3.0)
    assert (circuit.name, circuit.retry_after) == ("payments", 3.0)
    assert isinstance(circuit, ResilientError)
