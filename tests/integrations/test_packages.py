"""API hygiene of the two adapters: curated ``__all__``, only public core imports."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import ModuleType

import pytest

import resilient_fastapi
import resilient_flask

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [resilient_flask, resilient_fastapi]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_all_is_sorted_and_complete(package: ModuleType) -> None:
    names = list(package.__all__)
    assert names == sorted(names)
    assert all(hasattr(package, name) for name in names)
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not isinstance(value, type(sys))
        and getattr(value, "__module__", "").startswith(("resilient", package.__name__))
    }
    assert public - {"annotations"} <= set(names)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_adapters_use_only_the_public_core(package: ModuleType) -> None:
    """Between distributions only public API is used: no ``resilient._x`` or ``resilient.x._y``."""
    folder = Path(package.__file__ or "").parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[0] == "resilient":
                    assert not any(part.startswith("_") for part in parts), (path, node.module)
                    assert not any(alias.name.startswith("_") for alias in node.names), path


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_adapters_stay_small(package: ModuleType) -> None:
    folder = Path(package.__file__ or "").parent
    for path in folder.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, path
