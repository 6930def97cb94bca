"""Rate-limit headers, added outside the HTTP cache so a stored response never carries them.

``RateLimit``, ``RateLimit-Policy`` and ``X-RateLimit-*`` describe one client's quota at
one moment. Were they added inside the app, the cache middleware would store them with
the response and replay them to every client it serves the copy to. This layer wraps the
cache instead: views record their decisions in ``environ``, and the headers are rendered
when the response starts, for this request only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resilient.ratelimit import Decision, rate_limit_headers
from resilient_flask._problems import DECISIONS_KEY

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["RateLimitHeaders"]


class RateLimitHeaders:
    """WSGI middleware adding the headers of the rate-limit decisions views recorded.

    Args:
        app: the WSGI application (the cache middleware around the Flask app).
        style: ``off``, ``legacy``, ``draft`` or ``both`` (``RESILIENT_RATELIMIT_HEADERS``).
    """

    def __init__(self, app: WSGIApplication, style: str) -> None:
        self.app = app
        self.style = style

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        decisions: list[Decision] = []
        environ[DECISIONS_KEY] = decisions

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], object]:
            if decisions:
                code = int(status[:3]) if status[:3].isdigit() else 0
                present = {name.lower() for name, _ in headers}
                headers = headers + [
                    (name, value)
                    for name, value in rate_limit_headers(decisions, style=self.style, status=code)
                    if name.lower() not in present
                ]
            return start_response(status, headers, exc_info)

        # The app's iterable goes back untouched: file wrappers and close() stay intact.
        return self.app(environ, start)
