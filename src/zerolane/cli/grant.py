"""``zerolane grant``: list the leases of downstream credentials, retry failed revocations."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from zerolane.audit.events import Actor
from zerolane.cli.common import (
    HomeOption,
    JsonOption,
    WideOption,
    cells,
    console,
    err_console,
    opened,
    print_json,
    print_table,
    printable,
    shortened,
)

if TYPE_CHECKING:
    from zerolane.grants.leases import SweepResult
    from zerolane.store.records import LeaseRecord

app = typer.Typer(
    help="Leases of downstream credentials (grants): list them, retry failed revocations.",
    no_args_is_help=True,
)
ADMIN = Actor("admin", "cli")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(leases: list[LeaseRecord], wide: bool = False) -> Table:
    table = Table("lease", "task", "broker", "handle", "state", "expires", "attempts", "error")
    for lease in leases:
        table.add_row(
            *cells(
                lease.lease_id,
                lease.task_id,
                lease.broker,
                lease.handle,
                lease.state.value,
                _when(lease.expires_at),
                lease.attempts,
                shortened(lease.last_error or "", wide),
            )
        )
    return table


@app.command("list")
def list_leases(
    home: HomeOption = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only leases whose revocation failed")
    ] = False,
    task: Annotated[str | None, typer.Option("--task", help="Only this task's leases")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List grant leases, newest first (a failed revocation stays listed until it works)."""
    from zerolane.store.records import LeaseState

    with opened(home) as deployment:
        leases = deployment.grants.list(
            task_id=task, state=LeaseState.FAILED if failed else None, limit=limit
        )
    if as_json:
        print_json([lease.as_dict() for lease in leases])
        return
    print_table(_table(leases, wide), empty="no leases", wide=wide)


def _report(result: SweepResult) -> None:
    for lease in result.revoked:
        console.print(
            printable(f"revoked {lease.lease_id} ({lease.broker} {lease.handle})"),
            highlight=False,
            markup=False,
        )
    for lease in result.failed:
        err_console.print(
            printable(
                f"still failing {lease.lease_id} ({lease.broker} {lease.handle}): "
                f"{lease.last_error}"
            ),
            highlight=False,
            markup=False,
        )


@app.command("retry")
def retry(
    home: HomeOption = None,
    lease: Annotated[
        str | None, typer.Option("--lease", help="Only this lease (revoked now, if active)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Retry failed revocations now (ignoring their backoff), and revoke leases whose task
    has ended or expired. Exits 1 while any revocation still fails."""
    from zerolane.grants.leases import SweepResult
    from zerolane.store.records import LeaseState

    with opened(home) as deployment:
        if lease is not None:
            done = deployment.grants.revoke(lease, actor=ADMIN, reason="admin.retry")
            result = SweepResult(
                revoked=(done,) if done.state is LeaseState.REVOKED else (),
                failed=() if done.state is LeaseState.REVOKED else (done,),
            )
        else:
            result = deployment.grants.sweep(force=True)
    if as_json:
        print_json(
            {
                "revoked": [lease.as_dict() for lease in result.revoked],
                "failed": [lease.as_dict() for lease in result.failed],
            }
        )
        raise typer.Exit(1 if result.failed else 0)
    _report(result)
    if not result.revoked and not result.failed:
        console.print("nothing to retry")
    if result.failed:
        raise typer.Exit(1)
