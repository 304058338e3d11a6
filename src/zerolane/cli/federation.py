"""``zerolane federation``: trust the bundle of another SPIFFE trust domain (SPIRE)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from zerolane.audit.events import Actor
from zerolane.cli.common import (
    HomeOption,
    JsonOption,
    WideOption,
    cells,
    console,
    is_wide,
    opened,
    print_json,
    print_table,
)

app = typer.Typer(help="Import and list federated trust domain bundles.", no_args_is_help=True)
CLI_ADMIN = Actor("admin", "cli")


@app.command("add")
def add(
    trust_domain: Annotated[
        str, typer.Argument(help="The federated trust domain, e.g. partner.org", show_default=False)
    ],
    bundle_file: Annotated[
        Path,
        typer.Argument(
            help="SPIFFE bundle (JWK Set JSON) or PEM CA certificates "
            "(spire-server bundle show -format spiffe|pem)",
            exists=True,
            dir_okay=False,
            readable=True,
            show_default=False,
        ),
    ],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import (or update) a trust domain's bundle; refuses a lower spiffe_sequence."""
    from zerolane.identity.federation import describe

    text = bundle_file.read_bytes()
    with opened(home) as deployment:
        record = deployment.federation.add(trust_domain, text, CLI_ADMIN)
    summary = describe(record)
    if as_json:
        print_json(summary.as_json())
        return
    count = len(summary.x509_authorities)
    console.print(
        f"Federated [bold]spiffe://{escape(record.trust_domain)}[/bold]: "
        f"{count} X.509 authorit{'y' if count == 1 else 'ies'}, sequence {record.sequence}"
    )


@app.command("list")
def list_bundles(
    home: HomeOption = None, as_json: JsonOption = False, wide: WideOption = False
) -> None:
    """List federated trust domains and their bundles."""
    from zerolane.identity.federation import describe

    with opened(home) as deployment:
        summaries = [describe(b) for b in deployment.federation.list()]
    if as_json:
        print_json([s.as_json() for s in summaries])
        return
    table = Table("trust domain", "sequence", "X.509 authorities (SHA-256)", "updated")
    for s in summaries:
        updated = dt.datetime.fromtimestamp(s.updated_at, tz=dt.UTC)
        table.add_row(
            *cells(
                s.trust_domain,
                s.sequence,
                " ".join(f if is_wide(wide) else f[:16] for f in s.x509_authorities) or "-",
                updated.isoformat(timespec="seconds"),
            )
        )
    print_table(table, empty="no federated trust domains", wide=wide)
