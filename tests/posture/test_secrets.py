"""Posture's secret scan over trees: each planted secret found once, at its file and
line, under the rule of its place, and nothing else; a clean tree (this repository's
own code and docs, CI and credential files of references and placeholders) gives no
finding; what cannot be read is a note."""

from __future__ import annotations

import codecs
import errno
import os
from pathlib import Path

import pytest

from tests.posture.planted import clean_tree, github_token, plant_tree, rand
from zerolane.posture import walk
from zerolane.posture.detect import Detector
from zerolane.posture.findings import MASK, Note, Severity, mask
from zerolane.posture.secret_rules import Hit
from zerolane.posture.secrets import MAX_HITS, merged, scan_files, scan_text


def test_each_planted_secret_is_found_once_at_its_file_and_line(tmp_path: Path) -> None:
    tree = plant_tree(tmp_path / "repo")
    clean_tree(tmp_path / "repo" / "clean")  # clean neighbours add nothing
    result = scan_files([tree.root])
    found = {(f.path, f.line, f.rule): f for f in result.findings}
    assert len(found) == len(result.findings)  # once each
    assert set(found) == set(tree.expected)
    for key, value in tree.expected.items():
        # a provider's token shows its start (its kind); a value known by its key alone
        # (a password) shows nothing of itself
        shaped = found[key].details["detector"] != "zerolane"
        assert found[key].masked == mask(value, shaped=shaped)
        assert shaped or found[key].masked == MASK
        assert value not in repr(found[key])
    assert result.notes == []


def test_the_same_secret_seen_by_both_is_one_finding_with_the_exact_type(
    tmp_path: Path,
) -> None:
    token = github_token()
    workflow = tmp_path / ".github" / "workflows" / "ci.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(f"env:\n  GH_TOKEN: {token}\n")
    (finding,) = scan_files([tmp_path]).findings
    assert (finding.path, finding.line, finding.rule) == (
        ".github/workflows/ci.yml",
        2,
        "secret.github_actions",
    )
    assert finding.secret_type == "GitHub Token"
    assert finding.details == {"detector": "both", "key": "GH_TOKEN"}
    assert finding.severity is Severity.HIGH
    assert finding.nhi == ("NHI2:2025", "NHI6:2025", "NHI7:2025")


def test_two_secrets_on_one_line_are_two_findings() -> None:
    hits = [
        Hit(3, "a" * 20, "Password", "X"),
        Hit(3, "b" * 20, "GitHub Token", None, "detect-secrets"),
        Hit(3, "b" * 20, "JSON Web Token", None, "detect-secrets"),  # same value: once
    ]
    assert [h.value[0] for h in merged(hits)] == ["a", "b"]


def test_a_clean_tree_gives_no_finding(tmp_path: Path) -> None:
    result = scan_files([clean_tree(tmp_path / "clean")])
    assert result.findings == []
    assert result.files > 50
    assert result.notes == []


def test_the_allowlist_comment_silences_a_line(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(f'TOKEN = "{github_token()}"  # pragma: allowlist secret\n')
    (tmp_path / "b.py").write_text(f'TOKEN = "{github_token()}"\n')  # the twin
    assert [f.path for f in scan_files([tmp_path]).findings] == ["b.py"]


def test_paths_are_shown_as_given_and_a_named_file_is_always_read(tmp_path: Path) -> None:
    skipped = tmp_path / "node_modules" / "pkg"
    skipped.mkdir(parents=True)
    (skipped / "index.js").write_text(f'const t = "{github_token()}";\n')
    assert scan_files([tmp_path]).findings == []  # the walk skips node_modules
    named = scan_files([skipped / "index.js"]).findings
    assert [(f.path, f.line) for f in named] == [(str(skipped / "index.js"), 1)]
    os.chdir(tmp_path)
    (f,) = scan_files([Path("node_modules/pkg/index.js")]).findings
    assert f.path == "node_modules/pkg/index.js"
    (g,) = scan_files([Path("node_modules")]).findings
    assert g.path == "pkg/index.js"  # relative to the folder given
    (h,) = scan_files([Path("node_modules"), Path(".")]).findings
    assert h.path == "node_modules/pkg/index.js"  # several: the folder before it


def test_a_missing_path_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_files([tmp_path, tmp_path / "missing"])


def test_links_binaries_fifos_and_big_files_are_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text(f'T = "{github_token()}"\n')
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.py").symlink_to(outside / "secret.py")
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)
    (root / "blob.bin").write_bytes(b"\0" + github_token().encode())
    (root / "big.py").write_text(f'T = "{github_token()}"\n' + "#" * 200)
    os.mkfifo(root / "pipe")
    monkeypatch.setattr(walk, "MAX_BYTES", 100)
    result = scan_files([root])
    assert result.findings == []
    assert result.files == 0
    notes = {(n.where, n.reason) for n in result.notes}
    assert notes == {
        ("big.py", "larger than 100 bytes: not scanned"),
        ("link.py", "a symbolic link: not followed"),
        ("pipe", "not a regular file"),
    }
    # a link given by name is not followed either
    (note,) = scan_files([root / "link.py"]).notes
    assert note.reason == "a symbolic link: not followed"


