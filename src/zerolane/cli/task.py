"""``zerolane task``: list, show, suspend, resume and revoke tasks; show their
delegation trees.

``list``, ``show`` and ``tree`` read the home's stores alone (:func:`opened_stores`)
and show tasks as :func:`~zerolane.tasks.views.task_view`: no deployment is built and
neither the policy engine nor the server stack is imported. Tasks are shown as
decisions see them: when one they would show is past its window but stored live, its
expiry is recorded first, through the deployment's lifecycle (a ``task.expired``
event, its grants revoked), which then lists it, exactly as before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

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
    opened_stores,
    print_json,
    print_table,
    printable,
    shortened,
)
from zerolane.errors import InvalidInput
from zerolane.types import SystemClock, TaskState

if TYPE_CHECKING:
    from pathlib import Path

    from zerolane.server.deployment import Deployment
    from zerolane.store.ports import Stores
    from zerolane.store.records import TaskRecord

app = typer.Typer(
    help="List, show, suspend, resume and revoke tasks; show a delegation tree.",
    no_args_is_help=True,
)
TaskIdArg = Annotated[str, typer.Argument(help="The task id (tsk_...)", show_default=False)]
#: what a read command shows: tasks, or None when the lifecycle must answer instead
Read = Callable[["Stores", float], "list[TaskRecord] | None"]


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _shown(
    home: Path | None, read: Read, lifecycle: Callable[[Deployment], list[TaskRecord]]
) -> list[dict[str, Any]]:
    """The views of the tasks ``read`` finds in the home's stores, when no expiry is due
    among them (the lifecycle would then return the very same records); otherwise, or
    when ``read`` finds nothing to show (an unknown task: the lifecycle's refusal),
    those of ``lifecycle``, which records the expiries first."""
    from zerolane.tasks.views import expiry_due, task_view

    with opened_stores(home) as stores:
        now = SystemClock().now()
        tasks = read(stores, now)
        if tasks is not None and not any(expiry_due(t, now) for t in tasks):
            return [task_view(t, now) for t in tasks]
    with opened(home) as deployment:
        now = deployment.clock.now()
        return [task_view(t, now) for t in lifecycle(deployment)]


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
    """List tasks, newest first (an active task past its window shows as expired; mode
    shadow: what the policies deny it is let through, audited as a would-deny)."""
    try:
        wanted = TaskState(state) if state else None
    except ValueError:
        raise InvalidInput("task.state", f"unknown state {state!r}") from None

    from zerolane.tasks.views import MAX_SWEEP, SWEPT, expiry_due

    def read(stores: Stores, now: float) -> list[TaskRecord] | None:
        for live in SWEPT.get(wanted, ()) if wanted is not None else ():  # the lifecycle's
            tasks = stores.list_tasks(owner=owner, state=live, limit=MAX_SWEEP)
            if any(expiry_due(t, now) for t in tasks):
                return None
        return stores.list_tasks(owner=owner, state=wanted, limit=limit)

    tasks = _shown(
        home,
        read,
        lambda deployment: deployment.lifecycle.list(owner=owner, state=wanted, limit=limit),
    )
    if as_json:
        print_json(tasks)
        return
    table = Table("task", "owner", "playbook", "state", "mode", "calls", "expires", "intent")
    for t in tasks:
        table.add_row(
            *cells(
                t["task_id"],
                t["owner"],
                t["playbook"],
                t["state"],
                t["mode"],
                f"{t['calls_used']}/{t['max_calls']}",
                _when(t["expires_at"]),
                shortened(t["intent"], wide),
            )
        )
    print_table(table, empty="no tasks", wide=wide)


@app.command("show")
def show(task_id: TaskIdArg, home: HomeOption = None) -> None:
    """Show one task as JSON."""

    def read(stores: Stores, _now: float) -> list[TaskRecord] | None:
        task = stores.get_task(task_id)
        return [task] if task is not None else None

    [task] = _shown(home, read, lambda deployment: [deployment.lifecycle.get(task_id)])
    print_json(task)


@app.command("revoke")
def revoke(
    task_id: TaskIdArg,
    reason: Annotated[str, typer.Option(help="Recorded in the audit log")] = "revoked",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a task: every enforcement point denies its token from the next request on."""
    from zerolane.tasks.views import task_view

    with opened(home) as deployment:
        deployment.lifecycle.revoke(task_id, actor=Actor("admin", "cli"), reason=reason)
        revoked = task_view(deployment.lifecycle.get(task_id), deployment.clock.now())
    if as_json:
        print_json(revoked)
        return
    console.print(f"Revoked [bold]{escape(printable(task_id))}[/bold]")


ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why, in words: recorded in the audit log (1..256 chars)")
]


