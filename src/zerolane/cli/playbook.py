"""``zerolane playbook``: apply, list and show playbooks (intent templates), and suggest a
narrower one from what their tasks used."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from zerolane.audit.events import Actor
from zerolane.cli.common import (
    HomeOption,
    JsonOption,
    WideOption,
    cells,
    console,
    err_console,
    fail,
    opened,
    opened_stores,
    parse_duration,
    print_json,
    print_table,
    printable,
    shortened,
)
from zerolane.errors import InvalidInput, ZerolaneError

if TYPE_CHECKING:
    from zerolane.posture.suggest import Suggestion
    from zerolane.store.records import PlaybookRecord
    from zerolane.tasks.playbooks import Playbook

app = typer.Typer(
    help=(
        "Apply, list and show playbooks (the most a task of each kind may do), and "
        "suggest narrower ones from what their tasks used."
    ),
    no_args_is_help=True,
)
CLI_ADMIN = Actor("admin", "cli")


@contextmanager
def _reported() -> Iterator[None]:
    """Turn a refusal into one line, ``error <reason>: <message>``, and its exit code."""
    try:
        yield
    except ZerolaneError as err:
        fail(err)


def _as_json(playbook: Playbook, record: PlaybookRecord) -> dict[str, object]:
    from zerolane.tasks.playbooks import playbook_as_dict

    return {
        "name": record.name,
        "version": record.version,
        "updated_at": record.updated_at,
        "playbook": playbook_as_dict(playbook),
    }


@app.command("apply")
def apply(
    file: Annotated[
        Path,
        typer.Argument(help="Playbook file: .yaml, .yml, .toml or .json", show_default=False),
    ],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a playbook file and store it as the playbook's next version."""
    from zerolane.tasks.playbooks import playbook_from_json

    with _reported(), opened(home) as deployment:
        record = deployment.playbooks.apply_file(file, CLI_ADMIN)
        playbook = playbook_from_json(record.document)
        warnings = deployment.playbook_warnings(playbook)
    if as_json:  # the warnings are in the document
        print_json({**_as_json(playbook, record), "warnings": warnings})
        return
    for warning in warnings:  # applied all the same: likely mistakes, said once each
        err_console.print(f"warning: {printable(warning)}", highlight=False)
    name = escape(printable(record.name))
    console.print(f"Applied playbook [bold]{name}[/bold] version {record.version}")


@app.command("list")
def list_playbooks(
    home: HomeOption = None, as_json: JsonOption = False, wide: WideOption = False
) -> None:
    """List playbooks with their version, data ceiling and limits."""
    from zerolane.tasks.playbooks import format_duration

    with _reported(), opened(home) as deployment:
        entries = deployment.playbooks.list()
    if as_json:
        print_json([_as_json(p, r) for p, r in entries])
        return
    table = Table()
    for column in ("name", "version", "ceiling", "actions", "max_ttl", "delegable"):
        table.add_column(column, no_wrap=column != "actions")  # only actions may wrap
    for p, r in entries:
        table.add_row(
            *cells(
                p.name,
                r.version,
                p.data_ceiling.label,
                " ".join(p.actions),
                format_duration(p.max_ttl),
                f"yes (depth {p.max_depth})" if p.delegable else "no",
            )
        )
    print_table(table, empty="no playbooks", wide=wide)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The playbook's name", show_default=False)],
    home: HomeOption = None,
) -> None:
    """Show one playbook, its version and when it was applied (JSON)."""
    from zerolane.tasks.playbooks import playbook_from_json

    with _reported(), opened(home) as deployment:
        record = deployment.playbooks.record(name)
        playbook = playbook_from_json(record.document, f"stored playbook {name!r}")
    print_json(_as_json(playbook, record))


#: denied requests listed in the table (all of them under --json)
SHOWN_REFUSED = 20
_SUFFIXES = (".yaml", ".yml")


