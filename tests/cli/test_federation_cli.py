"""``zerolane federation add|list`` against a real home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.identity.x509_factory import FakeSpire
from zerolane.cli.main import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    result = runner.invoke(app, ["init", "--trust-domain", "example.org", "--home", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _add(home: Path, td: str, bundle: Path, *extra: str) -> Result:
    return runner.invoke(app, ["federation", "add", td, str(bundle), *extra, "--home", str(home)])


def _bundle(tmp_path: Path, text: str, name: str = "bundle.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_add_then_list(home: Path, tmp_path: Path) -> None:
    spire = FakeSpire("partner.org")
    bundle = _bundle(tmp_path, spire.bundle_json(3))
    added = _add(home, "partner.org", bundle)
    assert added.exit_code == 0, added.output
    assert "spiffe://partner.org" in added.output
    assert "sequence 3" in added.output

    listed = runner.invoke(app, ["federation", "list", "--json", "--home", str(home)])
    assert listed.exit_code == 0, listed.output
    [entry] = json.loads(listed.output)
    assert (entry["trust_domain"], entry["sequence"]) == ("partner.org", 3)
    assert len(entry["x509_authorities"]) == 1

    table = runner.invoke(app, ["federation", "list", "--home", str(home)])
    assert table.exit_code == 0
    assert "partner.org" in table.output
    assert entry["x509_authorities"][0][:16] in table.output


def test_add_a_pem_bundle_as_json(home: Path, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, FakeSpire("partner.org").bundle_pem(), "bundle.pem")
    result = _add(home, "partner.org", bundle, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sequence"] == 0


def test_then_a_federated_workload_can_be_registered(home: Path, tmp_path: Path) -> None:
    register = ["workload", "register", "spiffe://partner.org/agent", "--home", str(home)]
    before = runner.invoke(app, register)
    assert before.exit_code == 2
    assert "error spiffe_id.foreign_trust_domain: " in before.output
    bundle = _bundle(tmp_path, FakeSpire("partner.org").bundle_json())
    assert _add(home, "partner.org", bundle).exit_code == 0
    assert runner.invoke(app, register).exit_code == 0


@pytest.mark.parametrize(
    ("td", "text", "reason"),
    [
        ("example.org", None, "federation.own_trust_domain"),
        ("partner.org", '{"keys": [{"use": "x509-svid", "d": "x"}]}', "bundle.private_key"),
        ("partner.org", "hello", "bundle.json"),
    ],
)
def test_refusals_name_their_reason(
    home: Path, tmp_path: Path, td: str, text: str | None, reason: str
) -> None:
    bundle = _bundle(tmp_path, text or FakeSpire(td).bundle_json())
    result = _add(home, td, bundle)
    assert result.exit_code == 2
    assert f"error {reason}: " in result.output
    listed = runner.invoke(app, ["federation", "list", "--json", "--home", str(home)])
    assert json.loads(listed.output) == []


def test_a_missing_file_is_a_usage_error(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = _add(home, "partner.org", missing)
    assert result.exit_code == 2
