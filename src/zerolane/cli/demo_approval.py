"""The demo's approval act: a policy asks a person before a payment is sent.

A ``forbid`` annotated ``@approval("required")`` matches the agent's payment: denied
``approval.required`` with a pending approval; a person approves it; the identical
payment is allowed once; the same payment again, or another amount, asks anew.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zerolane.audit.events import Actor
from zerolane.decision import body_digest
from zerolane.sdk import Agent
from zerolane.server.deployment import Deployment

Say = Callable[[str], None]
ADMIN = Actor("admin", "demo")
APPROVER = "ops-lead@example.org"
POLICY_FILE = "zz_demo_approval.cedar"
ASK_PAYMENTS = """
@id("approval.payments")
@approval("required")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.resource == "services/payments" };
"""


class ApprovalStoryFailed(Exception):
    """A step of the approval act did not behave as promised."""


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise ApprovalStoryFailed(what)


def approval_story(
    deployment: Deployment,
    agent: Agent,
    playbook: dict[str, Any],
    step: Say,
    ok: Say,
    refused: Say,
) -> None:
    """Run the act with ``agent`` (attested) under ``playbook`` (which may write
    ``services/*`` at the finance API); the policy it adds is taken out again."""
    td = deployment.config.trust_domain
    url = f"https://finance.{td}/services/payments"
    pay = {"action": "write", "resource": "services/payments", "sensitivity": "internal"}
    invoice = b'{"invoice": 17, "amount": "120.00"}'

    step("Human approval: a policy asks a person before a payment is sent")
    path = deployment.home / deployment.config.policy_dir / POLICY_FILE
    path.write_text(ASK_PAYMENTS)
    try:
        deployment.reload_policies(ADMIN)
        ok('policy approval.payments: a forbid annotated @approval("required")')
        with agent.task(playbook=playbook["name"], intent="Pay invoice 17") as task:
            asked = task.decide("POST", url, digest=body_digest(invoice), **pay)
            _expect(asked.reasons == ("approval.required",), "the payment was not held")
            _expect(asked.approval_id is not None, "no approval was asked for")
            refused("the agent pays invoice 17: deny approval.required (an approval is pending)")
            deployment.approvals.approve(
                str(asked.approval_id), approver=APPROVER, actor=ADMIN, reason="invoice checked"
            )
            ok(f"{APPROVER} approves it (zerolane approval approve ... --as ...)")
            paid = task.decide("POST", url, digest=body_digest(invoice), **pay)
            _expect(paid.allowed, "the approved payment was denied")
            ok("the identical payment: [bold]allow[/bold], once")
            again = task.decide("POST", url, digest=body_digest(invoice), **pay)
            _expect(again.reasons == ("approval.required",), "an approval was used twice")
            _expect(again.approval_id != asked.approval_id, "the used approval came back")
            refused("the same payment again: deny approval.required (a new approval)")
            more = body_digest(invoice.replace(b"120.00", b"12000.00"))
            other = task.decide("POST", url, digest=more, **pay)
            _expect(other.reasons == ("approval.required",), "other arguments went through")
            refused("another amount: deny approval.required (its own approval)")
    finally:
        path.unlink()
        deployment.reload_policies(ADMIN)
