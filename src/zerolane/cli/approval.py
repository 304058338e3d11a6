"""``zerolane approval``: list, show, approve and deny the human approvals policies ask
for (a ``forbid`` annotated ``@approval("required")``, docs/approvals.md), or that a
response rule's ``require_approval`` asks for (``holds``, ``release``).

``list``, ``show`` and ``holds`` read the home's stores alone; ``approve``, ``deny`` and
``release`` go through the deployment (audited ``approval.granted`` /
``approval.denied`` / ``task.released``, actor ``admin:cli``, the approver named by
``--as``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer
from rich.table import Table

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
from zerolane.errors import InvalidInput, NotFound
from zerolane.store.records import ApprovalRecord, ApprovalStatus, TaskHold
from zerolane.tasks.approval_preview import shown_preview
from zerolane.types import SystemClock

app = typer.Typer(
    help="List, show, approve and deny the human approvals policies ask for.",
    no_args_is_help=True,
)
ApprovalIdArg = Annotated[str, typer.Argument(help="The approval id", show_default=False)]
ApproverOption = Annotated[
    str,
    typer.Option(
        "--as",
        help="Who approves or denies, recorded in the audit log (1..200 chars). Refused "
        "(approval.self) when it is the task's workload or the person it acts for.",
        show_default=False,
    ),
]
ReasonOption = Annotated[
    str | None,
    typer.Option("--reason", help="Why, in words: recorded in the audit log (1..256 chars)"),
]
CLI_ADMIN = Actor("admin", "cli")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def approval_view(record: ApprovalRecord, now: float) -> dict[str, Any]:
    """An approval as the CLI prints it (``--json``): every field, the status as it
    reads at ``now``."""
    return {
        "approval_id": record.approval_id,
        "task_id": record.task_id,
        "status": record.status_at(now).value,
        "action": record.action,
        "resource": record.resource,
        "destination": record.destination,
        "digest": record.digest,
        "policy_version": record.policy_version,
        "policies": list(record.policies),
        "requester": record.requester,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "decided_at": record.decided_at,
        "approver": record.approver,
        "reason": record.reason,
        "used_at": record.used_at,
        "preview": shown_preview(record.preview),
    }


def preview_line(preview: dict[str, Any] | None) -> str:
    """An approval's preview on one line: ``POST /bank/pay`` (and the body's size),
    ``tool send_email``, ``function pay``; ``-`` when it has none."""
    if not preview:
        return "-"
    for kind in ("tool", "function"):
        if kind in preview:
            return f"{kind} {preview[kind]}"
    line = f"{preview.get('method', '?')} {preview.get('path', '?')}"
    if preview.get("query"):
        line += "?…"
    body = preview.get("body")
    if isinstance(body, dict) and body.get("size"):
        line += f" ({body['size']} B)"
    return line


def _status(text: str | None) -> ApprovalStatus | None:
    if text is None:
        return None
    try:
        return ApprovalStatus(text)
    except ValueError:
        known = ", ".join(s.value for s in ApprovalStatus)
        raise InvalidInput("approval.status", f"unknown status {text!r} (one of {known})") from None


@app.command("list")
def list_approvals(
    task_id: Annotated[str | None, typer.Option("--task", help="Only this task's")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="Only in this status: pending, approved, denied, used, expired"
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    home: HomeOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List approvals, newest first (a pending one past its expiry shows as expired)."""
    wanted = _status(status)
    with opened_stores(home) as stores:
        now = SystemClock().now()
        stored = None if wanted in (None, ApprovalStatus.EXPIRED) else wanted
        found = stores.list_approvals(task_id=task_id, status=stored, limit=limit)
        views = [approval_view(a, now) for a in found]
    views = [v for v in views if wanted is None or v["status"] == wanted.value]
    if as_json:
        print_json(views)
        return
    table = Table(
        "approval", "status", "task", "action", "resource", "destination", "request", "expires"
    )
    for v in views:
        table.add_row(
            *cells(
                shortened(v["approval_id"], wide),
                v["status"],
                shortened(v["task_id"], wide),
                v["action"],
                shortened(v["resource"], wide),
                v["destination"],
                shortened(preview_line(v["preview"]), wide),
                _when(v["expires_at"]),
            )
        )
    print_table(table, empty="no approvals", wide=wide)


