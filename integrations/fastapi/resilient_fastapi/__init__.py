"""FastAPI integration of resilient (distribution ``resilient-fastapi``).

::

    from fastapi import Depends, FastAPI
    from resilient_fastapi import Breaker, RateLimit, install, lifespan

    app = FastAPI(lifespan=lifespan)
    install(app)  # problem+json errors, the HTTP cache, rate-limit headers

    @app.get("/search", dependencies=[Depends(RateLimit("5/second"))])
    async def search(q: str) -> list[str]: ...

The guide is ``docs/integrations/fastapi.md``.
"""

from __future__ import annotations

from resilient.middleware import CachePolicy, ResilientASGIMiddleware, Rule
from resilient_fastapi._dependencies import Breaker, RateLimit
from resilient_fastapi._headers import RateLimitHeadersMiddleware
from resilient_fastapi._install import install
from resilient_fastapi._lifespan import Lifespan, lifespan
from resilient_fastapi._problems import ProblemException
from resilient_fastapi._registry import Registry, registry_for

__version__ = "0.1.0"

__all__ = [
    "Breaker",
    "CachePolicy",
    "Lifespan",
    "ProblemException",
    "RateLimit",
    "RateLimitHeadersMiddleware",
    "Registry",
    "ResilientASGIMiddleware",
    "Rule",
    "__version__",
    "install",
    "lifespan",
    "registry_for",
]
