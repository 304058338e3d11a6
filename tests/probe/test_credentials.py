"""The probe's secret files: a regular file of bounded size is read; a FIFO, a device
or a huge file is refused at once (a scheduled probe would hang on a FIFO, never end
reading a device)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zerolane.cli.probe import credential_source
from zerolane.errors import InvalidInput
from zerolane.probe.credentials import MAX_SECRET_FILE, IssuerRefused, read_secret_file
from zerolane.probe.oauth import TokenExchange
from zerolane.settings.probe import ProbeFile, StaticFile, TargetFile


def test_a_regular_secret_file_is_read_stripped(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("s3cr3t\n")
    assert read_secret_file(path) == "s3cr3t"
    path.write_bytes(b"x" * MAX_SECRET_FILE)
    assert len(read_secret_file(path)) == MAX_SECRET_FILE


def test_a_fifo_a_device_or_a_huge_file_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes it: reading it would block for ever
    with pytest.raises(OSError, match="not a regular file"):
        read_secret_file(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        read_secret_file(Path("/dev/zero"))
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * (MAX_SECRET_FILE + 1))
    with pytest.raises(OSError, match="larger than 64 KiB"):
        read_secret_file(huge)
    with pytest.raises(UnicodeDecodeError):
        read_secret_file(_written(tmp_path / "binary", b"\xff\xfe"))


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_the_probe_file_secret_and_the_subject_token_file_refuse_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "token")
    probe = ProbeFile(StaticFile("static", token_file="token"), TargetFile("GET /x"))
    with (
        pytest.raises(InvalidInput, match="cannot read token from") as refused,
        credential_source(probe, tmp_path, None, None, None),
    ):
        pass
    assert refused.value.reason == "probe.secret"
    exchange = TokenExchange("https://as.example/token", subject_token_file=tmp_path / "token")
    try:
        with pytest.raises(IssuerRefused, match="subject token file cannot be read"):
            exchange.subject()
        (tmp_path / "real").write_text("subject-token\n")
        twin = TokenExchange("https://as.example/token", subject_token_file=tmp_path / "real")
        assert twin.subject() == "subject-token"
        twin.close()
    finally:
        exchange.close()
