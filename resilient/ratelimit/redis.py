"""Counting on Redis: one Lua script per decision, with the figures headers need.

``limits``' Redis scripts answer yes or no; its window statistics cost one or two more
round trips, and several limits cost one script each. Ours take every limit of one
identity at once (their keys share a Cluster hash tag, so they sit on one slot), check
them all, count only when all pass, and return remaining, reset and retry figures per
limit: one round trip per decision, whatever the number of limits. The scripts read the
server's clock (``TIME``), so application servers' clocks never skew the windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files

from resilient.backends.base import LuaScript
from resilient.ratelimit.memory import Figures
from resilient.ratelimit.policy import Limit

__all__ = ["SCRIPTS", "STRATEGY_CODES", "limit_args", "parse_reply"]


def _load(name: str) -> LuaScript:
    return LuaScript(files("resilient.ratelimit").joinpath(f"lua/{name}.lua").read_text())


#: The script of each strategy.
SCRIPTS: dict[str, LuaScript] = {
    "fixed-window": _load("fixed_window"),
    "sliding-window-counter": _load("sliding_window"),
    "moving-window": _load("moving_window"),
}
#: Short strategy tags used in storage keys: a strategy change never reads another
#: strategy's data (a list is not a counter).
STRATEGY_CODES = {"fixed-window": "fw", "sliding-window-counter": "sw", "moving-window": "mw"}


def limit_args(limits: Sequence[Limit]) -> tuple[int, ...]:
    """The per-limit script arguments: amount and window (ms) of each limit, in order."""
    args: list[int] = []
    for limit in limits:
        args += [limit.amount, limit.window * 1000]
    return tuple(args)


def parse_reply(reply: object, count: int) -> tuple[bool, list[Figures]]:
    """Turn a script's reply into ``(allowed, figures per limit)``, times in seconds.

    Raises:
        ValueError: the reply does not have the shape the scripts return.
    """
    if not isinstance(reply, list) or len(reply) != 1 + 3 * count:
        raise ValueError(f"unexpected rate-limit script reply: {reply!r}")
    if count == 1:  # the common case, spelled out: this runs on every decision
        return reply[0] == 1, [(int(reply[1]), reply[2] / 1000, reply[3] / 1000)]
    figures: list[Figures] = []
    for index in range(1, len(reply), 3):
        remaining, reset_ms, retry_ms = reply[index : index + 3]
        figures.append((int(remaining), int(reset_ms) / 1000, int(retry_ms) / 1000))
    return reply[0] == 1, figures
