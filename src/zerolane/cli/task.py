"""``zerolane task``: list, show, revoke tasks and show their delegation trees."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

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
    shortened,
)
from zerolane.errors import InvalidInput
from zerolane.types import TaskState

app = typer.Typer(help="List, show and revoke tasks; show a delegation tree.", no_args_is_help=True)
TaskIdArg = Annotated[str, typer.Argument(help="The task id (tsk_...)", show_default=False)]


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@app.command("list")
def list_tasks(
    home: HomeOption = None,
    owner: Annotated[str | None, typer.Option(help="Only this workload's tasks")] = None,
    state: Annotated[
        str | None, typer.Option(help="Only tasks stored in this state (active, completed, ...)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List tasks, newest first (an active task past its window shows as expired)."""
    from zerolane.server.task_views import task_out

    try:
        wanted = TaskState(state) if state else None
    except ValueError:
        raise InvalidInput("task.state", f"unknown state {state!r}") from None
    with opened(home) as deployment:
        now = deployment.clock.now()
        tasks = [
            task_out(t, now)
            for t in deployment.lifecycle.list(owner=owner, state=wanted, limit=limit)
        ]
    if as_json:
        print_json([t.model_dump() for t in tasks])
        return
    table = Table("task", "owner", "playbook", "state", "calls", "expires", "intent")
    for t in tasks:
        table.add_row(
            *cells(
                t.task_id,
                t.owner,
                t.playbook,
                t.state,
                f"{t.calls_used}/{t.max_calls}",
                _when(t.expires_at),
                shortened(t.intent, wide),
            )
        )
    print_table(table, empty="no tasks", wide=wide)


@app.command("show")
def show(task_id: TaskIdArg, home: HomeOption = None) -> None:
    """Show one task as JSON."""
    from zerolane.server.task_views import task_out

    with opened(home) as deployment:
        print_json(task_out(deployment.lifecycle.get(task_id), deployment.clock.now()).model_dump())


@app.command("revoke")
def revoke(
    task_id: TaskIdArg,
    reason: Annotated[str, typer.Option(help="Recorded in the audit log")] = "revoked",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a task: every enforcement point denies its token from the next request on."""
    from zerolane.server.task_views import task_out

    with opened(home) as deployment:
        deployment.lifecycle.revoke(task_id, actor=Actor("admin", "cli"), reason=reason)
        revoked = task_out(deployment.lifecycle.get(task_id), deployment.clock.now())
    if as_json:
        print_json(revoked.model_dump())
        return
    console.print(f"Revoked [bold]{escape(printable(task_id))}[/bold]")


@app.command("tree")
def tree(task_id: TaskIdArg, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Show a task and the tasks delegated from it, as a tree (each with its holder,
    state, calls and the person it acts for, when verified)."""
    from zerolane.server.task_views import task_out

    with opened(home) as deployment:
        now = deployment.clock.now()
        tasks = [task_out(t, now) for t in deployment.lifecycle.tree(task_id)]
    if as_json:
        print_json([t.model_dump() for t in tasks])
        return
    nodes: dict[str, Tree] = {}
    root: Tree | None = None
    for t in tasks:
        user = f" for {t.user['subject']}" if t.user else ""
        ended = f" ({t.end_reason})" if t.end_reason and t.end_reason != t.state else ""
        label = Text.assemble(
            (printable(t.task_id), "bold"),
            f" {printable(t.owner)} ",
            (t.state, _STATE_STYLE.get(t.state, "white")),
            printable(f" calls {t.calls_used}/{t.max_calls}{user}{ended}"),
        )
        parent = nodes.get(t.parent_id) if t.parent_id else None
        node = parent.add(label) if parent is not None else Tree(label)
        root = root or node
        nodes[t.task_id] = node
    if root is not None:
        console.print(root)


_STATE_STYLE = {"active": "green", "completed": "blue", "revoked": "red", "expired": "yellow"}
