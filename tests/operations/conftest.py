"""Fixtures of the operations suite: the middleware harness, under WSGI and under ASGI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from tests.middleware.support import Harness
from tests.support.clock import FakeClock


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    """An event loop in a thread, for driving ASGI apps from sync tests."""
    with start_blocking_portal() as running:
        yield running


@pytest.fixture(params=["wsgi", "asgi"])
def harness(request: pytest.FixtureRequest, clock: FakeClock, portal: BlockingPortal) -> Harness:
    """Mounts an origin behind the WSGI or the ASGI middleware."""
    kind: str = request.param
    return Harness(kind, clock, portal)
