"""``zerolane report``: reports read from the audit log (``report shadow``)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from zerolane.cli.common import (
    HomeOption,
    JsonOption,
    WideOption,
    cells,
    opened_stores,
    parse_duration,
    print_json,
    print_table,
    shortened,
)

app = typer.Typer(help="Reports read from the audit log.", no_args_is_help=True)


@app.command("shadow")
def shadow(
    home: HomeOption = None,
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help="How far back to read: a duration like 90m, 24h or 7d (at most 366d).",
        ),
    ] = "24h",
    wide: WideOption = False,
    as_json: JsonOption = False,
) -> None:
    """What shadow mode let through that enforcement would have denied, by reason.

    A policy set (policy_mode), a playbook (mode: shadow) or a gateway route (mode =
    "shadow") in shadow mode allows what its policies deny and audits it as a
    would-deny. This lists those requests grouped by the reason they would have been
    denied for: how many, of which playbooks, through which modes, a few examples and
    when first and last seen. Fix the playbooks or policies until it is empty, then
    enforce.
    """
    from zerolane.audit.shadow import shadow_report

    seconds = parse_duration(since)
    now = time.time()
    with opened_stores(home) as stores:
        found = shadow_report(stores, now - seconds, now)
    if as_json:
        print_json(found.as_json())
        return
    table = Table(title=f"would have been denied, since {found.since}")
    for column in ("reason", "count", "tasks", "playbooks", "modes", "example", "last seen"):
        table.add_column(column, justify="right" if column in ("count", "tasks") else "left")
    for group in found.groups:
        example = group.examples[0] if group.examples else None
        asked = f"{example.action} {example.resource} @{example.destination}" if example else ""
        table.add_row(
            *cells(
                group.reason,
                group.count,
                len(group.tasks),
                ", ".join(sorted(group.playbooks)),
                shortened(", ".join(sorted(group.modes)), wide),
                shortened(asked, wide),
                group.last_seen,
            )
        )
    print_table(table, empty=f"no shadow allows since {found.since}", wide=wide)
