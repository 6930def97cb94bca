"""The README's and the guides' Python examples: each compiles and its imports resolve.

An example that names a function we renamed or never exported is worse than none, so
every ``import`` in every Python block is executed against the installed packages.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")],
    key=lambda page: str(page.relative_to(ROOT)),
)
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
_OURS = ("resilient", "resilient_flask", "resilient_fastapi")


def python_blocks(page: Path) -> list[str]:
    """The bodies of the page's fenced Python blocks (dedented when inside a list)."""
    return [textwrap.dedent(block) for block in _BLOCK.findall(page.read_text())]


def named_modules(node: ast.AST) -> list[str]:
    """The modules an import statement names; none for other statements."""
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return []


def our_imports(tree: ast.Module) -> list[ast.stmt]:
    """The import statements in a block that name one of our packages."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.stmt)
        and any(name.split(".")[0] in _OURS for name in named_modules(node))
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_python_examples_compile_and_import(page: Path) -> None:
    """Every block parses, and every import of our packages in it succeeds."""
    for number, code in enumerate(python_blocks(page)):
        where = f"{page.relative_to(ROOT)}[{number}]"
        tree = ast.parse(code, where)
        for statement in our_imports(tree):
            module = ast.Module(body=[statement], type_ignores=[])
            exec(compile(module, where, "exec"), {})  # an ImportError names the culprit


def test_every_page_with_examples_is_checked() -> None:
    """The pages that show our API do have Python blocks (the regex did not go blind)."""
    with_blocks = {str(page.relative_to(ROOT)) for page in PAGES if python_blocks(page)}
    assert {
        "README.md",
        "docs/caching.md",
        "docs/circuit-breakers.md",
        "docs/rate-limiting.md",
        "docs/middleware.md",
    } <= with_blocks


async def test_the_readme_middleware_example_limits_and_caches() -> None:
    """The README's middleware block, run around a small app: limits bite, the cache hits."""
    import httpx

    calls: list[str] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        assert scope["type"] == "http"
        calls.append(str(scope["path"]))
        await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[operator]

    block = next(code for code in python_blocks(ROOT / "README.md") if "Middleware" in code
                 or "ResilientASGIMiddleware(" in code)  # fmt: skip
    namespace: dict[str, object] = {"app": app}
    exec(block, namespace)
    wrapped = namespace["app"]
    transport = httpx.ASGITransport(wrapped)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        first = await http.get("/catalog/books")
        second = await http.get("/catalog/books")
        api = [(await http.get("/api/orders")).status_code for _ in range(101)]
    assert first.text == second.text == "hello"
    assert second.headers["age"] == "0"  # answered from the cache
    assert calls.count("/catalog/books") == 1
    assert api == [200] * 100 + [429]
