"""``zerolane approval list|show|approve|deny``: listings read the stores, decisions are
audited as the CLI admin with the approver named, refusals exit 2 with their reason."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.cli.test_task import OWNER, home, run
from zerolane.audit.chain import seal
from zerolane.server.deployment import Deployment
from zerolane.store.changes import RequestApproval
from zerolane.store.records import ApprovalRecord, ApprovalStatus

__all__ = ["home"]  # the fixture: tsk_root (acting for alice) with its child tsk_child


def ask(home: Path, approval_id: str, *, task: str = "tsk_root", ttl: float = 600) -> None:
    now = time.time()
    record = ApprovalRecord(
        approval_id=approval_id,
        task_id=task,
        action="http:POST",
        resource=f"payments/{approval_id}",
        destination="bank.example",
        digest="d" * 64,
        policy_version="v" * 64,
        policies=("approval.payments",),
        requester=OWNER,
        status=ApprovalStatus.PENDING,
        created_at=now - 1,
        expires_at=now + ttl,
    )
    deployment = Deployment.open(home)
    try:
        deployment.stores.write_recorded(RequestApproval(record, 16), lambda _: [], seal)
    finally:
        deployment.close()


def events(home: Path, kind: str) -> list[dict[str, Any]]:
    deployment = Deployment.open(home)
    try:
        bodies = [json.loads(e.body) for e in deployment.stores.read_events(limit=10_000)]
    finally:
        deployment.close()
    return [b for b in bodies if b["kind"] == kind]


def test_list_show_approve_deny(home: Path) -> None:
    assert run(home, "approval", "list").output.strip() == "no approvals"
    ask(home, "apr_one")
    ask(home, "apr_two", task="tsk_child")
    listed = json.loads(run(home, "approval", "list", "--json").output)
    assert [(a["approval_id"], a["status"]) for a in listed] == [
        ("apr_two", "pending"),
        ("apr_one", "pending"),
    ]
    table = run(home, "approval", "list", "--task", "tsk_root", "--wide")
    assert "apr_one" in table.output
    assert "apr_two" not in table.output
    shown = run(home, "approval", "show", "apr_one")
    assert shown.exit_code == 0, shown.output
    assert "payments/apr_one" in shown.output
    assert "approval.payments" in shown.output

    approved = run(home, "approval", "approve", "apr_one", "--as", "bob", "--reason", "ok")
    assert approved.exit_code == 0, approved.output
    assert approved.output.startswith("Approved apr_one: http:POST payments/apr_one")
    denied = run(home, "approval", "deny", "apr_two", "--as", "bob", "--json")
    assert json.loads(denied.output)["status"] == "denied"
    [granted] = events(home, "approval.granted")
    assert granted["actor"] == {"type": "admin", "id": "cli"}
    assert (granted["details"]["approver"], granted["reason"]) == ("bob", "ok")
    assert len(events(home, "approval.denied")) == 1
    only = json.loads(run(home, "approval", "list", "--status", "approved", "--json").output)
    assert [a["approval_id"] for a in only] == ["apr_one"]
    one = json.loads(run(home, "approval", "show", "apr_one", "--json").output)
    assert (one["status"], one["approver"]) == ("approved", "bob")


def test_an_expired_approval_is_listed_as_expired(home: Path) -> None:
    ask(home, "apr_old", ttl=-0.5)
    ask(home, "apr_new")
    expired = json.loads(run(home, "approval", "list", "--status", "expired", "--json").output)
    assert [a["approval_id"] for a in expired] == ["apr_old"]
    pending = json.loads(run(home, "approval", "list", "--status", "pending", "--json").output)
    assert [a["approval_id"] for a in pending] == ["apr_new"]
    late = run(home, "approval", "approve", "apr_old", "--as", "bob")
    assert late.output.startswith("error approval.expired:"), late.output


def test_refusals_exit_2_with_their_reason(home: Path) -> None:
    ask(home, "apr_one")
    cases = [
        (("approval", "show", "nope"), "approval.unknown"),
        (("approval", "approve", "nope", "--as", "bob"), "approval.unknown"),
        (("approval", "approve", "apr_one", "--as", OWNER), "approval.self"),
        (("approval", "approve", "apr_one", "--as", "alice"), "approval.self"),  # its person
        (("approval", "deny", "apr_one", "--as", ""), "approval.approver"),
        (("approval", "list", "--status", "maybe"), "approval.status"),
    ]
    for args, reason in cases:
        refused = run(home, *args)
        assert refused.exit_code == 2, refused.output
        assert refused.output.startswith(f"error {reason}:"), refused.output
    assert run(home, "approval", "approve", "apr_one", "--as", "bob").exit_code == 0  # the twin
    again = run(home, "approval", "deny", "apr_one", "--as", "bob")
    assert again.output.startswith("error approval.decided:"), again.output
    assert run(home, "approval", "approve", "apr_one").exit_code == 2  # --as is required


def test_an_approval_of_a_task_no_longer_stored_is_still_decided(home: Path) -> None:
    ask(home, "apr_gone", task="tsk_gone")  # its requester is still checked
    assert run(home, "approval", "approve", "apr_gone", "--as", OWNER).exit_code == 2
    assert run(home, "approval", "approve", "apr_gone", "--as", "bob").exit_code == 0
