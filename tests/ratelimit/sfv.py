"""A small RFC 9651 (structured fields) List parser, to check the headers we emit.

It implements §4.2.1 (List), §4.2.3 (Item, Parameters) and the bare items our fields
may carry: Integer/Decimal (§4.2.4), String (§4.2.5), Token (§4.2.6), Boolean (§4.2.8).
Anything else is a parse error, as the RFC requires of a strict parser.
"""

from __future__ import annotations

import string

BareItem = int | float | str | bool
Parameters = dict[str, BareItem]
_TOKEN_FIRST = string.ascii_letters + "*"
_TOKEN_CHARS = string.ascii_letters + string.digits + ":/!#$%&'*+-.^_`|~"
_KEY_FIRST = string.ascii_lowercase + "*"
_KEY_CHARS = string.ascii_lowercase + string.digits + "_-.*"


class ParseError(ValueError):
    """The field value is not a valid structured-field List."""


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        if not char:
            raise ParseError("unexpected end")
        self.at += 1
        return char

    def skip(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.at += 1


def parse_list(text: str) -> list[tuple[BareItem, Parameters]]:
    """Parse a List of Items (inner lists are not used by our fields: rejected)."""
    reader = _Reader(text)
    reader.skip(" ")
    members: list[tuple[BareItem, Parameters]] = []
    while reader.peek():
        if reader.peek() == "(":
            raise ParseError("inner lists are not expected here")
        members.append((_bare_item(reader), _parameters(reader)))
        reader.skip(" \t")
        if not reader.peek():
            return members
        if reader.take() != ",":
            raise ParseError(f"expected ',' at {reader.at - 1}")
        reader.skip(" \t")
        if not reader.peek():
            raise ParseError("trailing comma")
    return members


def _parameters(reader: _Reader) -> Parameters:
    parameters: Parameters = {}
    while reader.peek() == ";":
        reader.take()
        reader.skip(" ")
        key = _key(reader)
        value: BareItem = True
        if reader.peek() == "=":
            reader.take()
            value = _bare_item(reader)
        parameters[key] = value
    return parameters


def _key(reader: _Reader) -> str:
    if reader.peek() not in _KEY_FIRST or not reader.peek():
        raise ParseError(f"bad key start at {reader.at}")
    start = reader.at
    while reader.peek() and reader.peek() in _KEY_CHARS:
        reader.at += 1
    return reader.text[start : reader.at]


def _bare_item(reader: _Reader) -> BareItem:
    char = reader.peek()
    if char == "-" or (char.isdigit() and char):
        return _number(reader)
    if char == '"':
        return _string(reader)
    if char == "?":
        reader.take()
        flag = reader.take()
        if flag not in "01":
            raise ParseError("bad boolean")
        return flag == "1"
    if char and char in _TOKEN_FIRST:
        start = reader.at
        while reader.peek() and reader.peek() in _TOKEN_CHARS:
            reader.at += 1
        return reader.text[start : reader.at]
    raise ParseError(f"unexpected {char!r} at {reader.at}")


def _number(reader: _Reader) -> int | float:
    start = reader.at
    if reader.peek() == "-":
        reader.take()
    digits = ""
    while reader.peek().isdigit() and reader.peek():
        digits += reader.take()
    if not digits:
        raise ParseError("a number needs digits")
    if reader.peek() == ".":
        reader.take()
        fraction = ""
        while reader.peek().isdigit() and reader.peek():
            fraction += reader.take()
        if not fraction or len(digits) > 12 or len(fraction) > 3:
            raise ParseError("bad decimal")
        return float(reader.text[start : reader.at])
    if len(digits) > 15:
        raise ParseError("integer too long")
    return int(reader.text[start : reader.at])


def _string(reader: _Reader) -> str:
    reader.take()
    out = ""
    while True:
        char = reader.take()
        if char == "\\":
            escaped = reader.take()
            if escaped not in '"\\':
                raise ParseError("bad escape")
            out += escaped
        elif char == '"':
            return out
        elif not " " <= char <= "~":
            raise ParseError("non-printable character in string")
        else:
            out += char