def test_an_unreadable_file_and_folder_are_notes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the system refuses them (as it would another user's 0600 file and 0700 folder;
    # CI runs as root, whom permission bits do not stop, so the refusal is the system's)
    (tmp_path / "locked.env").write_text(f"API_TOKEN={rand(20)}\n")
    (tmp_path / "shut").mkdir()
    (tmp_path / "shut" / "inside.env").write_text(f"API_TOKEN={rand(20)}\n")
    real_open, real_scandir = os.open, os.scandir

    def refused(path: object) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    def opening(path: str | os.PathLike[str], flags: int, *args: int) -> int:
        if Path(path).name == "locked.env":
            raise refused(path)
        return real_open(path, flags, *args)

    def listing(path: str | os.PathLike[str] = ".") -> object:
        if Path(path).name == "shut":
            raise refused(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "open", opening)
    monkeypatch.setattr(os, "scandir", listing)
    result = scan_files([tmp_path])
    notes = sorted((n.where, n.reason) for n in result.notes)
    assert notes == [
        ("locked.env", "cannot read: Permission denied"),
        ("shut", "cannot list: Permission denied"),
    ]
    assert result.findings == []


def test_a_file_of_more_secrets_than_max_hits_reports_the_first_and_a_note(
    tmp_path: Path,
) -> None:
    tokens = [github_token() for _ in range(MAX_HITS + 1)]
    (tmp_path / "many.txt").write_text("".join(f"{t}\n" for t in tokens))
    (tmp_path / "enough.txt").write_text("".join(f"{t}\n" for t in tokens[:MAX_HITS]))
    result = scan_files([tmp_path])
    found = [(f.path, f.line) for f in result.findings]
    assert found[:MAX_HITS] == [("enough.txt", n) for n in range(1, MAX_HITS + 1)]
    assert found[MAX_HITS:] == [("many.txt", n) for n in range(1, MAX_HITS + 1)]
    assert result.notes == [
        Note("many.txt", f"more than {MAX_HITS} secrets: the first ones reported")
    ]


def test_thousands_of_secrets_on_one_line_are_merged_quickly_and_capped() -> None:
    # one line of 20,000 tokens: every hit was compared with every other, and each
    # finding read the whole line again for its allowlist comment
    tokens = [github_token() for _ in range(20_000)]
    notes: list[Note] = []
    found = scan_text(Detector(), "one.txt", " ".join(tokens) + "\n", notes)
    assert [f.masked for f in found] == [mask(t) for t in tokens[:MAX_HITS]]
    assert [n.where for n in notes] == ["one.txt"]


def test_a_byte_order_mark_hides_no_secret(tmp_path: Path) -> None:
    # UTF-8 with a BOM: the first line's key began with U+FEFF and was no key; UTF-16
    # (PowerShell's '>'): NUL bytes, skipped as binary
    secret = rand(24)
    text = f"SERVICE_TOKEN={secret}\n"
    (tmp_path / "bom.env").write_bytes(codecs.BOM_UTF8 + text.encode())
    (tmp_path / "utf16.env").write_text(text, encoding="utf-16")  # with its BOM
    (tmp_path / "plain.env").write_text(text)  # the twin
    script = tmp_path / "deploy"
    script.write_bytes(codecs.BOM_UTF8 + f"#!/bin/sh\nexport API_TOKEN={secret}\n".encode())
    found = {(f.path, f.line, f.rule, f.masked) for f in scan_files([tmp_path]).findings}
    assert found == {
        ("bom.env", 1, "secret.dotenv", MASK),
        ("utf16.env", 1, "secret.dotenv", MASK),
        ("plain.env", 1, "secret.dotenv", MASK),
        ("deploy", 2, "secret.shell", MASK),
    }
