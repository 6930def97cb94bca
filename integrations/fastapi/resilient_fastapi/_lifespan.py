"""The lifespan helper: settings checked at startup, pools closed at shutdown.

``FastAPI(lifespan=lifespan)``, or ``FastAPI(lifespan=Lifespan(my_lifespan))`` to wrap
your own: yours runs inside ours, and whatever state it yields reaches the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Generic, TypeVar, overload

from resilient_fastapi._registry import registry_for

__all__ = ["Lifespan", "lifespan"]

_T = TypeVar("_T")


class Lifespan(Generic[_T]):
    """A lifespan for FastAPI / Starlette apps that closes what resilient opened.

    At startup it reads the settings (unless :func:`~resilient_fastapi.install` gave
    them), so a bad ``RESILIENT_*`` variable stops the app from starting instead of
    failing its first request. At shutdown it closes, on the serving event loop, the
    asyncio Redis pools of the limiters and breakers the dependencies built and the
    backend of the cache middleware :func:`~resilient_fastapi.install` added. Nothing is
    opened at import or construction.

    Args:
        inner: your own lifespan, run inside this one; its state is passed on.

    .. versionadded:: 0.1
    """

    @overload
    def __init__(self: Lifespan[None]) -> None: ...

    @overload
    def __init__(self, inner: Callable[[Any], AbstractAsyncContextManager[_T]]) -> None: ...

    def __init__(
        self, inner: Callable[[Any], AbstractAsyncContextManager[Any]] | None = None
    ) -> None:
        self.inner = inner

    def __call__(self, app: Any) -> AbstractAsyncContextManager[_T]:
        """The context manager the server enters at startup and leaves at shutdown."""
        return self._run(app)

    @asynccontextmanager
    async def _run(self, app: Any) -> AsyncIterator[Any]:
        registry = registry_for(app)
        try:
            if self.inner is None:
                yield None
            else:
                async with self.inner(app) as state:
                    yield state
        finally:
            await registry.aclose()


#: The plain lifespan: ``FastAPI(lifespan=lifespan)``.
lifespan: Lifespan[None] = Lifespan()
