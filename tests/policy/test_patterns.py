"""Resource patterns: a table of matches and containment, plus containment soundness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerolane.errors import InvalidInput
from zerolane.policy.patterns import is_within, matches, matches_any, parse_pattern, parse_value

MATCHES = [
    ("finance/reports/*", "finance/reports/q3", True),
    ("finance/reports/*", "finance/reports/q3/raw", False),
    ("finance/reports/*", "finance/reports", False),
    ("finance/**", "finance/reports/q3/raw", True),
    ("finance/**", "finance/reports", True),
    ("finance/**", "finance", False),
    ("finance/rep*", "finance/reports", True),
    ("finance/rep*", "finance/rep", True),
    ("finance/rep*", "finance/re", False),
    ("finance/*/q3", "finance/reports/q3", True),
    ("finance/*/q3", "finance/reports/q4", False),
    ("Finance/*", "finance/x", False),  # case-sensitive
    ("a", "a", True),
    ("a", "b", False),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), MATCHES)
def test_matches(pattern: str, value: str, expected: bool) -> None:
    assert matches(pattern, value) is expected


WITHIN = [
    ("finance/reports/q3", "finance/reports/*", True),
    ("finance/reports/*", "finance/reports/*", True),
    ("finance/reports/*", "finance/**", True),
    ("finance/reports/**", "finance/**", True),
    ("finance/**", "finance/reports/**", False),
    ("finance/**", "finance/*", False),
    ("finance/*", "finance/rep*", False),
    ("finance/reports", "finance/rep*", True),
    ("finance/report*", "finance/rep*", True),
    ("finance/rep*", "finance/report*", False),
    ("finance", "finance/**", False),
    ("hr/*", "finance/**", False),
]


@pytest.mark.parametrize(("inner", "outer", "expected"), WITHIN)
def test_is_within(inner: str, outer: str, expected: bool) -> None:
    assert is_within(inner, outer) is expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "pattern.length"),
        ("x" * 1025, "pattern.length"),
        ("a//b", "pattern.empty_segment"),
        ("/a", "pattern.empty_segment"),
        ("a/", "pattern.empty_segment"),
        ("**/a", "pattern.globstar"),
        ("a/*x", "pattern.segment"),
        ("a/b c", "pattern.segment"),
        ("a/**x", "pattern.segment"),
        ("a/é", "pattern.segment"),
    ],
)
def test_bad_patterns(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_pattern(text)
    assert caught.value.reason == reason


def test_values_have_no_wildcards() -> None:
    assert parse_value("a/b") == ("a", "b")
    with pytest.raises(InvalidInput) as caught:
        parse_value("a/*")
    assert caught.value.reason == "resource.wildcard"


def test_matches_any() -> None:
    assert matches_any(["hr/*", "finance/**"], "finance/x/y")
    assert not matches_any(["hr/*"], "finance/x")
    assert not matches_any([], "finance/x")


segment = st.sampled_from(["a", "b", "ab", "abc", "ba"])
pattern_segment = st.sampled_from(["a", "b", "ab", "a*", "ab*", "b*", "*"])


@st.composite
def patterns(draw: st.DrawFn) -> str:
    segs = draw(st.lists(pattern_segment, min_size=1, max_size=3))
    if draw(st.booleans()):
        segs.append("**")
    return "/".join(segs)


@st.composite
def pattern_and_value(draw: st.DrawFn) -> tuple[str, str]:
    """A pattern and, half the time, a value it matches (otherwise any value)."""
    pattern = draw(patterns())
    if draw(st.booleans()):
        return pattern, draw(st.lists(segment, min_size=1, max_size=5).map("/".join))
    parts: list[str] = []
    for seg in pattern.split("/"):
        if seg == "**":
            parts += draw(st.lists(segment, min_size=1, max_size=2))
        elif seg == "*":
            parts.append(draw(segment))
        elif seg.endswith("*"):
            parts.append(seg[:-1] + draw(st.sampled_from(["", "x", "yz"])))
        else:
            parts.append(seg)
    return pattern, "/".join(parts)


@settings(max_examples=500)
@given(pv=pattern_and_value(), q=patterns())
def test_within_is_sound(pv: tuple[str, str], q: str) -> None:
    """``matches(p, v)`` and ``is_within(p, q)`` imply ``matches(q, v)``."""
    p, value = pv
    if matches(p, value) and is_within(p, q):
        assert matches(q, value)


@given(p=patterns())
def test_within_is_reflexive(p: str) -> None:
    assert is_within(p, p)
