"""The detect-secrets adapter: whole tokens, detect-secrets' heuristic filters, a PEM
header without a key body is no key; and the walk's notes for a folder it cannot list."""

from __future__ import annotations

from pathlib import Path

from tests.posture.planted import github_token, pem_key
from zerolane.posture import walk
from zerolane.posture.detect import Detector, _kept, whole
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
