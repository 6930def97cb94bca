"""``resilient breaker`` and ``resilient cache purge``: changes to shared state. Strictly private.

A breaker moves through the breaker script itself (:mod:`resilient.breaker._script`): a new
generation, the probe leases dropped, and a ``PUBLISH`` that live breakers apply at once
(the next resync catches any that missed it). Purges delete what the features delete: a
tag's set and its keys, announced to L1 tiers; a URL's stored response, which also makes
every ``Vary`` variant unreachable (their keys are removed too, found by a bounded scan).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from resilient._cli_backend import Budget, CliError, Target, escape_glob, scan, unlink
from resilient._cli_inspect import breaker_row, registered, server_ms
from resilient.breaker._script import EVENT
from resilient.breaker.shared import CHANNEL, state_keys
from resilient.cache.tags import invalidate_remote_tags
from resilient.cache.twotier import channel_for, invalidation_message
from resilient.config import Settings
from resilient.middleware.store import ResponseStore
from resilient.sansio.keys import target_uri

__all__ = ["move_breaker", "purge_namespace", "purge_tag", "purge_url"]

#: The script operation of each command: ``reset`` is ``close`` (failures and probes
#: forgotten, a new generation) under the name operators look for.
BREAKER_OPS = {"open": "open", "close": "close", "reset": "close"}
_DAY_MS = 86_400_000


def move_breaker(
    target: Target, settings: Settings, action: str, name: str, warn: Callable[[str], None]
) -> dict[str, Any]:
    """Open or close breaker ``name`` for every process; returns its new state.

    The open period is the breaker's own ``reset_timeout``: from the registry when the
    breaker recorded itself, else from the settings (``RESILIENT_BREAKER__<NAME>__*``).
    A name that no process recorded is moved all the same (breakers of that name built
    later start from it), after a warning that names the closest known one: a typo must
    not pass for success.
    """
    known = registered(target)
    recorded = known.get(name, {})
    configured = settings.breaker_for(name)
    reset = float(recorded.get("reset_timeout", configured.reset_timeout))
    probe = float(recorded.get("probe_timeout", configured.probe_timeout))
    generation = target.client.hget(state_keys(name)[0], "gen")
    if not recorded and generation is None:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        warn(f"no shared breaker named {name!r} is known{hint}; its state is set anyway")
    args: list[str | int] = [
        BREAKER_OPS[action], int(generation or 0), "", CHANNEL, name,
        max(_DAY_MS, round(2000 * (reset + probe))), int(recorded.get("fail_max", 0)),
        round(reset * 1000), int(recorded.get("success_threshold", 1)),
        int(recorded.get("permitted_calls", 1)), max(1, round(probe * 1000)), "",
    ]  # fmt: skip
    target.backend.eval(EVENT, state_keys(name), args)
    return breaker_row(target, name, recorded, server_ms(target))


def purge_tag(target: Target, tag: str, namespace: str, version: str) -> dict[str, Any]:
    """Invalidate ``tag`` as the caches of ``namespace`` and ``version`` do."""
    keys, deleted = invalidate_remote_tags(target.backend, (tag,), namespace, version)
    return {"tag": tag, "namespace": namespace, "version": version,
            "listed": len(keys), "deleted": deleted}  # fmt: skip


def purge_namespace(
    target: Target, settings: Settings, namespace: str, budget: int
) -> dict[str, Any]:
    """Delete every key of cache namespace ``namespace`` (``<namespace>:*``), in batches
    of one scan step, examining at most ``budget`` keys."""
    if not namespace:
        raise CliError("an empty namespace would be every key: name one", 2)
    spent = Budget(budget)
    deleted = 0
    for batch in scan(target, escape_glob(namespace) + ":*", spent):
        deleted += unlink(target, batch)
        # Two-tier caches of the namespace drop their L1 copies (version 0: deleted).
        for scope in _scopes(namespace, settings.cache.version):
            target.client.publish(channel_for(scope), invalidation_message(0, batch))
    return {"namespace": namespace, "deleted": deleted, "truncated": spent.exhausted}


def _scopes(namespace: str, version: str) -> list[str]:
    scopes = [f"{namespace}:"]
    if version:
        scopes.append(f"{namespace}:{version}:")
    return scopes


def purge_url(target: Target, settings: Settings, url: str, budget: int) -> dict[str, Any]:
    """Forget the stored responses of ``url`` as the middleware's invalidation does (its
    primary key), then remove the variants that made unreachable."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise CliError(f"--url needs an absolute URL (https://host/path), not {url!r}", 2)
    # The form the middleware keys on: the path as the app sees it, encoded again.
    uri = target_uri(parts.scheme, parts.netloc, unquote(parts.path) or "/", parts.query)
    store = ResponseStore(target.backend, prefix=settings.http.key_prefix)
    primary = store.primary_key(uri)
    deleted = unlink(target, [primary])
    spent = Budget(budget)
    variants = 0
    for batch in scan(target, escape_glob(primary) + ":*", spent):
        variants += unlink(target, [key for key in batch if not key.endswith(":refresh")])
    return {"url": uri, "key": primary, "deleted": deleted, "variants_deleted": variants,
            "truncated": spent.exhausted}  # fmt: skip


def dumps(payload: Any) -> str:
    """The ``--json`` form of a command's result."""
    return json.dumps(payload, indent=2, sort_keys=False)