def _turned(verb: str, tasks: list[dict[str, Any]], as_json: bool) -> None:
    """Print the tasks a suspension or a resume changed (the task first)."""
    if as_json:
        print_json(tasks)
        return
    first, rest = tasks[0], tasks[1:]
    with_it = f", with {len(rest)} delegated task(s)" if rest else ""
    console.print(f"{verb} [bold]{escape(printable(first['task_id']))}[/bold]{escape(with_it)}")
    for task in rest:
        console.print(f"  {escape(printable(task['task_id']))} {escape(printable(task['owner']))}")


@app.command("suspend")
def suspend(
    task_id: TaskIdArg,
    reason: ReasonOption = "suspended",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Suspend an active task and every live task delegated from it: each is denied
    (task.suspended) from its very next request on, at every enforcement point, can
    neither delegate, renew, get grants nor complete, and its grants are revoked, until
    `zerolane task resume`. Its window does not move (it expires while suspended if its
    window ends). Refused: task.unknown, task.ended (completed, revoked or expired),
    task.already_suspended."""
    from zerolane.tasks.views import task_view

    with opened(home) as deployment:
        done = deployment.lifecycle.suspend(task_id, actor=Actor("admin", "cli"), reason=reason)
        now = deployment.clock.now()
        _turned("Suspended", [task_view(t, now) for t in done], as_json)


@app.command("resume")
def resume(
    task_id: TaskIdArg,
    reason: ReasonOption = "resumed",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a suspended task and the delegated tasks suspended with it: allowed again
    from the next request, within the window they always had. A delegated task that was
    suspended on its own before stays suspended (resume it by its id). Refused:
    task.unknown, task.ended (its window ended, or it was revoked), task.not_suspended,
    task.parent_suspended (its parent is suspended: resume the parent)."""
    from zerolane.tasks.views import task_view

    with opened(home) as deployment:
        done = deployment.lifecycle.resume(task_id, actor=Actor("admin", "cli"), reason=reason)
        now = deployment.clock.now()
        _turned("Resumed", [task_view(t, now) for t in done], as_json)


@app.command("tree")
def tree(task_id: TaskIdArg, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Show a task and the tasks delegated from it, as a tree (each with its holder,
    state, shadow when it runs in shadow mode, calls and the person it acts for, when
    verified)."""
    from zerolane.tasks.views import TREE_LIMIT, tree_of

    def read(stores: Stores, _now: float) -> list[TaskRecord] | None:
        root = stores.get_task(task_id)
        return tree_of(stores, root, limit=TREE_LIMIT) if root is not None else None

    tasks = _shown(home, read, lambda deployment: deployment.lifecycle.tree(task_id))
    if as_json:
        print_json(tasks)
        return
    nodes: dict[str, Tree] = {}
    root: Tree | None = None
    for t in tasks:
        user = f" for {t['user']['subject']}" if t["user"] else ""
        end_reason, state = t["end_reason"], t["state"]
        ended = f" ({end_reason})" if end_reason and end_reason != state else ""
        label = Text.assemble(
            (printable(t["task_id"]), "bold"),
            f" {printable(t['owner'])} ",
            (state, _STATE_STYLE.get(state, "white")),
            (" shadow" if t["mode"] == "shadow" else "", "magenta"),
            printable(f" calls {t['calls_used']}/{t['max_calls']}{user}{ended}"),
        )
        parent = nodes.get(t["parent_id"]) if t["parent_id"] else None
        node = parent.add(label) if parent is not None else Tree(label)
        root = root or node
        nodes[t["task_id"]] = node
    if root is not None:
        console.print(root)


_STATE_STYLE = {
    "active": "green",
    "suspended": "magenta",
    "completed": "blue",
    "revoked": "red",
    "expired": "yellow",
}
