"""``zerolane alerts``: the webhook alerts of ``[[response.rules]]`` still queued for
another attempt, and those that failed every attempt (docs/detection.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from zerolane.cli.common import (
    HomeOption,
    JsonOption,
    WideOption,
    cells,
    opened_stores,
    print_json,
    print_table,
)

app = typer.Typer(help="Alerts of automatic responses: queued and failed.", no_args_is_help=True)


def _when(value: object) -> str:
    if not isinstance(value, int | float) or value <= 0:
        return "-"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_alerts(
    failed_only: Annotated[
        bool, typer.Option("--failed", help="Only the alerts that failed every attempt.")
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List queued alerts (with their next attempt) and failed ones (kept: the last
    1000; every failure is also an ``alert.failed`` audit event)."""
    from zerolane.detection.response import stored_alerts

    with opened_stores(home) as stores:
        pending, failed = stored_alerts(stores)
    rows = [("failed", a) for a in failed]
    if not failed_only:
        rows = [("queued", a) for a in pending] + rows
    if as_json:
        print_json([{"status": status, **alert} for status, alert in rows])
        return
    table = Table("ALERT", "STATUS", "RULE", "DETECTION", "ATTEMPTS", "LAST ERROR", "WHEN")
    for status, alert in rows:
        when = alert.get("next_at") if status == "queued" else alert.get("at")
        table.add_row(
            *cells(
                alert.get("id", ""),
                status,
                alert.get("rule", ""),
                alert.get("detection_seq", ""),
                alert.get("attempts", 0),
                alert.get("last_error", "") or "-",
                _when(when),
            )
        )
    print_table(table, empty="no alerts queued or failed", wide=wide)
