"""The adapter guides' examples: every Python block compiles, the setups run as shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ["docs/integrations/flask.md", "docs/integrations/fastapi.md"]
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def blocks(guide: str) -> list[str]:
    return _BLOCK.findall((ROOT / guide).read_text())


@pytest.mark.parametrize("guide", GUIDES)
def test_every_python_block_compiles(guide: str) -> None:
    found = blocks(guide)
    assert len(found) >= 5
    for number, code in enumerate(found):
        compile(code, f"{guide}[{number}]", "exec")


def test_the_flask_setup_runs_as_shown() -> None:
    namespace: dict[str, Any] = {"__name__": __name__}  # Flask(__name__) finds its root
    exec(blocks(GUIDES[0])[0], namespace)
    client = namespace["app"].test_client()
    statuses = [client.get("/search").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


async def test_the_fastapi_setup_runs_as_shown() -> None:
    from tests.integrations.fastapi.support import client, running

    namespace: dict[str, Any] = {}
    exec(blocks(GUIDES[1])[0].replace(": ...", ":\n    return [q]"), namespace)
    app = namespace["app"]
    async with running(app), client(app) as http:
        responses = [await http.get("/search", params={"q": "x"}) for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert responses[-1].headers["content-type"] == "application/problem+json"