@app.command("show")
def show(approval_id: ApprovalIdArg, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Show one approval: the exact request it is bound to (task, action, resource,
    destination, SHA-256 of the arguments, policy version), what that request was
    (masked: method, path, query, body excerpt; a tool call's arguments) and who
    decided it."""
    with opened_stores(home) as stores:
        record = stores.get_approval(approval_id)
        if record is None:
            raise NotFound("approval.unknown", f"no approval {approval_id}")
        view = approval_view(record, SystemClock().now())
    if as_json:
        print_json(view)
        return
    _print(view)


def _print(view: dict[str, Any]) -> None:
    for name, value in view.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        if name.endswith("_at"):
            shown = _when(value)
        if name == "preview":
            shown = "-" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)
        console.print(
            f"{name:>15}  {printable(str('-' if shown is None else shown))}", markup=False
        )


@app.command("approve")
def approve(
    approval_id: ApprovalIdArg,
    approver: ApproverOption,
    reason: ReasonOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a pending approval: the exact request it is bound to is allowed once,
    before the approval expires ([approvals] ttl); changed arguments need another.
    Refused: approval.unknown, approval.self, approval.decided, approval.expired."""
    with opened(home) as deployment:
        done = deployment.approvals.approve(
            approval_id, approver=approver, actor=CLI_ADMIN, reason=reason or "approved"
        )
        _decided("Approved", approval_view(done, deployment.clock.now()), as_json)


@app.command("deny")
def deny(
    approval_id: ApprovalIdArg,
    approver: ApproverOption,
    reason: ReasonOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deny a pending approval: the request stays denied (approval.denied) until the
    approval expires. Refused as approve."""
    with opened(home) as deployment:
        done = deployment.approvals.deny(
            approval_id, approver=approver, actor=CLI_ADMIN, reason=reason or "denied"
        )
        _decided("Denied", approval_view(done, deployment.clock.now()), as_json)


def _decided(verb: str, view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(view)
        return
    console.print(
        f"{verb} {printable(view['approval_id'])}: {printable(view['action'])} "
        f"{printable(view['resource'])} of task {printable(view['task_id'])}",
        markup=False,
        highlight=False,
    )


def hold_view(hold: TaskHold) -> dict[str, Any]:
    return {
        "task_id": hold.task_id,
        "rule": hold.rule,
        "detector": hold.detector,
        "detection": hold.detection,
        "created_at": hold.created_at,
    }


@app.command("holds")
def holds(home: HomeOption = None, as_json: JsonOption = False, wide: WideOption = False) -> None:
    """List the tasks a response rule holds (require_approval): each of their requests
    needs a human approval until released."""
    with opened_stores(home) as stores:
        views = [hold_view(h) for h in stores.list_holds()]
    if as_json:
        print_json(views)
        return
    table = Table("task", "rule", "detector", "detection", "since")
    for v in views:
        table.add_row(
            *cells(
                shortened(v["task_id"], wide),
                v["rule"],
                v["detector"],
                shortened(v["detection"], wide),
                _when(v["created_at"]),
            )
        )
    print_table(table, empty="no tasks held", wide=wide)


@app.command("release")
def release(
    task_id: Annotated[str, typer.Argument(help="The held task's id", show_default=False)],
    reason: ReasonOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Release a task a response rule held (task.released): its requests are decided by
    the policies alone again. Refused: hold.unknown (it is not held)."""
    with opened(home) as deployment:
        cleared = deployment.holds.clear(task_id, actor=CLI_ADMIN, reason=reason or "released")
    view = hold_view(cleared)
    if as_json:
        print_json(view)
        return
    console.print(
        f"Released task {printable(view['task_id'])} (held by rule {printable(view['rule'])})",
        markup=False,
        highlight=False,
    )
