"""``zerolane keys``: the trust domain's signing keys."""

from __future__ import annotations

import datetime as dt

import typer
from rich.table import Table

from zerolane.audit.events import Actor
from zerolane.cli.common import HomeOption, JsonOption, console, opened, print_json

app = typer.Typer(help="Signing keys: list and rotate.", no_args_is_help=True)


def _when(ts: float | None) -> str:
    return (
        "-"
        if ts is None
        else dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    )


@app.command("rotate")
def rotate(home: HomeOption = None) -> None:
    """Make a new key sign from now on. The old public key stays published until
    every token it signed has expired (max_token_lifetime), then it is pruned."""
    with opened(home) as deployment:
        kid = deployment.rotate_keys(Actor("admin", "cli"))
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
            i.kid,
            i.alg,
            "active" if r["active"] else "retired",
            _when(i.created_at),
            _when(i.publish_until),
        )
    console.print(table)
