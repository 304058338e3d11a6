"""``zerolane keys``: the trust domain's signing keys."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from zerolane.audit.events import Actor
from zerolane.cli.common import HomeOption, JsonOption, cells, console, opened, print_json
from zerolane.types import Outcome

app = typer.Typer(
    help="Signing keys: list and rotate; the X.509 CA of X.509-SVIDs.", no_args_is_help=True
)


def _when(ts: float | None) -> str:
    return (
        "-"
        if ts is None
        else dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    )


@app.command("rotate")
def rotate(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Make a new key sign from now on. The old public key stays published until
    every token it signed has expired (max_token_lifetime), then it is pruned."""
    with opened(home) as deployment:
        kid = deployment.rotate_keys(Actor("admin", "cli"))
    if as_json:
        print_json({"kid": kid})
        return
    console.print(f"Rotated: new signing key [bold]{kid}[/bold]")


@app.command("list")
def list_keys(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List signing keys: the active one and retired ones still published."""
    with opened(home) as deployment:
        active = deployment.keyring.active_kid()
        infos = deployment.keyring.infos()
    rows = [
        {
            "kid": i.kid,
            "alg": i.alg,
            "active": i.kid == active,
            "created_at": i.created_at,
            "retired_at": i.retired_at,
            "published_until": i.publish_until,
        }
        for i in infos
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("kid", "alg", "state", "created", "published until")
    for r, i in zip(rows, infos, strict=True):
        table.add_row(
            *cells(
                i.kid,
                i.alg,
                "active" if r["active"] else "retired",
                _when(i.created_at),
                _when(i.publish_until),
            )
        )
    console.print(table)


@app.command("ca")
def ca(
    home: HomeOption = None,
    pem: Annotated[bool, typer.Option("--pem", help="Print the CA certificate (PEM).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the X.509 CA that signs X.509-SVIDs, creating it first in a home made
    before it existed. --pem prints its certificate: the client CA for TLS servers
    and proxies that verify X.509-SVIDs (nginx ssl_client_certificate)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from zerolane.tokens.rfc8705 import cert_thumbprint

    with opened(home) as deployment:
        cert, created = deployment.x509_ca.ensure()
        if created:
            deployment.audit.record(
                "x509_ca.created",
                actor=Actor("admin", "cli"),
                subject=f"spiffe://{deployment.config.trust_domain}",
                outcome=Outcome.SUCCESS,
                details={"serial": format(cert.serial_number, "x")},
            )
        path = deployment.x509_ca.cert_path
    if pem:
        typer.echo(cert.public_bytes(Encoding.PEM).decode("ascii"), nl=False)
        return
    info: dict[str, object] = {
        "certificate": str(path),
        "created": created,
        "serial": format(cert.serial_number, "x"),
        "sha256": cert_thumbprint(cert.public_bytes(Encoding.DER)),
        "not_before": cert.not_valid_before_utc.timestamp(),
        "not_after": cert.not_valid_after_utc.timestamp(),
    }
    if as_json:
        print_json(info)
        return
    state = "created" if created else "exists"
    console.print(f"X.509 CA ({state}): {path}", markup=False)
    console.print(f"  serial     {info['serial']}")
    console.print(f"  x5t#S256   {info['sha256']}")
    start, end = cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
    console.print(f"  valid      {_when(start)} .. {_when(end)}")
