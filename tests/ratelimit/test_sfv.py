"""The test-side RFC 9651 parser itself: it must reject what the RFC rejects."""

from __future__ import annotations

import pytest

from tests.ratelimit.sfv import ParseError, parse_list


def test_parses_lists_of_items_with_parameters() -> None:
    """Strings, tokens, integers, decimals and booleans, with parameters."""
    assert parse_list('"a";q=10;w=60, tok;r=-1;x=1.5;y=?0;z') == [
        ("a", {"q": 10, "w": 60}),
        ("tok", {"r": -1, "x": 1.5, "y": False, "z": True}),
    ]
    assert parse_list('"say \\"hi\\""') == [('say "hi"', {})]
    assert parse_list("") == []


@pytest.mark.parametrize(
    "bad",
    ['"open', '"a";Q=1', '"a",', '"a" "b"', "1234567890123456", '"a";q=', "(1 2)",
     '"\\x"', "?2", "1.", '"é"', "-", "@"],
)  # fmt: skip
def test_rejects_malformed_values(bad: str) -> None:
    """Unterminated strings, upper-case keys, trailing commas, 16-digit integers..."""
    with pytest.raises(ParseError):
        parse_list(bad)
