"""Path, query, framing and header checks, one rule at a time (with legitimate twins)."""

from __future__ import annotations

import re

import pytest

from zerolane.errors import InvalidInput
from zerolane.gateway.normalize import (
    check_framing,
    check_path,
    check_query,
    request_headers,
    response_headers,
)

REFUSED = [
    ("", "must be a path"),
    ("finance/x", "must be a path"),
    ("*", "must be a path"),
    ("/a/../b", "'..' segment"),
    ("/a/..", "'..' segment"),
    ("/a/./b", "'..' segment"),
    ("/a/%2e%2e/b", "encoded dot"),
    ("/a/%2E./b", "encoded dot"),
    ("/a/.%2E/b", "encoded dot"),
    ("/a%2fb", "encoded slash"),
    ("/a%2Fb", "encoded slash"),
    ("/a%5cb", "encoded backslash"),
    ("/a\\b", "backslash"),
    ("//a", "empty segment"),
    ("/a//b", "empty segment"),
    ("/a;x=1", "';' path parameter"),
    ("/a%3Bx=1", "encoded path parameter"),
    ("/a%00", "NUL or control"),
    ("/a%1F", "NUL or control"),
    ("/a%7F", "NUL or control"),
    ("/a\x00", "NUL or control"),
    ("/a\tb", "NUL or control"),
    ("/a%252e", "double encoding"),
    ("/a%25", "double encoding"),
    ("/a%41", "non-canonical"),
    ("/a%7e", "non-canonical"),
    ("/a%c3%a9", "non-canonical"),
    ("/a%C3%A9", "non-ASCII"),
    ("/a%", "two hex digits"),
    ("/a%G1", "two hex digits"),
    ("/a#b", "character '#'"),
    ("/a b", "character ' '"),
    ("/a?b", "character '?'"),
    ("/a<b>", "character '<'"),
    ("/" + "a" * 9000, "longer than"),
]


@pytest.mark.parametrize(("path", "message"), REFUSED)
def test_unsafe_paths_are_refused(path: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as caught:
        check_path(path.encode("latin-1"))
    assert caught.value.reason == "request.path"


def test_raw_non_ascii_bytes_are_refused_even_when_allowed() -> None:
    with pytest.raises(InvalidInput, match="raw non-ASCII"):
        check_path("/café".encode(), allow_non_ascii=True)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/a",
        "/a/",
        "/finance/reports/q3",
        "/a-b_c~d.e",
        "/a/b:c@d!$&'()*+,=",
        "/a%20b",
        "/a%3Fb%23c",
        "/.well-known/x",
        "/a/...",
        "/a/.b",
    ],
)
def test_safe_paths_pass_unchanged(path: str) -> None:
    assert check_path(path.encode()) == path


def test_non_ascii_is_allowed_only_by_configuration_and_only_clean() -> None:
    assert check_path(b"/caf%C3%A9", allow_non_ascii=True) == "/caf%C3%A9"
    refusals = {
        b"/%C0%AE%C0%AE": "overlong",  # overlong '..'
        b"/%C3": "invalid",
        b"/%ED%A0%80": "invalid",  # a UTF-16 surrogate
        b"/%C2%85": "control",  # NEL, a C1 control
        b"/a%E2%80%8Bb": "formatting",  # zero-width space
        b"/%EF%BC%8F": "NFKC",  # fullwidth solidus, NFKC '/'
        b"/%EF%BC%8E%EF%BC%8E": "NFKC",  # fullwidth '..'
    }
    for path, message in refusals.items():
        with pytest.raises(InvalidInput, match=message):
            check_path(path, allow_non_ascii=True)


def test_queries_are_visible_ascii() -> None:
    assert check_query(b"a=1&b=%2F..%2F") == "a=1&b=%2F..%2F"
    assert check_query(b"") == ""
    for query in (b"a=\x00", b"a=\xc3\xa9", b"a b", b"a#b", b"a" * 9000):
        with pytest.raises(InvalidInput, match="query"):
            check_query(query)


def test_framing() -> None:
    assert check_framing([]) is None
    assert check_framing([(b"content-length", b"12")]) == 12
    assert check_framing([(b"content-length", b"12"), (b"content-length", b"12")]) == 12
    assert check_framing([(b"content-length", b"12, 12")]) == 12
    assert check_framing([(b"transfer-encoding", b"chunked")]) is None
    ambiguous = [
        [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")],
        [(b"transfer-encoding", b"chunked"), (b"content-length", b"5")],
        [(b"content-length", b"5"), (b"content-length", b"6")],
        [(b"content-length", b"5, 6")],
        [(b"content-length", b"-5")],
        [(b"content-length", b"0x5")],
        [(b"content-length", b"9" * 30)],
    ]
    for headers in ambiguous:
        with pytest.raises(InvalidInput) as caught:
            check_framing(headers)
        assert caught.value.reason == "request.framing"


def test_request_headers_drop_credentials_overrides_and_hop_by_hop() -> None:
    sent = [
        (b"host", b"gw"),
        (b"authorization", b"DPoP t"),
        (b"dpop", b"p"),
        (b"connection", b"keep-alive, x-drop-me"),
        (b"x-drop-me", b"1"),
        (b"keep-alive", b"timeout=5"),
        (b"transfer-encoding", b"chunked"),
        (b"content-length", b"5"),
        (b"expect", b"100-continue"),
        (b"x-http-method-override", b"DELETE"),
        (b"x-original-url", b"/admin"),
        (b"x-rewrite-url", b"/admin"),
        (b"x-forwarded-host", b"evil"),
        (b"x-forwarded-anything", b"evil"),
        (b"forwarded", b"host=evil"),
        (b"x-zerolane-task", b"forged"),
        (b"x-api-key", b"forged"),
        (b"accept", b"application/json"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
    ]
    kept = request_headers(sent, drop=frozenset({b"x-api-key"}))
    assert kept == [("accept", "application/json"), ("cookie", "a=1"), ("cookie", "b=2")]


def test_response_headers_drop_hop_by_hop_and_keep_repeats() -> None:
    received = [
        (b"Content-Type", b"text/plain"),
        (b"Connection", b"close, X-Hop"),
        (b"X-Hop", b"1"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]
    assert response_headers(received) == [
        (b"content-type", b"text/plain"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


def test_a_long_plain_path_is_checked_to_its_last_byte() -> None:
    plain = "/" + "/".join(["abcXYZ019-._~!$&'()*+,=:@"] * 40)
    assert check_path(plain.encode()) == plain
    for tail, message in [
        ("%2e", "encoded dot"),
        ("%", "'%' not followed"),
        ("\\", "backslash"),
        (";x", "path parameter"),
        ("\x00", "control"),
        ("/..", "'..' segment"),
        ("//x", "empty segment"),
    ]:
        with pytest.raises(InvalidInput, match=re.escape(message)):
            check_path((plain + tail).encode())


def test_each_upstream_drops_its_own_credential_header() -> None:
    sent = [
        (b"connection", b"x-listed"),
        (b"x-listed", b"1"),
        (b"x-api-key", b"forged"),
        (b"x-token", b"forged"),
        (b"accept", b"*/*"),
    ]
    for _ in range(2):
        assert request_headers(sent, drop=frozenset({b"x-api-key"})) == [
            ("x-token", "forged"),
            ("accept", "*/*"),
        ]
        assert request_headers(sent, drop=frozenset({b"x-token"})) == [
            ("x-api-key", "forged"),
            ("accept", "*/*"),
        ]
        assert request_headers(sent[2:]) == [
            ("x-api-key", "forged"),
            ("x-token", "forged"),
            ("accept", "*/*"),
        ]
