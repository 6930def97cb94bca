"""The hit path, compiled per function: a plain closure with the function's own signature.

Python binds the caller's arguments to the generated parameters (defaults included), so
``f(1, b=2)`` and ``f(1, 2)`` find the same entry without ``inspect.Signature.bind``. The
body then builds the key inline (the arguments themselves when they are of the exact
types in :data:`~resilient.cache.keys.FAST_TYPES`), probes the store once, reads the
clock once and returns the object: no lock, no task, no decoding. Anything else (a miss,
an entry near or past expiry) goes to the cache's ``miss`` method.

The generated source only ever contains parameter names taken from the signature and
fixed templates; no value from the caller is compiled.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from resilient.cache.keys import FAST_TYPES, slow_key
from resilient.errors import ConfigurationError

__all__ = ["CallPlan", "build_wrapper", "plan_call"]

_P = inspect.Parameter
_VARIADIC = (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)

KeyOf = Callable[..., tuple[Hashable, tuple[Any, ...]]]
Apply = Callable[[Callable[..., Any], tuple[Any, ...]], Any]


@dataclass(frozen=True, slots=True)
class CallPlan:
    """How one function's arguments become a key and a call.

    Attributes:
        names: every parameter, in order; the ``values`` tuples follow it.
        key_names: the parameters that make up the key.
        custom: the key comes from the user's ``key=`` function.
        key_of: same signature as the function; returns ``(key, values)``.
        apply: calls a function with a ``values`` tuple, as the original was called.
    """

    names: tuple[str, ...]
    key_names: tuple[str, ...]
    custom: bool
    key_of: KeyOf
    apply: Apply
    source: _Source


@dataclass(frozen=True, slots=True)
class _Source:
    params: str
    call: str
    values: str
    key_lines: tuple[str, ...]
    defaults: tuple[Any, ...]
    kwdefaults: dict[str, Any]


def _signature(func: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # some builtins: accept anything
        return inspect.Signature([_P("args", _P.VAR_POSITIONAL), _P("kwargs", _P.VAR_KEYWORD)])


def _render(params: Sequence[_P]) -> tuple[str, str, str]:
    """The parameter list, the call arguments (by name) and the values tuple."""
    out: list[str] = []
    call: list[str] = []
    star_done = False
    for index, param in enumerate(params):
        kind = param.kind
        if kind is _P.KEYWORD_ONLY and not star_done:
            out.append("*")
            star_done = True
        if kind is _P.VAR_POSITIONAL:
            star_done = True
            out.append(f"*{param.name}")
            call.append(f"*{param.name}")
        elif kind is _P.VAR_KEYWORD:
            out.append(f"**{param.name}")
            call.append(f"**{param.name}")
        elif kind is _P.KEYWORD_ONLY:
            out.append(param.name)
            call.append(f"{param.name}={param.name}")
        else:
            out.append(param.name)
            call.append(param.name)
        following = params[index + 1] if index + 1 < len(params) else None
        if kind is _P.POSITIONAL_ONLY and (following is None or following.kind is not kind):
            out.append("/")
    values = "(" + "".join(f"{p.name}, " for p in params) + ")"
    return ", ".join(out), ", ".join(call), values


def _key_lines(params: Sequence[_P], keyed: Sequence[str], custom: bool, call: str) -> list[str]:
    if custom:
        return [
            f"__rc_key = __rc_user_key({call})",
            "if type(__rc_key) is not str:",
            "    __rc_key = __rc_bad_key(__rc_key)",
        ]
    if not keyed:
        return ["__rc_key = ()"]
    packed = "(" + "".join(f"{name}, " for name in keyed) + ")"
    variadic = {p.name for p in params if p.kind in _VARIADIC}
    if variadic & set(keyed):  # a tuple or dict is never a fast key
        return [f"__rc_key = __rc_slow({packed})"]
    test = " and ".join(f"type({name}) in __rc_fast" for name in keyed)
    fast = keyed[0] if len(keyed) == 1 else packed
    return [
        f"if {test}:",
        f"    __rc_key = {fast}",
        "else:",
        f"    __rc_key = __rc_slow({packed})",
    ]


def _compile(source: str, namespace: dict[str, Any], name: str) -> Any:
    exec(compile(source, f"<resilient.cache {name}>", "exec"), namespace)
    return namespace[name]


def _bad_key(key: object) -> str:
    raise TypeError(f"the key= function must return a str, not {type(key).__name__}")


def plan_call(
    func: Callable[..., Any],
    ignore: Sequence[str] = (),
    key: Callable[..., str] | None = None,
) -> CallPlan:
    """Analyse ``func``'s signature once, at decoration time.

    Raises:
        ConfigurationError: ``ignore`` names an unknown parameter, or a parameter name
            would clash with the generated code.
    """
    params = list(_signature(func).parameters.values())
    names = tuple(p.name for p in params)
    clash = [name for name in names if name.startswith("__rc_")]
    if clash:
        raise ConfigurationError("parameter name", clash[0], "a name not starting with __rc_")
    unknown = [name for name in ignore if name not in names]
    if unknown:
        raise ConfigurationError("ignore", unknown[0], "names of parameters of " + repr(func))
    keyed = tuple(name for name in names if name not in ignore)
    param_src, call_src, values_src = _render(params)
    lines = _key_lines(params, keyed, key is not None, call_src)
    defaults = tuple(
        p.default for p in params if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
        and p.default is not _P.empty
    )  # fmt: skip
    kwdefaults = {
        p.name: p.default for p in params if p.kind is _P.KEYWORD_ONLY and p.default is not _P.empty
    }
    source = _Source(param_src, call_src, values_src, tuple(lines), defaults, kwdefaults)
    namespace: dict[str, Any] = {
        "__rc_fast": FAST_TYPES,
        "__rc_slow": lambda values: slow_key(values, keyed),
        "__rc_user_key": key,
        "__rc_bad_key": _bad_key,
    }
    body = "".join(f"    {line}\n" for line in lines)
    key_of = _compile(
        f"def __rc_key_of({param_src}):\n{body}    return __rc_key, {values_src}\n",
        namespace,
        "__rc_key_of",
    )
    _set_defaults(key_of, source)
    by_index = _render_apply(params)
    apply = _compile(
        f"def __rc_apply(__rc_f, __rc_v):\n    return __rc_f({by_index})\n",
        {},
        "__rc_apply",
    )
    return CallPlan(names, keyed, key is not None, key_of, apply, source)


def _render_apply(params: Sequence[_P]) -> str:
    parts = []
    for index, param in enumerate(params):
        item = f"__rc_v[{index}]"
        if param.kind is _P.VAR_POSITIONAL:
            parts.append(f"*{item}")
        elif param.kind is _P.VAR_KEYWORD:
            parts.append(f"**{item}")
        elif param.kind is _P.KEYWORD_ONLY:
            parts.append(f"{param.name}={item}")
        else:
            parts.append(item)
    return ", ".join(parts)


def _set_defaults(function: Any, source: _Source) -> None:
    function.__defaults__ = source.defaults or None
    function.__kwdefaults__ = dict(source.kwdefaults) or None


def build_wrapper(
    func: Callable[..., Any],
    plan: CallPlan,
    *,
    store_get: Callable[[Hashable], Any],
    clock: Callable[[], float],
    counts: Any,
    miss: Callable[[Hashable, tuple[Any, ...]], Any],
    is_async: bool,
    key: Callable[..., str] | None = None,
) -> Callable[..., Any]:
    """The decorated function: the inline hit path, then ``miss(key, values)``."""
    source = plan.source
    name = func.__name__ if getattr(func, "__name__", "").isidentifier() else "cached"
    if name.startswith("__rc_"):
        name = "cached"
    body = "".join(f"        {line}\n" for line in source.key_lines)
    prefix, call = ("async def", "await __rc_miss") if is_async else ("def", "__rc_miss")
    text = (
        "def __rc_factory(__rc_get, __rc_clock, __rc_counts, __rc_miss):\n"
        f"    {prefix} {name}({source.params}):\n"
        f"{body}"
        "        __rc_entry = __rc_get(__rc_key)\n"
        "        if __rc_entry is not None and __rc_clock() < __rc_entry.check_at:\n"
        "            __rc_entry.touched = True\n"
        "            __rc_counts.hits += 1\n"
        "            return __rc_entry.value\n"
        f"        return {call}(__rc_key, {source.values})\n"
        f"    return {name}\n"
    )
    namespace: dict[str, Any] = {
        "__rc_fast": FAST_TYPES,
        "__rc_slow": lambda values: slow_key(values, plan.key_names),
        "__rc_user_key": key,
        "__rc_bad_key": _bad_key,
    }
    factory = _compile(text, namespace, "__rc_factory")
    wrapper: Callable[..., Any] = factory(store_get, clock, counts, miss)
    _set_defaults(wrapper, source)
    return wrapper
