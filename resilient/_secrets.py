"""Masking secrets in anything resilient shows: URLs, messages, reprs. Strictly private.

Backend URLs carry passwords in two places: the userinfo (``redis://user:pw@host``) and
the query (``?password=pw``, ``?sentinel_password=pw``). Every text resilient prints,
logs or raises (``resilient config``, :class:`~resilient.errors.ConfigurationError`, the
repr of settings and backends) goes through these functions first.

The functions work on text, not on parsed URLs: a malformed URL (the very thing an error
message is about) must be masked as well as a valid one, and ``urllib`` either refuses
some malformed URLs or splits them so that part of the password lands outside the netloc.
They would rather mask too much than too little.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "mask_text", "mask_url", "mask_value"]

MASK = "***"

# Query parameters whose value is a credential: redis-py takes ``password``,
# ``sentinel_password`` and ``ssl_password`` from the query; the rest are here because a
# URL handed to another client may carry them too.
_SECRET_PARAM = re.compile(
    r"(?P<key>(?:[\w.-]*(?:pass(?:word|wd)?|secret|token|credentials?|api[_-]?key)[\w.-]*))"
    r"=(?P<value>[^&#\s'\"]*)",
    re.IGNORECASE,
)
# A URL inside free text: it ends at white space or a quote (reprs quote strings).
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")


def mask_url(url: str) -> str:
    """``url`` with the password of its userinfo and secret query values as ``***``.

    The user name and the hosts stay readable: ``redis://app:***@cache:6379/0``.
    Text without ``://`` is treated as a URL without scheme (``app:pw@cache:6379``).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    # The userinfo ends at the last "@": a password may hold "@", "/", "?" or "#" when
    # it was not percent-encoded, and then urllib would cut it in two.
    at = rest.rfind("@")
    if at != -1:
        user, colon, _password = rest[:at].partition(":")
        if colon:
            rest = f"{user}:{MASK}@{rest[at + 1 :]}"
    masked = _SECRET_PARAM.sub(lambda m: f"{m.group('key')}={MASK}", rest)
    return f"{scheme}{sep}{masked}"


def mask_text(text: str) -> str:
    """``text`` with every URL in it masked, and any ``password=...`` pair."""
    masked = _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('key')}={MASK}", masked)


def mask_value(value: object) -> object:
    """``value`` itself when showing it reveals nothing, else its masked text.

    For the ``value`` of an error: a string URL is masked as a URL; any other object
    whose repr holds a credential (a dict of options with a URL) becomes that repr,
    masked.
    """
    if isinstance(value, str):
        return mask_url(value) if ("@" in value or "=" in value) else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    shown = repr(value)
    masked = mask_text(shown)
    return value if masked == shown else masked
