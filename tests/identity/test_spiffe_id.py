"""SPIFFE ID conformance (SPIFFE-ID spec, section 2), with the exact rule each refusal names."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from zerolane.errors import InvalidInput
from zerolane.identity.spiffe_id import (
    MAX_BYTES,
    SpiffeId,
    SpiffeIdError,
    parse_spiffe_id,
    parse_trust_domain,
    parse_workload_id,
)

TD_ALPHABET = string.ascii_lowercase + string.digits + ".-_"
PATH_ALPHABET = string.ascii_letters + string.digits + ".-_"


def sized(total: int) -> str:
    """A valid SPIFFE ID of exactly ``total`` bytes."""
    head = "spiffe://example.org/"
    return head + "a" * (total - len(head))


VALID = [
    ("spiffe://example.org", "example.org", ""),
    ("spiffe://example.org/workload", "example.org", "/workload"),
    ("spiffe://staging.example.com/payments/mysql", "staging.example.com", "/payments/mysql"),
    ("spiffe://k8s-west.example.com/ns/staging/sa/default", "k8s-west.example.com", None),
    ("spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453", "example.com", None),
    ("spiffe://trust_domain/path", "trust_domain", "/path"),
    ("spiffe://1.2.3.4/path", "1.2.3.4", "/path"),
    ("spiffe://td/Path/With/UPPER/case", "td", "/Path/With/UPPER/case"),
    ("spiffe://td/a.b/c-d/e_f", "td", "/a.b/c-d/e_f"),
    ("spiffe://td/.../..../.a/a.", "td", "/.../..../.a/a."),
    ("spiffe://td/-/_/0", "td", "/-/_/0"),
    ("spiffe://a", "a", ""),
    ("spiffe://" + "a" * 255 + "/x", "a" * 255, "/x"),
    (sized(MAX_BYTES), "example.org", None),
]


@pytest.mark.parametrize(("value", "trust_domain", "path"), VALID)
def test_valid_ids_parse_and_round_trip(value: str, trust_domain: str, path: str | None) -> None:
    parsed = parse_spiffe_id(value)
    assert parsed.trust_domain == trust_domain
    if path is not None:
        assert parsed.path == path
    assert str(parsed) == value
    assert parsed.is_trust_domain == (parsed.path == "")


def test_the_longest_valid_id_is_2048_bytes() -> None:
    assert len(sized(MAX_BYTES).encode()) == 2048
    parse_spiffe_id(sized(2048))
    with pytest.raises(SpiffeIdError) as info:
        parse_spiffe_id(sized(2049))
    assert info.value.reason == "spiffe_id.too_long"


INVALID = [
    # scheme
    ("", "spiffe_id.empty"),
    ("example.org/workload", "spiffe_id.scheme"),
    ("http://example.org/workload", "spiffe_id.scheme"),
    ("SPIFFE://example.org/workload", "spiffe_id.scheme"),
    ("Spiffe://example.org/workload", "spiffe_id.scheme"),
    ("spiffe:/example.org/workload", "spiffe_id.scheme"),
    ("spiffe:example.org/workload", "spiffe_id.scheme"),
    (" spiffe://example.org/workload", "spiffe_id.scheme"),
    # trust domain
    ("spiffe://", "spiffe_id.missing_trust_domain"),
    ("spiffe:///workload", "spiffe_id.missing_trust_domain"),
    ("spiffe://Example.org/workload", "spiffe_id.uppercase_trust_domain"),
    ("spiffe://EXAMPLE.ORG", "spiffe_id.uppercase_trust_domain"),
    ("spiffe://example.org:8080/workload", "spiffe_id.port"),
    ("spiffe://example.org:/workload", "spiffe_id.port"),
    ("spiffe://user@example.org/workload", "spiffe_id.userinfo"),
    ("spiffe://user:pass@example.org/workload", "spiffe_id.userinfo"),
    ("spiffe://exa%6Dple.org/workload", "spiffe_id.percent_encoded"),
    ("spiffe://exa mple.org/workload", "spiffe_id.trust_domain_chars"),
    ("spiffe://exämple.org/workload", "spiffe_id.trust_domain_chars"),
    ("spiffe://example.org!/workload", "spiffe_id.trust_domain_chars"),
    ("spiffe://[::1]/workload", "spiffe_id.port"),
    ("spiffe://example.org\n/workload", "spiffe_id.trust_domain_chars"),
    ("spiffe://example.org\n", "spiffe_id.trust_domain_chars"),
    ("spiffe://" + "a" * 256 + "/x", "spiffe_id.too_long"),
    # query and fragment
    ("spiffe://example.org/workload?x=1", "spiffe_id.query"),
    ("spiffe://example.org?x=1", "spiffe_id.query"),
    ("spiffe://example.org/workload#frag", "spiffe_id.fragment"),
    ("spiffe://example.org#frag", "spiffe_id.fragment"),
    # path
    ("spiffe://example.org/", "spiffe_id.trailing_slash"),
    ("spiffe://example.org/workload/", "spiffe_id.trailing_slash"),
    ("spiffe://example.org//workload", "spiffe_id.empty_segment"),
    ("spiffe://example.org/a//b", "spiffe_id.empty_segment"),
    ("spiffe://example.org/.", "spiffe_id.dot_segment"),
    ("spiffe://example.org/..", "spiffe_id.dot_segment"),
    ("spiffe://example.org/a/./b", "spiffe_id.dot_segment"),
    ("spiffe://example.org/a/../b", "spiffe_id.dot_segment"),
    ("spiffe://example.org/%41", "spiffe_id.percent_encoded"),
    ("spiffe://example.org/a%2Fb", "spiffe_id.percent_encoded"),
    ("spiffe://example.org/work load", "spiffe_id.path_chars"),
    ("spiffe://example.org/work@load", "spiffe_id.path_chars"),
    ("spiffe://example.org/work:load", "spiffe_id.path_chars"),
    ("spiffe://example.org/wörk", "spiffe_id.path_chars"),
    ("spiffe://example.org/a+b", "spiffe_id.path_chars"),
    ("spiffe://example.org/a~b", "spiffe_id.path_chars"),
    ("spiffe://example.org/a\\b", "spiffe_id.path_chars"),
    ("spiffe://example.org/workload\n", "spiffe_id.path_chars"),
    ("spiffe://example.org/work\x00load", "spiffe_id.path_chars"),
]


@pytest.mark.parametrize(("value", "reason"), INVALID)
def test_invalid_ids_are_refused_naming_the_rule(value: str, reason: str) -> None:
    with pytest.raises(SpiffeIdError) as info:
        parse_spiffe_id(value)
    assert info.value.reason == reason
    assert isinstance(info.value, InvalidInput)


def test_workload_id_needs_a_path() -> None:
    with pytest.raises(SpiffeIdError) as info:
        parse_workload_id("spiffe://example.org")
    assert info.value.reason == "spiffe_id.no_path"
    assert parse_workload_id("spiffe://example.org/agent") == SpiffeId("example.org", "/agent")


def test_workload_id_refuses_what_any_id_refuses() -> None:
    with pytest.raises(SpiffeIdError) as info:
        parse_workload_id("spiffe://example.org/agent/")
    assert info.value.reason == "spiffe_id.trailing_slash"


# trust domains


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.org", "example.org"),
        ("prod_1.example-2.org", "prod_1.example-2.org"),
        ("spiffe://example.org", "example.org"),
        ("a" * 255, "a" * 255),
    ],
)
def test_valid_trust_domains(value: str, expected: str) -> None:
    assert parse_trust_domain(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "spiffe_id.missing_trust_domain"),
        ("Example.org", "spiffe_id.uppercase_trust_domain"),
        ("example.org:443", "spiffe_id.port"),
        ("admin@example.org", "spiffe_id.userinfo"),
        ("example.org/path", "spiffe_id.trust_domain_chars"),
        ("exa mple.org", "spiffe_id.trust_domain_chars"),
        ("example.org\n", "spiffe_id.trust_domain_chars"),
        ("a" * 256, "spiffe_id.too_long"),
        ("spiffe://example.org/workload", "spiffe_id.not_trust_domain"),
        ("spiffe://Example.org", "spiffe_id.uppercase_trust_domain"),
    ],
)
def test_invalid_trust_domains(value: str, reason: str) -> None:
    with pytest.raises(SpiffeIdError) as info:
        parse_trust_domain(value)
    assert info.value.reason == reason


# properties over the spec's alphabets

trust_domains = st.text(alphabet=TD_ALPHABET, min_size=1, max_size=64)
segments = st.text(alphabet=PATH_ALPHABET, min_size=1, max_size=16).filter(
    lambda s: s not in (".", "..")
)
paths = st.lists(segments, max_size=6).map(lambda parts: "".join("/" + p for p in parts))


@given(trust_domains, paths)
def test_every_id_built_from_the_alphabets_parses_and_round_trips(td: str, path: str) -> None:
    value = f"spiffe://{td}{path}"
    parsed = parse_spiffe_id(value)
    assert parsed == SpiffeId(td, path)
    assert str(parsed) == value
    assert parse_spiffe_id(str(parsed)) == parsed


outside = st.characters(
    blacklist_characters=PATH_ALPHABET + "/",
    blacklist_categories=["Cs"],
)


@given(trust_domains, paths.filter(bool), outside, st.integers(min_value=0), st.booleans())
# a trailing newline slips past a regex anchored with '$'
@example("example.org", "/workload", "\n", 8, False)
@example("example.org", "/workload", "\n", 11, True)
def test_any_char_outside_the_alphabets_is_refused(
    td: str, path: str, bad: str, where: int, in_trust_domain: bool
) -> None:
    if in_trust_domain:
        at = where % (len(td) + 1)
        value = f"spiffe://{td[:at]}{bad}{td[at:]}{path}"
    else:
        at = 1 + where % len(path)  # after the leading '/'
        value = f"spiffe://{td}{path[:at]}{bad}{path[at:]}"
    with pytest.raises(SpiffeIdError):
        parse_spiffe_id(value)


@given(trust_domains, st.sampled_from(string.ascii_uppercase), st.integers(min_value=0))
def test_uppercase_in_the_trust_domain_is_refused(td: str, upper: str, where: int) -> None:
    at = where % (len(td) + 1)
    with pytest.raises(SpiffeIdError) as info:
        parse_spiffe_id(f"spiffe://{td[:at]}{upper}{td[at:]}/w")
    assert info.value.reason == "spiffe_id.uppercase_trust_domain"
