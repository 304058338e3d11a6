"""``zerolane keys ca``: the X.509 CA of a home, created in a home made before it existed."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from cryptography import x509
from typer.testing import CliRunner

from zerolane.cli import keys
from zerolane.server.deployment import Deployment, init_home

runner = CliRunner()
app = typer.Typer()
app.add_typer(keys.app, name="keys")


def test_keys_ca_shows_creates_and_prints(tmp_path: Path) -> None:
    home = tmp_path / "home"
    deployment, _ = init_home(home, "example.org")
    made_at_init = deployment.x509_ca.certificate()
    deployment.close()
    shown = runner.invoke(app, ["keys", "ca", "--home", str(home), "--json"])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.output)
    assert (info["created"], info["serial"]) == (False, format(made_at_init.serial_number, "x"))
    for name in ("x509-ca.key", "x509-ca.pem"):  # as a home made before the CA existed
        (home / "keys" / name).unlink()
    created = runner.invoke(app, ["keys", "ca", "--home", str(home), "--json"])
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["created"] is True
    printed = runner.invoke(app, ["keys", "ca", "--home", str(home), "--pem"])
    assert printed.exit_code == 0
    assert "PRIVATE" not in printed.output
    cert = x509.load_pem_x509_certificate(printed.output.encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    reopened = Deployment.open(home)
    kinds = [json.loads(r.body)["kind"] for r in reopened.stores.read_events(0, 1000)]
    assert kinds.count("x509_ca.created") == 1
    reopened.close()
