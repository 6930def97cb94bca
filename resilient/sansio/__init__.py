"""Pure HTTP logic shared by the WSGI and ASGI middleware: no I/O, no framework.

Requests and responses as values (:mod:`~resilient.sansio.http`), ``Cache-Control``
(:mod:`~resilient.sansio.cache_control`), the shared-cache rules
(:mod:`~resilient.sansio.caching`), what stored responses are keyed on
(:mod:`~resilient.sansio.keys`), revalidation (:mod:`~resilient.sansio.revalidation`),
freshness (:mod:`~resilient.sansio.freshness`),
validators and 304s (:mod:`~resilient.sansio.conditional`), stored records
(:mod:`~resilient.sansio.entry`), the decisions they add up to, and the middleware's own
answers to refused requests (:mod:`~resilient.sansio.problems`).
"""

from __future__ import annotations

from resilient.sansio.cache_control import CacheControl, parse_cache_control
from resilient.sansio.caching import decide_store, plan_request
from resilient.sansio.conditional import etag_matches, is_not_modified, strong_etag
from resilient.sansio.decisions import CacheRules, Freshness, RequestPlan, StoreDecision
from resilient.sansio.entry import StoredResponse, VaryMarker, build_entry, decode_record
from resilient.sansio.freshness import assess, current_age
from resilient.sansio.http import (
    Headers,
    RequestInfo,
    RequestView,
    Response,
    ResponseHead,
    format_http_date,
    parse_http_date,
)
from resilient.sansio.problems import Rejection, problem_response
from resilient.sansio.serving import gateway_timeout, serve_stored

__all__ = [
    "CacheControl",
    "CacheRules",
    "Freshness",
    "Headers",
    "Rejection",
    "RequestInfo",
    "RequestPlan",
    "RequestView",
    "Response",
    "ResponseHead",
    "StoreDecision",
    "StoredResponse",
    "VaryMarker",
    "assess",
    "build_entry",
    "current_age",
    "decide_store",
    "decode_record",
    "etag_matches",
    "format_http_date",
    "gateway_timeout",
    "is_not_modified",
    "parse_cache_control",
    "parse_http_date",
    "plan_request",
    "problem_response",
    "serve_stored",
    "strong_etag",
]