@app.command("suggest")
def suggest(
    name: Annotated[str, typer.Argument(help="The playbook's name", show_default=False)],
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help="Tasks opened this far back are the evidence: 90m, 24h, 30d (at most 366d).",
        ),
    ] = "30d",
    headroom: Annotated[
        int,
        typer.Option(
            "--headroom",
            min=0,
            max=1000,
            help="Percent added to the most calls and the longest window observed.",
        ),
    ] = 0,
    keep_patterns: Annotated[
        bool,
        typer.Option(
            "--keep-patterns",
            help="Keep each used resource pattern as granted (only drop the unused ones).",
        ),
    ] = False,
    write: Annotated[
        Path | None,
        typer.Option(
            "--write",
            help="Write the suggested playbook to this .yaml file, to review and apply.",
            show_default=False,
        ),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """What the playbook's tasks used against what it grants, and a narrower playbook.

    The evidence is the tasks opened from the playbook in the window (and those they
    delegated to): their allowed requests' actions, resources, destinations and
    sensitivity, their calls, how long they lasted, how deep they delegated and the
    grants they were issued. Prints each grant with its use, the unused ones, the
    denied requests (never added to the suggestion) and a diff of the playbook's file
    against the suggested one. Nothing is changed: review the file --write makes, then
    'zerolane playbook apply' it.
    """
    from zerolane.posture.suggest import playbook_yaml
    from zerolane.posture.suggest import suggest as suggest_from

    seconds = parse_duration(since)
    if write is not None and write.suffix.lower() not in _SUFFIXES:
        fail(InvalidInput("playbook.file", f"{write}: --write takes a .yaml or .yml file"))
    now = time.time()
    with _reported(), opened_stores(home) as stores:
        found = suggest_from(
            stores, name, since=now - seconds, now=now, headroom=headroom, narrow=not keep_patterns
        )
    if write is not None:
        header = (
            f"# suggested by 'zerolane playbook suggest {found.name}' from "
            f"{found.tasks} task(s) opened since {_iso(found.since)}: review, then apply\n"
        )
        write.write_text(header + playbook_yaml(found.suggested), encoding="utf-8")
    if as_json:
        print_json({**found.as_json(), "written": str(write) if write is not None else None})
        return
    _print_suggestion(found, wide)
    if write is not None:
        console.print(
            Text(f"Wrote {printable(str(write))}: review it, then 'zerolane playbook apply' it.")
        )


def _iso(at: float) -> str:
    from zerolane.posture.suggest import iso

    return iso(at)


def _print_suggestion(found: Suggestion, wide: bool) -> None:
    from zerolane.tasks.playbooks import format_duration

    current, suggested = found.current, found.suggested
    delegated = f" ({found.delegated} delegated)" if found.delegated else ""
    console.print(
        Text(
            f"Playbook {printable(found.name)} version {found.version}: {found.tasks} task(s)"
            f"{delegated} opened since {_iso(found.since)}; {found.allowed} allowed, "
            f"{found.denied} denied, {found.would_deny} would-deny (shadow) requests"
        )
    )
    table = Table()
    for column in ("grant", "granted", "used", "suggested"):
        table.add_column(column)
    for label, used in (("action", found.actions), ("destination", found.destinations)):
        for item in used.granted:
            kept = item in used.used
            table.add_row(*cells(label, item, "yes" if kept else "unused", item if kept else "-"))
    uses = {u.granted: u for u in found.resources}
    for pattern in current.resources:
        use = uses.get(pattern)
        if use is None:
            table.add_row(*cells("resource", pattern, "unused", "-"))
        else:
            count = f"{use.requests} request{'s' if use.requests > 1 else ''}"
            table.add_row(*cells("resource", pattern, count, use.suggested))
    for broker in found.grants.granted:
        kept = broker in found.grants.used
        table.add_row(*cells("grant", broker, "yes" if kept else "unused", broker if kept else "-"))
    table.add_row(
        *cells(
            "data_ceiling",
            current.data_ceiling.label,
            found.ceiling_used.label,
            suggested.data_ceiling.label,
        )
    )
    table.add_row(
        *cells(
            "max_calls",
            current.max_calls,
            f"{found.calls_used} (most by a task)",
            suggested.max_calls,
        )
    )
    longest = format_duration(round(found.longest))
    table.add_row(
        *cells(
            "max_ttl", format_duration(current.max_ttl), longest, format_duration(suggested.max_ttl)
        )
    )
    table.add_row(*cells("max_depth", current.max_depth, found.depth_used, suggested.max_depth))
    print_table(table, empty="", wide=wide)
    _print_evidence_notes(found, wide)
    diff = found.diff()
    if not diff:
        console.print("The playbook grants nothing its tasks did not use: no change suggested.")
        return
    for line in diff.splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
        console.print(Text(printable(line), style=style), highlight=False)


def _print_evidence_notes(found: Suggestion, wide: bool) -> None:
    unused = found.unused()
    if unused:
        console.print(Text("Unused grants (dropped from the suggestion):", style="bold"))
        for line in unused:
            console.print(Text(f"  {printable(line)}"))
    if found.headroom:
        console.print(f"max_calls and max_ttl include {found.headroom}% headroom.")
    else:
        console.print(
            "max_calls and max_ttl are as observed (max_ttl rounded up to a minute); "
            "--headroom PERCENT adds some."
        )
    if found.ran_out:
        console.print(
            f"{found.ran_out} task(s) ran until their window closed: max_ttl is their "
            "whole window, they may have needed longer."
        )
    if found.missing:
        console.print(
            f"{found.missing} task(s) are no longer in the task store: their requests "
            "count, their calls and durations do not."
        )
    if found.outside:
        console.print(Text("Allowed under an earlier version, not granted now (not added back):"))
        for line in found.outside:
            console.print(Text(f"  {printable(line)}"))
    if not found.refused:
        return
    table = Table(title="Denied requests (never added to the suggestion)")
    for column in ("count", "action", "resource", "destination", "reasons"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for refused in found.refused[:SHOWN_REFUSED]:
        reasons = ", ".join(refused.reasons) + (" (shadow: let through)" if refused.shadow else "")
        table.add_row(
            *cells(
                refused.count,
                refused.action or "-",
                shortened(refused.resource or "-", wide),
                refused.destination or "-",
                reasons,
            )
        )
    print_table(table, empty="", wide=wide)
    more = len(found.refused) - SHOWN_REFUSED
    if more > 0:
        console.print(f"... and {more} more kinds of denied request (--json lists them)")
    if found.refused_other:
        console.print(f"... and {found.refused_other} denied requests of kinds beyond those")
