"""The laptop person's password: scrypt in a 0600 file; anything wrong refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zerolane.errors import InvalidInput
from zerolane.fsutil import write_private
from zerolane.server.oauth_password import LocalUser, hash_password

PASSWORD = "correct horse battery"


@pytest.fixture
def user(tmp_path: Path) -> LocalUser:
    write_private(tmp_path / "pw", hash_password(PASSWORD).encode())
    return LocalUser("alice", tmp_path / "pw")


def test_the_right_name_and_password_only(user: LocalUser) -> None:
    assert user.check("alice", PASSWORD)
    assert not user.check("alice", PASSWORD + "x")
    assert not user.check("bob", PASSWORD)
    assert not user.check("", "")


def test_the_file_holds_no_password(tmp_path: Path) -> None:
    line = hash_password(PASSWORD)
    assert PASSWORD not in line
    assert line.startswith("scrypt$15$8$1$")
    assert hash_password(PASSWORD) != line  # salted


@pytest.mark.parametrize("password", ["short", "x" * 1025])
def test_password_bounds(password: str) -> None:
    with pytest.raises(InvalidInput):
        hash_password(password)


def test_a_file_others_can_read_refuses(user: LocalUser, tmp_path: Path) -> None:
    os.chmod(tmp_path / "pw", 0o644)
    assert not user.check("alice", PASSWORD)
    os.chmod(tmp_path / "pw", 0o600)
    assert user.check("alice", PASSWORD)


@pytest.mark.parametrize(
    "content",
    [b"", b"plain-password", b"scrypt$1$8$1$AAAA$AAAA", b"scrypt$15$8$1$!!$!!", b"\xff\xfe"],
)
def test_a_malformed_or_missing_file_refuses(tmp_path: Path, content: bytes) -> None:
    write_private(tmp_path / "pw", content)
    assert not LocalUser("alice", tmp_path / "pw").check("alice", "plain-password")
    assert not LocalUser("alice", tmp_path / "missing").check("alice", "plain-password")
