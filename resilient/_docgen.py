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
- durations: plain seconds (`1.5`) or with a unit: `250ms`, `30s`, `5m`, `1h`; at most
  10 years (a longer one is a mistake: 400 digits would be infinite). Timeouts, times to
  live and leases must be above 0, since 0 would fail every operation;
- limits: the syntax of the `limits` package, several separated by `;` (`10/second;500/hour`);
- backend URLs: `memory://`, `redis://`, `rediss://`, `unix://`, `redis+cluster://`,
  `redis+sentinel://` (see [Backends](backends.md)); percent-encode a password's
  special characters (`%23` for `#`), else the port cannot be read and the URL is refused.

## Errors and warnings

A bad value raises `ConfigurationError` when the object that reads it is built (the
decorator for `@cached`, the first call for `@circuit_breaker` and `@rate_limited`),
naming the variable, its value and what was expected. The keyword arguments of the
decorators and constructors are checked by the same parsers, so `@cached(lock_ttl=0)` is
valid exactly when `RESILIENT_CACHE_LOCK_TTL=0` is; in code, durations are numbers of
seconds or a `timedelta`, not text. An error names the keyword when the value came from
code and the variable (`RESILIENT_BREAKER__PAYMENTS__MINIMUM_CALLS`) when it came from the
environment or framework config. An option a decorator does not know fails when it is
applied, with the closest known name (`did you mean fail_max?`).

An unknown `RESILIENT_*` variable gives a warning naming the closest known one; for a
per-name variable the suggestion keeps the name (`RESILIENT_BREAKER__PAYMENTS__FAIL_MAX`).

## Secrets

Passwords never show: in the userinfo (`redis://app:***@cache:6379/0`) or the query
(`?password=***`, `?sentinel_password=***`) of a URL, percent-encoded or not. This holds for
`resilient config` (table and `--format json`), error messages and their `args`, warnings
(which name a variable, never its value), and the `repr` of settings, their sections and
backends. The HMAC key (`RESILIENT_CACHE_HMAC_KEY`) shows as `***`.
`resilient config` prints the effective settings and where each came from.
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
