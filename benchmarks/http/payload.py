"""The endpoint every variant serves: a JSON list of 50 small records (about 3 KB)."""

from __future__ import annotations

import json


def items() -> list[dict[str, object]]:
    return [
        {"id": index, "name": f"item-{index}", "price": index * 1.25, "tags": ["a", "b", "c"]}
        for index in range(50)
    ]


def body() -> bytes:
    return json.dumps(items()).encode()
