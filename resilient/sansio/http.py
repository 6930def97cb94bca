"""Requests, responses and header fields as plain values, filled by the protocol shells.

The WSGI and the ASGI middleware each translate their protocol into these objects, the way
werkzeug fills its sans-IO request from ``environ``; everything downstream reads only them.
Header values are ``str`` decoded as ISO-8859-1, so every byte round-trips.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Protocol

from resilient.sansio.keys import target_uri

__all__ = [
    "Headers",
    "RequestInfo",
    "RequestView",
    "Response",
    "ResponseHead",
    "format_http_date",
    "parse_http_date",
    "split_list",
]


_Source = tuple[tuple[bytes, bytes], ...] | Callable[[], Iterable[tuple[str, str]]] | None


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive header fields.

    Names are lower-cased; a field sent several times reads as its values joined with
    ``", "`` (RFC 9110 §5.3). :attr:`raw` keeps every field line in order.

    .. versionadded:: 0.1
    """

    __slots__ = ("_joined", "_raw", "_source")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._source: _Source = None
        self._raw: tuple[tuple[str, str], ...] | None = tuple(
            (name.lower(), value) for name, value in fields
        )
        self._joined: dict[str, str] | None = None

    @classmethod
    def from_bytes(cls, fields: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Fields as a server hands them over in bytes, decoded as ISO-8859-1 only when
        first read (a request no feature looks into costs no decoding).

        The field lines are copied now: a change to ``fields`` later is not seen.
        """
        return cls._deferred(tuple(fields))

    @classmethod
    def deferred(cls, source: Callable[[], Iterable[tuple[str, str]]]) -> Headers:
        """Fields that ``source()`` produces when they are first read.

        ``source`` must produce the same fields whenever it is called (read from a
        snapshot, not from something the app may change).
        """
        return cls._deferred(source)

    @classmethod
    def _deferred(cls, source: _Source) -> Headers:
        headers = cls.__new__(cls)
        headers._source = source
        headers._raw = None
        headers._joined = None
        return headers

    @property
    def raw(self) -> tuple[tuple[str, str], ...]:
        """Every field line, names lower-cased, in order."""
        raw = self._raw
        if raw is None:
            source = self._source
            if isinstance(source, tuple):
                fields: Iterable[tuple[str, str]] = [
                    (name.decode("latin-1"), value.decode("latin-1")) for name, value in source
                ]
            else:
                assert source is not None
                fields = source()
            raw = self._raw = tuple((name.lower(), value) for name, value in fields)
        return raw

    def _fields(self) -> dict[str, str]:
        joined = self._joined
        if joined is None:
            joined = {}
            for name, value in self.raw:
                previous = joined.get(name)
                joined[name] = value if previous is None else f"{previous}, {value}"
            self._joined = joined
        return joined

    def __getitem__(self, name: str) -> str:
        return self._fields()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields()

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """The joined value of ``name``, or ``default``."""
        return self._fields().get(name.lower(), default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, one per field line, in order."""
        wanted = name.lower()
        return [value for key, value in self.raw if key == wanted]

    def __repr__(self) -> str:
        return f"Headers({list(self.raw)!r})"


class RequestView(Protocol):
    """What features may read of a request (rate-limit keys, cache rules).

    .. versionadded:: 0.1
    """

    method: str  # upper-case
    path: str
    client: str | None  # socket peer IP, or None
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "


@dataclass(slots=True)
class RequestInfo:
    """One HTTP request as both shells describe it; satisfies :class:`RequestView`.

    Attributes:
        method: upper-case method.
        path: the path the app routes on, percent-decoded (WSGI ``PATH_INFO``; ASGI
            ``path`` without ``root_path``).
        client: the socket peer's IP address, or ``None``.
        headers: the header fields (a :class:`Headers`).
        scheme: ``http`` or ``https`` as the server saw it.
        host: the ``Host`` the request named, lower-cased.
        root_path: where the app is mounted (``SCRIPT_NAME`` / ``root_path``).
        query: the raw query string, without ``?``.

    .. versionadded:: 0.1
    """

    method: str
    path: str
    client: str | None
    headers: Mapping[str, str]
    scheme: str = "http"
    host: str = ""
    root_path: str = ""
    query: str = ""

    @property
    def url(self) -> str:
        """The absolute target URI: what a cache entry is stored under (RFC 9111 §2).

        Built by :func:`target_uri`, so that no two requests the app tells apart share it.
        """
        return target_uri(self.scheme, self.host, self.root_path + self.path, self.query)


@dataclass(slots=True)
class ResponseHead:
    """Status and header fields of a response whose body may still be streaming.

    ``headers`` keeps the app's names and order; lookups ignore case.

    .. versionadded:: 0.1
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        """The field's values joined with ``", "``, or ``None`` when absent."""
        values = self.get_all(name)
        return ", ".join(values) if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def has(self, name: str) -> bool:
        """Whether the field is present at all."""
        wanted = name.lower()
        return any(key.lower() == wanted for key, _ in self.headers)

    def set(self, name: str, value: str) -> None:
        """Replace every line of ``name`` with one line holding ``value``."""
        self.remove(name)
        self.headers.append((name, value))

    def remove(self, *names: str) -> None:
        """Drop every line of each of ``names``."""
        unwanted = {name.lower() for name in names}
        self.headers = [(k, v) for k, v in self.headers if k.lower() not in unwanted]


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response the middleware sends itself (a cache hit, a 304, a 504).

    ``body`` is empty for HEAD requests and 304s; the fields still describe the
    representation (``Content-Length`` of the GET body, for instance).

    .. versionadded:: 0.1
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def head(self) -> ResponseHead:
        """A mutable copy of status and fields."""
        return ResponseHead(self.status, list(self.headers))


_LIST_ITEM = re.compile(r'\s*((?:[^,"]|"(?:[^"\\]|\\.)*"?)*)')


def split_list(value: str) -> list[str]:
    """The members of a comma-separated field value, trimmed, empty members dropped.

    Commas inside quoted strings do not split (``no-cache="a, b"`` is one member).
    """
    if '"' not in value:
        return [item for item in (part.strip() for part in value.split(",")) if item]
    members = []
    for match in _LIST_ITEM.finditer(value):
        member = match.group(1).strip()
        if member:
            members.append(member)
    return members


_MONTHS = {
    name: index
    for index, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_DAY = r"(?:mon|tue|wed|thu|fri|sat|sun)"
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
_TIME = r"(\d\d):(\d\d):(\d\d)"
_IMF_FIXDATE = re.compile(rf"^{_DAY}, (\d\d) {_MONTH} (\d{{4}}) {_TIME} gmt$")
_RFC850 = re.compile(rf"^{_DAY}[a-z]*, (\d\d)-{_MONTH}-(\d\d) {_TIME} gmt$")
_ASCTIME = re.compile(rf"^{_DAY} {_MONTH} ([ \d]\d) {_TIME} (\d{{4}})$")


def parse_http_date(value: str) -> float | None:
    """Seconds since the epoch for an HTTP-date (RFC 9110 §5.6.7), or ``None``.

    Accepts the three formats recipients must: IMF-fixdate, RFC 850 (two-digit years
    70-99 are 19xx, the others 20xx) and asctime. Anything else, including dates that do
    not exist, gives ``None``.
    """
    text = value.strip().lower()
    match = _IMF_FIXDATE.match(text)
    if match is not None:
        day, month, year, hh, mm, ss = match.groups()
    elif (match := _RFC850.match(text)) is not None:
        day, month, short_year, hh, mm, ss = match.groups()
        year = str(1900 + int(short_year) if int(short_year) >= 70 else 2000 + int(short_year))
    elif (match := _ASCTIME.match(text)) is not None:
        month, day, hh, mm, ss, year = match.groups()
    else:
        return None
    fields = (int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss))
    if not (1 <= fields[2] <= 31 and fields[3] < 24 and fields[4] < 60 and fields[5] < 61):
        return None
    days_in_month = calendar.monthrange(fields[0], fields[1])[1]
    if fields[2] > days_in_month:
        return None
    return float(calendar.timegm((*fields, 0, 0, 0)))


def format_http_date(seconds: float) -> str:
    """An IMF-fixdate for ``seconds`` since the epoch (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return formatdate(seconds, usegmt=True)
