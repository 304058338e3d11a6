"""``zerolane oauth set-password``: writes only the scrypt hash, 0600, where the
config says; refuses without ``[oauth.local_user]`` or with a short password."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import tomli_w
from typer.testing import CliRunner

from zerolane.cli.main import app
from zerolane.fsutil import write_private
from zerolane.server.deployment import init_home
from zerolane.server.oauth_password import LocalUser

runner = CliRunner()


def _home(tmp_path: Path, *, user: bool) -> Path:
    home = tmp_path / "home"
    init_home(home, "example.org")[0].close()
    if user:
        doc = tomllib.loads((home / "zerolane.toml").read_text())
        doc["oauth"] = {"local_user": {"username": "alice", "password_file": "pw"}}
        write_private(home / "zerolane.toml", tomli_w.dumps(doc).encode())
    return home


def test_set_password_writes_the_hash_only(tmp_path: Path) -> None:
    home = _home(tmp_path, user=True)
    result = runner.invoke(
        app, ["oauth", "set-password", "--home", str(home)], input="a long password\n"
    )
    assert result.exit_code == 0, result.output
    path = home / "pw"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "a long password" not in path.read_text()
    assert LocalUser("alice", path).check("alice", "a long password")


def test_refused_without_a_local_user_or_with_a_short_password(tmp_path: Path) -> None:
    bare = _home(tmp_path / "a", user=False)
    result = runner.invoke(app, ["oauth", "set-password", "--home", str(bare)], input="x" * 9)
    assert result.exit_code == 2
    assert "oauth.local_user" in result.stderr
    home = _home(tmp_path / "b", user=True)
    short = runner.invoke(app, ["oauth", "set-password", "--home", str(home)], input="short\n")
    assert short.exit_code == 2
    assert not (home / "pw").exists()
