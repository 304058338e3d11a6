"""``zerolane workload`` and ``zerolane attest``: the workload registry."""

from __future__ import annotations

import dataclasses
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
    parse_duration,
    print_json,
    print_table,
    printable,
)

if TYPE_CHECKING:
    from zerolane.store.records import Workload

app = typer.Typer(help="Register, list, show and disable workloads.", no_args_is_help=True)
attest_app = typer.Typer(help="Credentials a workload uses to attest.", no_args_is_help=True)
CLI_ADMIN = Actor("admin", "cli")

SpiffeIdArg = Annotated[str, typer.Argument(help="The workload's SPIFFE ID", show_default=False)]


def _as_json(w: Workload) -> dict[str, object]:
    data = dataclasses.asdict(w)
    data["selectors"] = list(w.selectors)
    data["status"] = w.status.value
    return data


@app.command("register")
def register(
    spiffe_id: SpiffeIdArg,
    selector: Annotated[
        list[str] | None,
        typer.Option("--selector", "-s", help="type:value a JWT attestation must prove (repeat)"),
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Team or person accountable for it")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a workload under this trust domain or a federated one."""
    with opened(home) as deployment:
        workload = deployment.registry.register(
            spiffe_id, selectors=selector or [], owner=owner, actor=CLI_ADMIN
        )
    if as_json:
        print_json(_as_json(workload))
    else:
        console.print(f"Registered [bold]{escape(printable(workload.spiffe_id))}[/bold]")


@app.command("list")
def list_workloads(
    home: HomeOption = None, as_json: JsonOption = False, wide: WideOption = False
) -> None:
    """List registered workloads."""
    with opened(home) as deployment:
        workloads = deployment.registry.list()
    if as_json:
        print_json([_as_json(w) for w in workloads])
        return
    table = Table("SPIFFE ID", "status", "selectors", "owner")
    for w in workloads:
        table.add_row(
            *cells(w.spiffe_id, w.status.value, " ".join(w.selectors) or "-", w.owner or "-")
        )
    print_table(table, empty="no workloads", wide=wide)


@app.command("show")
def show(spiffe_id: SpiffeIdArg, home: HomeOption = None) -> None:
    """Show one workload (JSON)."""
    with opened(home) as deployment:
        print_json(_as_json(deployment.registry.get(spiffe_id)))


@app.command("disable")
def disable(spiffe_id: SpiffeIdArg, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Disable a workload: it can no longer attest, and its live tasks are revoked."""
    with opened(home) as deployment:
        deployment.disable_workload(spiffe_id, CLI_ADMIN)
        workload = deployment.registry.get(spiffe_id)
    if as_json:
        print_json(_as_json(workload))
        return
    console.print(f"Disabled [bold]{escape(printable(spiffe_id))}[/bold]")


@attest_app.command("join-token")
def join_token(
    spiffe_id: SpiffeIdArg,
    ttl: Annotated[
        str, typer.Option(help="How long the token stays usable (90s, 10m, 2h)")
    ] = "10m",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a one-time join token for a registered workload (stored only hashed)."""
    seconds = parse_duration(ttl)
    with opened(home) as deployment:
        issued = deployment.join_tokens.create(spiffe_id, ttl=seconds, actor=CLI_ADMIN)
    if as_json:
        print_json({"spiffe_id": spiffe_id, "token": issued.token, "ttl": seconds})
    else:
        typer.echo(issued.token)
