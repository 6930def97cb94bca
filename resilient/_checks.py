"""Checking setting values and option names: the errors, and the suggestions in them.

Strictly private; :mod:`resilient.config` re-exports :func:`check_option` and
:func:`check_option_names` for the decorators and constructors.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from resilient._secrets import MASK, mask_url
from resilient._variables import BY_KEY, NAMED_SECTIONS, VARIABLES, Variable
from resilient.errors import ConfigurationError

__all__ = [
    "check_option",
    "check_option_names",
    "closest",
    "parse",
    "shown_value",
    "suggest_variable",
]

#: A per-name variable, unprefixed: CACHE__USERS__TTL.
NAMED = re.compile(r"^(?P<section>[A-Z]+)__(?P<name>[A-Z0-9_]+?)__(?P<field>[A-Z0-9_]+)$")


def closest(key: str) -> Variable | None:
    """The variable whose unprefixed name is closest to ``key``, if one is close."""
    close = difflib.get_close_matches(key, list(BY_KEY), n=1, cutoff=0.5)
    return BY_KEY[close[0]] if close else None


def suggest_variable(key: str) -> str | None:
    """The known variable ``key`` (unprefixed) most likely means, or None."""
    match = NAMED.match(key)
    if match is not None:
        # A per-name variable: correct the section and the field, keep the name.
        sections = [section.upper() for section in NAMED_SECTIONS]
        section = difflib.get_close_matches(match.group("section"), sections, n=1, cutoff=0.5)
        if section:
            fields = [v.field.upper() for v in VARIABLES if v.section.upper() == section[0]]
            field = difflib.get_close_matches(match.group("field"), fields, n=1, cutoff=0.5)
            if field:
                return f"{section[0]}__{match.group('name')}__{field[0]}"
    close = closest(key)
    return close.key if close else None


def shown_value(variable: Variable, raw: object) -> object:
    """``raw`` as an error may show it: a URL's password masked, other secrets hidden."""
    if variable.secret and raw is not None and raw != "":
        return mask_url(raw) if isinstance(raw, str) and variable.parser.kind == "url" else MASK
    return raw


def parse(variable: Variable, raw: object, name: str) -> object:
    """``raw`` (text or typed) as ``variable``'s value; the error names ``name``."""
    try:
        return variable.parser.convert(raw)
    except ValueError:
        raise ConfigurationError(
            name, shown_value(variable, raw), variable.parser.expected
        ) from None


def check_option(section: str, field: str, value: object, keyword: str | None = None) -> Any:
    """``value`` given in code for the setting ``section``/``field``, checked by its parser.

    Decorators and constructors call this for their keyword arguments, so that a keyword
    accepts exactly what its variable accepts. The error names ``keyword`` (default: the
    field): the value came from code, not from the environment.

    Raises:
        ConfigurationError: the value is not one the variable would accept.
    """
    variable = BY_KEY[f"{section}_{field}".upper() if section else field.upper()]
    parser = variable.parser
    if parser.typed is None:
        return parse(variable, value, keyword or field)
    # In code a number is a number: "30s" is for the environment, and text where a
    # number is due is a mistake to report, not to read.
    try:
        return parser.typed(value)
    except ValueError:
        expected = parser.expected
        if parser.kind in _IN_CODE:
            expected += f" (in code: {_IN_CODE[parser.kind]})"
        raise ConfigurationError(keyword or field, shown_value(variable, value), expected) from None


#: What a typed parser takes in code, where it differs from its text form.
_IN_CODE = {
    "duration": "a number of seconds or a timedelta",
    "bool": "True or False",
    "int": "an int",
    "float": "an int or a float",
    "percent": "an int or a float",
}


def check_option_names(given: Mapping[str, object], known: frozenset[str], owner: str) -> None:
    """Refuse options that ``owner`` does not know, suggesting the closest known name.

    Raises:
        ConfigurationError: naming the first unknown option, with its value.
    """
    for name, value in given.items():
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "known: " + ", ".join(sorted(known))
        raise ConfigurationError(name, value, f"an option of {owner} ({hint})")
