"""Human approval at the in-process guard, over the control plane's ``/v1/decide``: a
guarded call a policy asks approval for raises ``ToolDenied`` naming the approval; once
approved, the identical call (same arguments) runs once; other arguments ask anew; a
call whose arguments JSON cannot hold cannot be bound (``approval.unbound``)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest

from tests.gateway.task_home import ADMIN, INTENT, PLAYBOOK, ControlPlane, control_plane
from zerolane.gateway.inproc import RemoteDecider, ToolDenied, guard, task_context
from zerolane.sdk.guard import proof_signer

ASK_PAGES = """
@id("approval.pages")
@approval("required")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.action == "write" && context.request.destination == "inproc" };
"""
written: list[str] = []


@guard("write", "pages/{name}")
def write_page(name: str, text: object) -> str:
    written.append(f"{name}: {text}")
    return "written"


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("inproc-approvals") / "home") as plane:
        deployment = plane.deployment
        (deployment.home / deployment.config.policy_dir / "approval.cedar").write_text(ASK_PAGES)
        deployment.reload_policies(ADMIN)
        yield plane


def test_a_guarded_call_is_approved_then_runs_once(cp: ControlPlane) -> None:
    remote = RemoteDecider(cp.url, credential=cp.enforcement_point)
    with (
        cp.agent() as agent,
        agent.task(playbook=PLAYBOOK["name"], intent=INTENT) as task,
        task_context(task.token, proof_signer(task), decider=remote),
    ):
        with pytest.raises(ToolDenied) as asked:
            write_page("q3", "Q3 was fine")
        assert (asked.value.reason, asked.value.status) == ("approval.required", 403)
        approval_id = asked.value.approval_id
        assert approval_id is not None
        back = pickle.loads(pickle.dumps(asked.value))  # noqa: S301 (our own bytes)
        assert back.approval_id == approval_id
        assert written == []
        cp.deployment.approvals.approve(approval_id, approver="carol", actor=ADMIN)
        with pytest.raises(ToolDenied) as other:  # other arguments: their own approval
            write_page("q3", "Q3 was a disaster")
        assert other.value.approval_id not in (None, approval_id)
        assert write_page(name="q3", text="Q3 was fine") == "written"  # the approved call
        assert written == ["q3: Q3 was fine"]
        with pytest.raises(ToolDenied) as again:  # once only
            write_page("q3", "Q3 was fine")
        assert again.value.approval_id not in (None, approval_id)
        with pytest.raises(ToolDenied) as unbound:  # JSON cannot hold it: not bound
            write_page("q3", object())
        assert (unbound.value.reason, unbound.value.approval_id) == ("approval.unbound", None)
    assert written == ["q3: Q3 was fine"]
