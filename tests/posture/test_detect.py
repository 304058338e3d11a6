"""The detect-secrets adapter: whole tokens, detect-secrets' heuristic filters, a PEM
header without a key body is no key; and the walk's notes for a folder it cannot list."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector

from tests.posture.planted import github_token, pem_key, rand
from zerolane.posture import walk
from zerolane.posture.detect import HARDENED, Detector, _kept, whole
from zerolane.posture.findings import Note


def _hits(text: str) -> list[tuple[int, str, str]]:
    return [
        (h.line, h.secret_type, h.value) for h in Detector().hits(text, lambda: text.split("\n"))
    ]


def test_a_plugin_group_is_widened_to_the_whole_token() -> None:
    token = github_token()
    assert whole(f'x = "{token}"', "ghp") == token
    assert whole("abc", "zzz") == "zzz"
    assert _hits(f'x = "{token}"\n') == [(1, "GitHub Token", token)]


def test_a_pem_header_alone_is_no_key_and_a_key_is() -> None:
    assert _hits('PATTERN = "-----BEGIN PRIVATE KEY-----"\n') == []
    key = pem_key()
    assert [(n, kind) for n, kind, _ in _hits("x\n" + key)] == [(2, "Private Key")]


def test_sequential_and_placeholder_values_are_filtered() -> None:
    assert not _kept("ABCDEFGHIJKLMNOPQRSTUVWXYZ")  # sequential
    assert not _kept("3e4f5a6b-1111-2222-3333-444455556666")  # a UUID
    assert _kept("Zq3xk9Lm2Pw8Rt5Yv")
    assert _hits("AKIAIOSFODNN7EXAMPLE\n") == []  # AWS's documented example
    assert _hits("https://user:secret@host.internal\n") == []  # a placeholder password


def test_a_folder_that_cannot_be_listed_is_a_note(tmp_path: Path) -> None:
    notes: list[Note] = []
    assert list(walk.walk(tmp_path / "gone", notes)) == []
    assert [(n.where, n.reason.split(":")[0]) for n in notes] == [(".", "cannot list")]


def _b64(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _jwt() -> str:
    return f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': rand(12)})}.{rand(43)}"


def _openai() -> str:
    return f"sk-proj-{rand(20)}T3BlbkFJ{rand(20)}"


def _npm() -> str:
    return f"//registry.npmjs.org/:_authToken=npm_{rand(36)}"


@pytest.mark.parametrize(
    ("plugin", "line"),
    [
        pytest.param(JwtTokenDetector, lambda: f"Authorization: Bearer {_jwt()}", id="jwt"),
        pytest.param(JwtTokenDetector, lambda: f"token={_jwt()}", id="jwt-after-equals"),
        pytest.param(OpenAIDetector, lambda: f"OPENAI_API_KEY={_openai()}", id="openai"),
        pytest.param(OpenAIDetector, lambda: f'key = "{_openai()}"', id="openai-quoted"),
        pytest.param(NpmDetector, _npm, id="npm"),
        pytest.param(
            NpmDetector,
            lambda: f"//npm.pkg.github.com/:_authToken= {uuid.uuid4()}",
            id="npm-hex",
        ),
    ],
)
def test_a_hardened_pattern_finds_what_detect_secrets_finds(
    plugin: type[RegexBasedDetector], line: Callable[[], str]
) -> None:
    text = line()
    (hardened,) = [p for p in Detector().plugins if isinstance(p, plugin)]
    assert [HARDENED[r.pattern] for r in plugin().denylist] == list(hardened.denylist)
    expected = list(plugin().analyze_string(text))
    assert expected  # the line is a real secret of its kind
    assert list(hardened.analyze_string(text)) == expected


@pytest.mark.parametrize(
    ("crafted", "secret"),
    [
        # each of these took detect-secrets' own pattern about a minute (the whole line
        # from every start, back again): now linear. The secret after the crafted run
        # is still found
        pytest.param("//a" * 33_000, _npm, id="npm-starts"),
        pytest.param("/" * 100_000, _npm, id="npm-slashes"),
        pytest.param("sk-" * 33_000, _openai, id="openai"),
        pytest.param("eyJ" * 33_000, _jwt, id="jwt"),
        pytest.param("=eyJ" * 25_000, _jwt, id="jwt-equals"),
    ],
)
def test_a_crafted_long_line_is_read_once_and_its_secret_still_found(
    crafted: str, secret: Callable[[], str]
) -> None:
    value = secret()
    assert _hits(crafted + "\n") == []
    found = [v for _, _, v in _hits(f"{crafted} {value}\n")]
    assert any(value in v or v in value for v in found), found


def test_a_placeholder_first_on_a_line_does_not_hide_the_token_after_it() -> None:
    # the GitHub plugin yields 'ghp' per token: each is widened to its own token, not
    # every one to the line's first (a placeholder, dropped, hid the real one)
    token, other = github_token(), github_token()
    placeholder = "ghp_" + "x" * 36
    assert _hits(f"{placeholder} {token}\n") == [(1, "GitHub Token", token)]
    assert _hits(f"{token} {other} {token}\n") == [
        (1, "GitHub Token", token),
        (1, "GitHub Token", other),
        (1, "GitHub Token", token),  # merged later: one finding per secret and line
    ]


def test_many_pem_headers_are_each_checked_near_their_line() -> None:
    key = pem_key()
    text = 'PATTERN = "-----BEGIN PRIVATE KEY-----"\n' * 3000 + key
    assert [(n, kind) for n, kind, _ in _hits(text)] == [(3001, "Private Key")]
