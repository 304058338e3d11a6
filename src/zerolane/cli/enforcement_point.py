"""``zerolane enforcement-point``: who may ask ``POST /v1/decide``, and about what."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

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
    opened,
    print_json,
    print_table,
    printable,
)

if TYPE_CHECKING:
    from zerolane.store.records import EnforcementPoint

app = typer.Typer(
    help="Register the enforcement points that may ask for decisions (POST /v1/decide).",
    no_args_is_help=True,
)
CLI_ADMIN = Actor("admin", "cli")

NameArg = Annotated[
    str, typer.Argument(help="A short name, e.g. edge-nginx (lowercase)", show_default=False)
]


def _as_json(point: EnforcementPoint) -> dict[str, object]:
    return {"name": point.name, "urls": list(point.urls), "created_at": point.created_at}


@app.command("add")
def add(
    name: NameArg,
    url: Annotated[
        list[str],
        typer.Option(
            "--url",
            "-u",
            help="A public URL (prefix) it serves; requests it asks about must be under one "
            "(repeat). The in-process guard's calls are https://inproc.invalid/...",
            show_default=False,
        ),
    ],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an enforcement point and print its credential, once (stored only hashed).

    Give the credential to the enforcement point only (as Authorization: Bearer on
    POST /v1/decide); never to an agent.
    """
    with opened(home) as deployment:
        credential, point = deployment.enforcement_points.add(name, url, CLI_ADMIN)
    if as_json:
        print_json({**_as_json(point), "credential": credential})
    else:
        typer.echo(credential)


@app.command("list")
def list_points(
    home: HomeOption = None, as_json: JsonOption = False, wide: WideOption = False
) -> None:
    """List the registered enforcement points and the URLs each may ask about."""
    with opened(home) as deployment:
        points = deployment.enforcement_points.list()
    if as_json:
        print_json([_as_json(p) for p in points])
        return
    table = Table("name", "URLs")
    for point in points:
        table.add_row(*cells(point.name, " ".join(point.urls)))
    print_table(table, empty="no enforcement points", wide=wide)


@app.command("remove")
def remove(name: NameArg, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Remove an enforcement point: its credential is refused from the next request on."""
    with opened(home) as deployment:
        removed = deployment.enforcement_points.remove(name, CLI_ADMIN)
    if as_json:
        print_json(_as_json(removed))
    else:
        console.print(f"Removed [bold]{escape(printable(name))}[/bold]")
