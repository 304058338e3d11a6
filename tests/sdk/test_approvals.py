"""The SDK's side of human approval: ``ApprovalRequired`` read from an enforcement point's
403, and an async task reading and waiting for its own approval on a served control plane
(the sync task's is exercised end to end in ``tests/gateway/test_approvals.py``)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.task_fixtures import ADMIN, FINANCE, INTENT, PLAYBOOK, Served, served
from zerolane.decision import DecideInput
from zerolane.sdk import ApprovalRequired, AsyncAgent
from zerolane.sdk.common import approval_required
from zerolane.tokens.rfc9449 import make_proof

ASK = """
@id("approval.writes")
@approval("required")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.action == "write" };
"""
PAGE = f"{FINANCE}/reports/q3"


def answer(status: int, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.Response(status, content=body)
    return httpx.Response(status, json=body)


ASKED = {"reason": "approval.required", "approval_id": "a1", "approval_url": "/v1/approvals/a1"}


def test_approval_required_is_read_only_from_a_403_naming_an_approval() -> None:
    asked = approval_required(answer(403, {**ASKED, "message": "ask a person"}))
    assert asked is not None
    assert (asked.status, asked.reason, asked.approval_id, asked.approval_url) == (
        403,
        "approval.required",
        "a1",
        "/v1/approvals/a1",
    )
    assert str(asked) == "403 approval.required: ask a person"
    bare = approval_required(answer(403, {"reason": "approval.required", "approval_id": "a2"}))
    assert bare is not None
    assert (bare.approval_url, bare.message) == (None, "the request needs a human approval")
    for status, body in [
        (200, ASKED),  # not a refusal
        (403, b"<html>proxy</html>"),  # not JSON
        (403, ["approval.required"]),  # not an object
        (403, {**ASKED, "reason": "scope.action"}),  # another refusal
        (403, {**ASKED, "approval_id": None}),  # names no approval
    ]:
        assert approval_required(answer(status, body)) is None


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("sdk-approvals") / "home") as plane:
        deployment = plane.deployment
        (deployment.home / deployment.config.policy_dir / "approval.cedar").write_text(ASK)
        deployment.reload_policies(ADMIN)
        yield plane


def test_an_async_task_reads_and_waits_for_its_approval(cp: Served) -> None:
    async def main() -> None:
        agent = await AsyncAgent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token()
        )
        async with agent:
            task = await agent.task(playbook=PLAYBOOK["name"], intent=INTENT)
            proof = make_proof(agent.key, method="POST", url=PAGE, access_token=task.token)
            digest = hashlib.sha256(b"{}").hexdigest()
            request = DecideInput("POST", PAGE, action="write", digest=digest)
            asked = cp.deployment.decider.decide(task.token, proof, request)
            assert asked.approval_id is not None
            assert (await task.approval(asked.approval_id))["status"] == "pending"
            with pytest.raises(TimeoutError):
                await task.wait_for_approval(asked.approval_id, timeout=0.05, interval=0.01)
            cp.deployment.approvals.deny(asked.approval_id, approver="carol", actor=ADMIN)
            status = await task.wait_for_approval(asked.approval_id, timeout=5, interval=0.01)
            assert status == "denied"

            def gateway(request: httpx.Request) -> httpx.Response:
                if request.url.path == "/asks":
                    return answer(403, ASKED)
                return answer(200, {"ok": True})

            await task.complete()
            await agent.http.aclose()  # an enforcement point of its own, answering as one
            agent.http = httpx.AsyncClient(transport=httpx.MockTransport(gateway))
            with pytest.raises(ApprovalRequired) as required:
                await task.request("POST", "https://gw.example/asks", content=b"{}")
            assert required.value.approval_id == "a1"
            assert (await task.request("GET", "https://gw.example/reads")).status_code == 200

    asyncio.run(main())
