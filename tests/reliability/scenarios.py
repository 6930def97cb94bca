"""What the fault scenarios share: the limit they check, the load's per-phase keys."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from tests.reliability import routes

#: The global limit of ``/limited`` as the fleet runs it (``routes.limit()``: 10/hour).
LIMIT = 10


class Phase:
    """The load's per-instance limit keys: ``<scenario>-i<n>-<phase>``. Keys of the
    ``after`` phase reach Redis only once an instance uses it again."""

    def __init__(self, scenario: str) -> None:
        self.scenario = f"{scenario}-{uuid.uuid4().hex[:8]}"
        self.name = "before"

    def key(self, instance: int) -> str:
        return f"{self.scenario}-i{instance}-{self.name}"

    def request(self, number: int) -> tuple[str, Mapping[str, str]]:
        instance = number % 3
        return f"/i{instance}/work?item={number % 7}", {routes.KEY_HEADER: self.key(instance)}
