"""Path patterns and method sets of rules (see :mod:`resilient.middleware.rules`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from resilient.errors import ConfigurationError

__all__ = ["compile_pattern", "excluded_paths", "method_set"]

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_PATTERN_PART = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?::path)?\}|\*\*|\*")


def compile_pattern(pattern: str, argument: str = "Rule.path") -> re.Pattern[str]:
    """The regular expression a rule's path pattern stands for.

    ``argument`` names the setting in the error raised for an unusable pattern.
    """
    if not isinstance(pattern, str) or not pattern.startswith(("/", "*", "{")):
        raise ConfigurationError(argument, pattern, "a path pattern starting with '/'")
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


def excluded_paths(
    patterns: Sequence[str], argument: str = "exclude"
) -> Callable[[str], object] | None:
    """A test of whether a path matches any of ``patterns`` (``None``: there are none).

    One alternation of every pattern, so a request pays one regex match however many
    paths are excluded.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    regexes = [compile_pattern(pattern, argument).pattern for pattern in patterns]
    if not regexes:
        return None
    return re.compile("|".join(f"(?:{regex})" for regex in regexes), re.DOTALL).fullmatch
