"""A FastAPI app for the shutdown tests, served by a real uvicorn in a subprocess.

``install()`` with a Redis-backed limit and cache (``RESILIENT_BACKEND_URL``,
``RESILIENT_HTTP_LIMITS``, ``RESILIENT_HTTP_CACHE_TTL`` from the test), and a slow
endpoint that notes each request it starts in ``SHUTDOWN_TEST_STARTED``, so the test
sends SIGTERM once every request is in flight, not after a guessed delay.
"""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI

from resilient_fastapi import install, lifespan
from tests.operations.apps.probe import AfterLifespan

api = FastAPI(lifespan=lifespan)
install(api)
#: What uvicorn serves: the app, and a count of its Redis sockets once its lifespan ended.
app = AfterLifespan(api)


def _note_started(n: int) -> None:
    with open(os.environ["SHUTDOWN_TEST_STARTED"], "a") as started:
        started.write(f"{n}\n")


@api.get("/slow")
async def slow(n: int = 0) -> dict[str, int]:
    """Half a second of work; ``n`` gives each request a URL (and cache entry) of its own."""
    await asyncio.to_thread(_note_started, n)
    await asyncio.sleep(0.5)
    return {"n": n}
