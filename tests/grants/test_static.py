"""Static secrets: from a private file, or (legacy, logged) from the environment."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from zerolane.errors import InvalidInput
from zerolane.grants import StaticSecret, read_private_file

SECRET = "s3cr3t-value"


def _file(tmp_path: Path, data: bytes, mode: int = 0o600, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_a_private_file_is_injected_in_its_format(tmp_path: Path) -> None:
    path = _file(tmp_path, SECRET.encode() + b"\n")
    source = StaticSecret.from_file(path, header="Authorization", fmt="Bearer {secret}")
    assert source.header_for("tsk_a", 0) == ("Authorization", f"Bearer {SECRET}")
    assert source.header_for("tsk_b", 1e12) == ("Authorization", f"Bearer {SECRET}")
    assert SECRET not in repr(source)
    crlf = _file(tmp_path, SECRET.encode() + b"\r\n", name="crlf")
    assert StaticSecret.from_file(crlf, header="X-Key", fmt="{secret}").header_for("t", 0) == (
        "X-Key",
        SECRET,
    )


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _file(tmp_path, SECRET.encode(), mode)
    with pytest.raises(InvalidInput) as caught:
        StaticSecret.from_file(path, header="Authorization", fmt="{secret}")
    assert caught.value.reason == "grant.file_mode"
    assert "chmod 600" in caught.value.message
    os.chmod(path, 0o400)  # the twin: owner-only is fine
    assert StaticSecret.from_file(path, header="Authorization", fmt="{secret}")


def test_missing_odd_or_oversized_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        read_private_file(tmp_path / "missing")
    folder = tmp_path / "dir"
    folder.mkdir(mode=0o700)
    with pytest.raises(InvalidInput, match="not a regular file"):
        read_private_file(folder)
    with pytest.raises(InvalidInput, match="64 KiB"):
        read_private_file(_file(tmp_path, b"x" * (65 * 1024), name="big"))


@pytest.mark.parametrize(
    "value", [b"", b"line\nbreak", b"tab\there", b" padded", b"caf\xc3\xa9", b"bell\x07"]
)
def test_values_that_cannot_be_a_header_are_refused(tmp_path: Path, value: bytes) -> None:
    path = _file(tmp_path, value)
    with pytest.raises(InvalidInput) as caught:
        StaticSecret.from_file(path, header="X-Key", fmt="{secret}")
    assert caught.value.reason == "grant.value"


def test_the_environment_is_legacy_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TOOL_TOKEN", SECRET)
    with caplog.at_level(logging.WARNING, logger="zerolane.grants"):
        source = StaticSecret.from_env("TOOL_TOKEN", header="X-Key", fmt="Token {secret}")
    assert source.header_for("t", 0) == ("X-Key", f"Token {SECRET}")
    legacy = [r for r in caplog.records if "legacy" in r.getMessage()]
    assert len(legacy) == 1
    assert "TOOL_TOKEN" in legacy[0].getMessage()
    assert SECRET not in caplog.text
    monkeypatch.delenv("TOOL_TOKEN")
    with pytest.raises(InvalidInput) as caught:
        StaticSecret.from_env("TOOL_TOKEN", header="X-Key", fmt="{secret}")
    assert caught.value.reason == "grant.env"
