"""Renders ``docs/configuration.md`` from the table of variables. Strictly private.

``python -m resilient._docgen > docs/configuration.md`` rewrites it; a test fails when the
committed page differs from what this prints.
"""

from __future__ import annotations

from resilient._variables import NAMED_SECTIONS, VARIABLES, Variable

_TITLES = {
    "": "Global",
    "cache": "Caching",
    "breaker": "Circuit breakers",
    "ratelimit": "Rate limiting",
    "http": "HTTP middleware",
}

_HEAD = """\
# Configuration

Every setting can be given as an environment variable, read when an object is built
(never at import). This page is generated from the table in `resilient/_variables.py`;
a test fails when it is out of date.

## Precedence

Highest first:

1. an explicit argument (`@cached(ttl=30)`, `Settings.from_env(overrides=...)`);
2. framework config (`app.config["RESILIENT_CACHE_TTL"]`, the same names as the env);
3. a per-name variable: `RESILIENT_<SECTION>__<NAME>__<FIELD>`, for example
   `RESILIENT_BREAKER__PAYMENTS__FAIL_MAX=3` for the breaker named `payments`
   (names are upper-cased, other characters become `_`); sections: {named};
4. a global variable (`RESILIENT_BREAKER_FAIL_MAX=5`);
5. the default.

## Value formats

- booleans: `1`, `0`, `true`, `false`, `yes`, `no`;
- durations: plain seconds (`1.5`) or with a unit: `250ms`, `30s`, `5m`, `1h`;
- limits: the syntax of the `limits` package, several separated by `;` (`10/second;500/hour`);
- backend URLs: `memory://`, `redis://`, `rediss://`, `unix://`, `redis+cluster://`,
  `redis+sentinel://` (see [Backends](backends.md)).

A bad value raises `ConfigurationError` naming the variable, its value and what was
expected. An unknown `RESILIENT_*` variable gives a warning naming the closest known one.
`resilient config` prints the effective settings and where each came from, with secrets masked.
"""


def _default(variable: Variable) -> str:
    value = variable.default
    if value is None or value == "" or value == ():
        return "(empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):  # a list setting: as it is written in the environment
        return f"`{','.join(str(item) for item in value)}`"
    return f"`{value}`"


def render() -> str:
    """The whole page, as Markdown."""
    lines = [_HEAD.format(named=", ".join(f"`{name}`" for name in NAMED_SECTIONS))]
    for section, title in _TITLES.items():
        lines.append(f"\n## {title}\n")
        lines.append("| Variable | Valid values | Default | What it does |")
        lines.append("|---|---|---|---|")
        for variable in VARIABLES:
            if variable.section != section:
                continue
            lines.append(
                f"| `RESILIENT_{variable.key}` | {variable.parser.expected} "
                f"| {_default(variable)} | {variable.help} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
