"""Rate-limit headers, added outside the HTTP cache so a stored response never carries them.

``RateLimit``, ``RateLimit-Policy`` and ``X-RateLimit-*`` describe one client's quota at
one moment. Set inside the app (on FastAPI's injected ``Response``) they would be stored
by the cache middleware and replayed to every client served the copy, and FastAPI drops
them anyway when an endpoint returns a ``Response`` itself. :func:`install` puts this
middleware outermost: dependencies record their decisions in the request's scope, and
the headers are added to the response start, for this request only.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resilient.ratelimit import Decision, rate_limit_headers

__all__ = ["DECISIONS_KEY", "RateLimitHeadersMiddleware"]

#: The scope key holding the list of a request's rate-limit decisions.
DECISIONS_KEY = "resilient.decisions"


class RateLimitHeadersMiddleware:
    """Pure ASGI middleware adding the headers of the decisions dependencies recorded.

    Args:
        app: the ASGI application.
        style: ``off``, ``legacy``, ``draft`` or ``both`` (``RESILIENT_RATELIMIT_HEADERS``).

    .. versionadded:: 0.1
    """

    def __init__(self, app: ASGIApp, style: str) -> None:
        self.app = app
        self.style = style

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        decisions: list[Decision] = []
        style = self.style

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and decisions:
                headers = list(message.get("headers", ()))
                present = {bytes(name).lower() for name, _ in headers}
                for name, value in rate_limit_headers(
                    decisions, style=style, status=int(message["status"])
                ):
                    encoded = name.lower().encode("latin-1")
                    if encoded not in present:
                        headers.append((encoded, value.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        # A copy of the scope: the list travels with it down to the dependencies.
        await self.app({**scope, DECISIONS_KEY: decisions}, receive, send_with_headers)
