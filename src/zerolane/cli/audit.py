"""``zerolane audit``: read and verify the hash-chained audit log."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from zerolane.cli.common import HomeOption, JsonOption, console, opened, print_json, printable

if TYPE_CHECKING:
    from zerolane.store.records import AuditRecord

app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)
#: the most events ``tail -n`` prints (SQLite integers are 64-bit: bounded at parse time)
MAX_LINES = 1_000_000
_COLOURS = {"success": "green", "denied": "red", "failure": "yellow"}


def _shown(value: object) -> str:
    """A stored value in a rich line: printable, and never read as markup."""
    return escape(printable(str(value)))


def _line(record: AuditRecord, as_json: bool) -> None:
    from zerolane.audit.log import event_json

    event = event_json(record)
    if as_json:
        typer.echo(json.dumps(event, sort_keys=True))
        return
    colour = _COLOURS.get(record.outcome, "white")
    actor = event.get("actor")
    actor_id = actor.get("id") if isinstance(actor, dict) else "?"
    console.print(
        f"{record.seq:>6} {record.time} [bold]{_shown(f'{record.kind:<22}')}[/bold] "
        f"[{colour}]{_shown(f'{record.outcome:<7}')}[/{colour}] {_shown(event.get('reason'))} "
        f"subject={_shown(event.get('subject'))} actor={_shown(actor_id)}",
        highlight=False,
    )


@app.command("tail")
def tail(
    home: HomeOption = None,
    lines: Annotated[
        int, typer.Option("-n", "--lines", min=1, max=MAX_LINES, help="How many events")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Print the newest events (one JSON object per line with --json)."""
    with opened(home) as deployment:
        records = deployment.audit.tail(lines)
        for record in records:
            _line(record, as_json)
        after = records[-1].seq if records else 0
        while follow:
            batch = deployment.stores.read_events(after, 1000)
            for record in batch:
                _line(record, as_json)
                after = record.seq
            if not batch:
                time.sleep(0.5)


@app.command("verify")
def verify(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Check the hash chain; exit 1 naming the first broken link."""
    with opened(home) as deployment:
        count, broken = deployment.audit.verify()
    if as_json:
        where = None
        if broken is not None:
            where = {"seq": broken.seq, "event_id": broken.event_id, "problem": broken.problem}
        print_json({"intact": broken is None, "verified": count, "broken": where})
        raise typer.Exit(0 if broken is None else 1)
    if broken is not None:
        typer.echo(
            f"BROKEN at event {broken.seq} ({broken.event_id}): {broken.problem}; "
            f"{count} event(s) before it verified",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"OK: {count} event(s), chain intact")
