"""The sansio rule, enforced: no module in resilient/sansio imports anything that does I/O."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import resilient.sansio

FOLDER = Path(resilient.sansio.__file__).parent
ALLOWED = {"__future__", "base64", "calendar", "collections", "dataclasses", "email", "enum",
           "hashlib", "json", "math", "re", "typing", "resilient"}  # fmt: skip
# Pure modules of packages that also hold I/O ones (urllib.request is not allowed).
ALLOWED_MODULES = {"urllib.parse"}
FORBIDDEN_INSIDE = ("resilient.backends", "resilient.middleware", "resilient.cache",
                    "resilient.breaker", "resilient.ratelimit", "resilient.config")  # fmt: skip


def imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(FOLDER.glob("*.py")), ids=lambda path: path.name)
def test_sansio_modules_import_no_io(path: Path) -> None:
    """Only the standard library's pure modules and other sansio modules: no asyncio,
    socket, logging, backends, frameworks or middleware."""
    for name in imports(path):
        allowed = name.split(".")[0] in ALLOWED or name in ALLOWED_MODULES
        assert allowed, f"{path.name} imports {name}"
        assert not name.startswith(FORBIDDEN_INSIDE), f"{path.name} imports {name}"


def test_the_folder_states_its_rule() -> None:
    """The README says what may not be imported here."""
    assert "no I/O" in (FOLDER / "README.md").read_text()


def test_the_middleware_loads_no_web_framework() -> None:
    """Importing the middleware and sansio packages loads no flask, starlette or werkzeug."""
    code = (
        "import sys, resilient.middleware, resilient.sansio\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'starlette', 'fastapi', 'werkzeug', 'asgiref'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)  # fmt: skip
    assert result.stdout.strip() == ""
