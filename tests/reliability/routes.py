"""What both apps of the reliability suite agree on: names, limits, breaker options.

The Flask and FastAPI apps must count under the same names, or Redis would hold one
count per framework and no limit would be global.
"""

from __future__ import annotations

import os
from typing import Any

#: Header naming who a request counts against: tests give every scenario its own value,
#: so each scenario starts from a fresh, global count.
KEY_HEADER = "x-limit-key"
LIMIT_NAME = "rel-global"
COMPUTE_CACHE = "rel.compute"
#: Long enough that concurrent requests for one key overlap in every instance.
COMPUTE_SECONDS = 0.3
BREAKER_NAME = "rel-edge"
BREAKER_OPTIONS: dict[str, Any] = {"shared": True, "fail_max": 3, "reset_timeout": 60}
WORK_NAME = "rel-work"
WORK_LIMIT = "100000000/hour"  # never reached: the load loop measures, it is not limited
WORK_BREAKER = "rel-work"
WORK_CACHE = "rel.work"
WORK_TTL = 2


def limit() -> str:
    """The global limit of ``/limited``, from ``REL_LIMIT`` (``"10/hour"``)."""
    return os.environ.get("REL_LIMIT", "10/hour")


def calls_key(key: str) -> str:
    """The Redis counter of computations of ``key``."""
    return f"rel:calls:{key}"
