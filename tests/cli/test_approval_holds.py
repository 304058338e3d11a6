"""``zerolane approval show|list`` show what the request was (masked), and ``zerolane
approval holds|release`` list and release the tasks a response rule held."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from tests.cli.test_approval import ask, events
from tests.cli.test_task import home, run
from zerolane.audit.chain import seal
from zerolane.cli.approval import preview_line
from zerolane.server.deployment import Deployment
from zerolane.store.changes import PlaceHold, RequestApproval
from zerolane.store.records import ApprovalRecord, ApprovalStatus, TaskHold
from zerolane.tasks.approval_preview import http_preview, stored_preview

__all__ = ["home"]  # the fixture: tsk_root (acting for alice) with its child tsk_child


def ask_with_preview(home: Path, approval_id: str) -> None:
    now = time.time()
    preview = http_preview(
        "POST", "/bank/pay", "api_key=hunter2", b'{"amount": 12}', "application/json"
    )
    record = ApprovalRecord(
        approval_id=approval_id,
        task_id="tsk_root",
        action="http:POST",
        resource="payments",
        destination="bank.example",
        digest="d" * 64,
        policy_version="v" * 64,
        policies=("approval.payments",),
        requester="spiffe://example.org/agents/a1",
        status=ApprovalStatus.PENDING,
        created_at=now - 1,
        expires_at=now + 600,
        preview=stored_preview(preview),
    )
    deployment = Deployment.open(home)
    try:
        deployment.stores.write_recorded(RequestApproval(record, 16), lambda _: [], seal)
    finally:
        deployment.close()


def test_show_and_list_show_the_masked_request(home: Path) -> None:
    ask_with_preview(home, "apr_pay")
    ask(home, "apr_plain")  # none stored: shown as -
    shown = run(home, "approval", "show", "apr_pay")
    assert shown.exit_code == 0, shown.output
    assert '"path": "/bank/pay"' in shown.output
    assert '\\"amount\\":12' in shown.output.replace("\n", "")
    assert "hunter2" not in shown.output
    as_json = json.loads(run(home, "approval", "show", "apr_pay", "--json").output)
    assert as_json["preview"]["body"]["size"] == 14
    listed = run(home, "approval", "list", "--wide")
    assert "POST /bank/pay?… (14 B)" in listed.output
    assert "hunter2" not in listed.output
    plain = json.loads(run(home, "approval", "show", "apr_plain", "--json").output)
    assert plain["preview"] is None


def test_holds_are_listed_and_released(home: Path) -> None:
    assert run(home, "approval", "holds").output.strip() == "no tasks held"
    hold = TaskHold("tsk_root", "hold-probers", "scope_probing", "evt_1", time.time())
    deployment = Deployment.open(home)
    try:
        deployment.stores.write_recorded(PlaceHold(hold), lambda _: [], seal)
    finally:
        deployment.close()
    listed = json.loads(run(home, "approval", "holds", "--json").output)
    assert listed == [dataclasses.asdict(hold) | {"created_at": listed[0]["created_at"]}]
    assert "hold-probers" in run(home, "approval", "holds", "--wide").output
    released = run(home, "approval", "release", "tsk_root", "--reason", "looked")
    assert released.exit_code == 0, released.output
    assert "Released task tsk_root (held by rule hold-probers)" in released.output
    [event] = events(home, "task.released")
    assert (event["actor"], event["reason"]) == ({"type": "admin", "id": "cli"}, "looked")
    again = run(home, "approval", "release", "tsk_root", "--json")
    assert again.exit_code == 2
    assert "hold.unknown" in again.output
    assert run(home, "approval", "holds", "--json").output.strip() == "[]"


def test_a_preview_on_one_line() -> None:
    assert preview_line(None) == "-"
    assert preview_line({"tool": "send_email", "arguments": "{}"}) == "tool send_email"
    assert preview_line({"function": "pay"}) == "function pay"
    assert preview_line({"method": "GET", "path": "/x"}) == "GET /x"
    assert preview_line({"method": "POST", "path": "/x", "body": {"size": 0}}) == "POST /x"
    assert preview_line({"truncated": True, "excerpt": "..."}) == "? ?"


def test_a_release_answers_json(home: Path) -> None:
    hold = TaskHold("tsk_child", "r", "replay", "evt_2", time.time())
    deployment = Deployment.open(home)
    try:
        deployment.stores.write_recorded(PlaceHold(hold), lambda _: [], seal)
    finally:
        deployment.close()
    released = json.loads(run(home, "approval", "release", "tsk_child", "--json").output)
    assert (released["task_id"], released["rule"], released["detection"]) == (
        "tsk_child",
        "r",
        "evt_2",
    )
