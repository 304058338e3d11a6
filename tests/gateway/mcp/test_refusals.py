"""The MCP gateway audits what it refuses before any decision (issue 13 item 2): a
request without credentials, a Host it does not serve, a malformed message, as
``gateway.refused`` events at a bounded rate; and a task token refused for its proof on
a request that is not decided (``mcp.refused``) names its task, its token's id and the
keys, never the token or the proof. The legitimate twin is served."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anyio
import httpx
import httpx2
from cryptography.hazmat.primitives.asymmetric import ec

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.test_gateway_e2e import INITIALIZE, MCP_HEADERS
from tests.identity.attestors.cases import FixedClock
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.detection.seen import Seen
from zerolane.gateway.mcp import create_gateway_app
from zerolane.gateway.mcp.auth import shown_url
from zerolane.gateway.refusals import KIND, RefusalAudit, RefusalRates
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import make_proof, proof_jwk


def _events(stack: Stack, after: int, kind: str) -> list[dict[str, Any]]:
    bodies = [json.loads(r.body) for r in stack.deployment.stores.read_events(after, 100_000)]
    return [b for b in bodies if b["kind"] == kind]


def test_refusals_before_a_decision_are_audited_at_a_bounded_rate(stack: Stack) -> None:
    deployment = stack.deployment
    audit = RefusalAudit(deployment.audit, FixedClock(), RefusalRates(per_second=1, burst=3))
    enforcement = dataclasses.replace(enforcement_of(deployment), refusals=audit)
    app = create_gateway_app(stack.config, enforcement, listener="mcp-probe")
    host = httpx.URL(stack.config.public_url).netloc.decode()
    start = deployment.audit.tail(1)[0].seq

    async def main() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 4000))
        base = f"http://{host}"
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            path = stack.config.path
            statuses = []
            for _ in range(10):  # no credentials
                answer = await client.post(path, json=INITIALIZE, headers=MCP_HEADERS)
                statuses.append(answer.status_code)
            other = {**MCP_HEADERS, "Host": "evil.example"}
            answer = await client.post(path, json=INITIALIZE, headers=other)
            statuses.append(answer.status_code)
            malformed = {
                **MCP_HEADERS,
                "Content-Type": "application/json",
                "Authorization": "DPoP not-a-token",
                "DPoP": "not-a-proof",
            }
            answer = await client.post(path, content=b"{not json", headers=malformed)
            statuses.append(answer.status_code)
            return statuses

    statuses = anyio.run(main)
    assert statuses == [401] * 10 + [421, 400]
    audit.close()
    events = [e for e in _events(stack, start, KIND) if e["details"]["listener"] == "mcp-probe"]
    reasons = [e["reason"] for e in events]
    # 3 of the 10 without credentials: the burst
    assert reasons == ["auth.missing"] * 3 + ["request.host", "jsonrpc.invalid"]
    assert {e["details"]["client"] for e in events} == {"203.0.113.5"}
    assert events[0]["details"]["status"] == 401
    assert events[3]["details"]["status"] == 421
    assert audit.suppressed == 7
    assert "not-a-token" not in json.dumps(events)


def test_a_refused_proof_on_an_undecided_request_names_the_task(stack: Stack) -> None:
    start = stack.deployment.audit.tail(1)[0].seq
    with stack.agent() as agent:
        task = stack.task(agent)
        thief = ec.generate_private_key(ec.SECP256R1())
        proof = make_proof(thief, method="POST", url=stack.url, access_token=task.token)
        headers = {**MCP_HEADERS, "Authorization": f"DPoP {task.token}", "DPoP": proof}
        refused = httpx2.post(stack.url, json=INITIALIZE, headers=headers)
        assert refused.status_code == 401
        twin = {**MCP_HEADERS, **task.headers("POST", stack.url)}
        assert httpx2.post(stack.url, json=INITIALIZE, headers=twin).status_code == 200
        (event,) = _events(stack, start, "mcp.refused")
        assert event["reason"] == "dpop.key_mismatch"
        assert (event["subject"], event["actor"]["id"]) == (task.task_id, agent.spiffe_id)
        details = event["details"]
        assert details["task_id"] == task.task_id
        assert details["expected_jkt"] == thumbprint(proof_jwk(agent.key))
        assert details["proof_jkt"] == thumbprint(proof_jwk(thief))
        assert details["token_id"]
        text = "\n".join(r.body for r in stack.deployment.stores.read_events(start, 100_000))
        assert task.token not in text
        assert proof not in text


def test_a_refused_token_naming_no_task_is_about_no_task(stack: Stack) -> None:
    """A token that does not verify names no task: the event's subject is ``unknown``
    (never the URL, which the detectors would take for a task), and its details name
    the route and the URL without userinfo or query."""
    start = stack.deployment.audit.tail(1)[0].seq
    with stack.agent() as agent:
        task = stack.task(agent)
        forged = task.token[:-8] + ("A" * 8 if not task.token.endswith("A" * 8) else "B" * 8)
        proof = make_proof(agent.key, method="POST", url=stack.url, access_token=forged)
        headers = {**MCP_HEADERS, "Authorization": f"DPoP {forged}", "DPoP": proof}
        refused = httpx2.post(stack.url, json=INITIALIZE, headers=headers, timeout=60)
        assert refused.status_code == 401
        twin = {**MCP_HEADERS, **task.headers("POST", stack.url)}
        answer = httpx2.post(stack.url, json=INITIALIZE, headers=twin, timeout=60)
        assert answer.status_code == 200
    (event,) = _events(stack, start, "mcp.refused")
    assert event["reason"].startswith("token.")
    assert (event["subject"], event["actor"]["id"]) == ("unknown", "unauthenticated")
    assert event["details"]["route"] == stack.config.path
    assert event["details"]["url"] == stack.url
    assert "task_id" not in event["details"]
    (record,) = [
        r for r in stack.deployment.stores.read_events(start, 100_000) if r.kind == "mcp.refused"
    ]
    assert Seen.of(record).task_id is None  # the detectors see no task in it


def test_an_audited_url_keeps_no_userinfo_query_or_fragment() -> None:
    assert shown_url("https://u:pw@mcp.example:8443/mcp?key=s3cret#x") == (
        "https://mcp.example:8443/mcp"
    )
    assert shown_url("http://127.0.0.1:9000/mcp") == "http://127.0.0.1:9000/mcp"
