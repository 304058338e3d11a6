"""``zerolane playbook``: apply, list and show playbooks (intent templates)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
    err_console,
    fail,
    opened,
    print_json,
    print_table,
    printable,
)
from zerolane.errors import ZerolaneError

if TYPE_CHECKING:
    from zerolane.store.records import PlaybookRecord
    from zerolane.tasks.playbooks import Playbook

app = typer.Typer(
    help="Apply, list and show playbooks: the most a task of each kind may do.",
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
