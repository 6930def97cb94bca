"""Path patterns and method sets of rules (see :mod:`resilient.middleware.rules`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from resilient.errors import ConfigurationError

__all__ = ["compile_pattern", "method_set"]

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_PATTERN_PART = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?::path)?\}|\*\*|\*")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression a rule's path pattern stands for."""
    if not isinstance(pattern, str) or not pattern.startswith(("/", "*", "{")):
        raise ConfigurationError("Rule.path", pattern, "a path pattern starting with '/'")
    if pattern.endswith("/**"):
        return re.compile(_translate(pattern[:-3]) + "(?:/.*)?", re.DOTALL)
    return re.compile(_translate(pattern), re.DOTALL)


def _translate(pattern: str) -> str:
    parts: list[str] = []
    position = 0
    for match in _PATTERN_PART.finditer(pattern):
        parts.append(re.escape(pattern[position : match.start()]))
        token = match.group()
        if token == "**" or token.endswith(":path}"):
            parts.append(".*")
        elif token == "*":
            parts.append("[^/]*")
        else:
            parts.append("[^/]+")
        position = match.end()
    parts.append(re.escape(pattern[position:]))
    return "".join(parts)


def method_set(methods: Sequence[str] | None) -> frozenset[str] | None:
    """The upper-case methods a rule covers (``GET`` brings ``HEAD``); ``None``: all."""
    if methods is None:
        return None
    if isinstance(methods, str):
        methods = [methods]
    names = set()
    for method in methods:
        if not isinstance(method, str) or not _TOKEN.match(method):
            raise ConfigurationError("Rule.methods", method, "HTTP method names such as GET")
        names.add(method.upper())
    if "GET" in names:
        names.add("HEAD")
    return frozenset(names)
