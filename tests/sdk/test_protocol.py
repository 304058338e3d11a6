"""The SDK's sans-I/O core (zerolane.sdk.protocol): the calls an agent and a task make,
built and read without a network, and the sync and async clients sending the very same
requests for each operation (they share this core and only send)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from zerolane.sdk import Agent, AsyncAgent, ZerolaneApiError
from zerolane.sdk.common import Svid, TaskGrant, new_key
from zerolane.sdk.protocol import AgentCore, Call, TaskCore
from zerolane.tokens.rfc9449 import access_token_hash

BASE = "https://cp.example"
SVID = Svid("svid-token", "spiffe://example.org/agents/a", 2_000_000_000)
DPOP_GRANT = TaskGrant("task-1", "task-token", 2_000_000_000, {"playbook": "p"})
MTLS_GRANT = TaskGrant("task-2", "bound-token", 2_000_000_000, {"playbook": "p"}, "Bearer")


def claims(proof: str) -> dict[str, Any]:
    payload = proof.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def attested_core(enforcement_point: str | None = "zlep_edge") -> AgentCore:
    agent = AgentCore(BASE + "/", key=new_key(), enforcement_point=enforcement_point)
    agent.svid = SVID
    return agent


def test_opening_a_task_proves_the_svid_with_a_proof_for_that_call() -> None:
    agent = attested_core()
    call = agent.open_call("p", "why", {"ttl": 60, "max_calls": None})
    assert (call.url, call.mtls, call.content) == (f"{BASE}/v1/tasks", False, None)
    assert call.json == {"playbook": "p", "intent": "why", "ttl": 60}
    assert call.headers["Authorization"] == "DPoP svid-token"
    proof = claims(call.headers["DPoP"])
    assert (proof["htm"], proof["htu"]) == ("POST", f"{BASE}/v1/tasks")
    assert proof["ath"] == access_token_hash("svid-token")


def test_an_mtls_task_is_opened_over_the_certificate_with_no_proof() -> None:
    agent = AgentCore(BASE, key=new_key())  # no SVID needed: the certificate is the proof
    call = agent.open_call("p", "why", {"binding": "mtls"})
    assert (call.mtls, dict(call.headers)) == (True, {})


def test_a_dpop_task_needs_the_svid_first() -> None:
    with pytest.raises(RuntimeError, match="attest first"):
        AgentCore(BASE, key=new_key()).open_call("p", "why", {})


def test_an_unknown_option_is_a_type_error_naming_the_operation() -> None:
    agent = attested_core()
    with pytest.raises(TypeError, match=r"open_task\(\) got an unexpected keyword argument 'tll'"):
        agent.open_call("p", "why", {"tll": 60})  # type: ignore[typeddict-unknown-key]
    task = TaskCore(agent, DPOP_GRANT)
    with pytest.raises(TypeError, match=r"decide\(\) .* 'verb'"):
        task.decide_call("GET", "https://api.example/x", {"verb": "read"})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(TypeError, match=r"delegate\(\) .* 'on_behalf_of'"):
        task.delegate_call("svid", {"on_behalf_of": "bob"})  # type: ignore[typeddict-unknown-key]


def test_a_decision_is_asked_as_the_enforcement_point_with_the_task_proof() -> None:
    task = TaskCore(attested_core(), DPOP_GRANT)
    call = task.decide_call(
        "get", "https://api.example/r", {"action": "read", "sensitivity": None, "audience": "edge"}
    )
    assert (call.url, call.mtls) == (f"{BASE}/v1/decide", False)
    assert dict(call.headers) == {"Authorization": "Bearer zlep_edge"}
    assert call.json is not None
    assert call.json["request"] == {
        "method": "GET",
        "url": "https://api.example/r",
        "action": "read",
    }
    assert (call.json["token"], call.json["audience"]) == ("task-token", "edge")
    assert claims(call.json["dpop"])["htu"] == "https://api.example/r"


def test_a_certificate_bound_task_calls_over_mtls_without_a_proof() -> None:
    task = TaskCore(attested_core(enforcement_point=None), MTLS_GRANT)
    decide = task.decide_call("GET", "https://api.example/r", {})
    assert decide.mtls
    assert decide.json is not None
    assert "dpop" not in decide.json
    assert dict(decide.headers) == {}  # no enforcement point credential given
    assert task.headers("GET", "https://api.example/r") == {"Authorization": "Bearer bound-token"}
    delegate = task.delegate_call("child-svid", {"max_calls": 2})
    assert delegate.mtls
    assert "DPoP" not in delegate.headers
    assert delegate.content is not None
    form = parse_qs(delegate.content.decode())
    assert (form["subject_token"], form["actor_token"]) == (["bound-token"], ["child-svid"])


def test_a_dpop_task_delegates_proving_its_own_token() -> None:
    delegate = TaskCore(attested_core(), DPOP_GRANT).delegate_call("child-svid", {"intent": "sub"})
    assert not delegate.mtls
    assert claims(delegate.headers["DPoP"])["ath"] == access_token_hash("task-token")


def test_completing_is_one_call_and_only_once_it_succeeded() -> None:
    task = TaskCore(attested_core(), DPOP_GRANT)
    call = task.complete_call()
    assert call is not None
    assert call.url == f"{BASE}/v1/tasks/task-1/complete"
    refused = httpx.Response(503, json={"reason": "store.unavailable", "message": "down"})
    with pytest.raises(ZerolaneApiError):
        task.completed_by(refused)
    assert not task.completed
    assert task.complete_call() is not None
    task.completed_by(httpx.Response(200, json={"state": "completed"}))
    assert task.completed
    assert task.complete_call() is None


# --- the two clients send the same requests --------------------------------------------

ANSWERS: dict[str, dict[str, Any]] = {
    "/v1/attest": {"svid": "svid-token", "spiffe_id": SVID.spiffe_id, "expires_at": 1},
    "/v1/tasks": {"task_id": "t", "token": "tok", "expires_at": 1, "scope": {}},
    "/v1/decide": {
        "decision": "deny",
        "reasons": ["scope.action"],
        "policies": [],
        "task_id": "t",
        "decision_id": "d",
        "status": 403,
    },
    "/v1/token": {"task_id": "c", "access_token": "child", "expires_at": 1, "task": {"scope": {}}},
}


def recorder() -> tuple[list[httpx.Request], Callable[[httpx.Request], httpx.Response]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        body = ANSWERS.get(path, {"state": "completed"})
        return httpx.Response(200, json=body)

    return seen, answer


def shape(request: httpx.Request) -> tuple[str, str, dict[str, str], bytes]:
    """A request without what is fresh each time (a proof's jti, iat and signature)."""
    headers = {k: v for k, v in request.headers.items() if k in ("authorization", "content-type")}
    body = request.content
    if body.startswith(b"{"):
        fields = json.loads(body)
        fields.pop("dpop", None)
        body = json.dumps(fields, sort_keys=True).encode()
    return request.method, str(request.url), headers, body


STORY: dict[str, Any] = {
    "open": {"playbook": "p", "intent": "why", "ttl": 30, "audience": ["edge"]},
    "decide": {"action": "read", "resource": "r", "audience": "edge"},
    "delegate": {"delegate_svid": "child-svid", "max_calls": 1},
    "for_user": {"id_token": "person", "playbook": "p", "intent": "for them"},
}


def sync_story(key: Any) -> Iterator[httpx.Request]:
    seen, answer = recorder()
    http = httpx.Client(transport=httpx.MockTransport(answer))
    agent = Agent.attest(BASE, join_token="zljt_x", http=http, enforcement_point="zlep_e")
    agent.key = key
    with agent.task(**STORY["open"]) as task:
        assert not task.decide("GET", "https://api.example/r", **STORY["decide"]).allowed
        assert task.delegate(**STORY["delegate"]).token == "child"
    agent.open_task_for_user(**STORY["for_user"])
    agent.close()
    return iter(seen)


def async_story(key: Any) -> Iterator[httpx.Request]:
    seen, answer = recorder()

    async def story() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        agent = await AsyncAgent.attest(
            BASE, join_token="zljt_x", http=http, enforcement_point="zlep_e"
        )
        agent.key = key
        async with agent.task(**STORY["open"]) as task:
            assert not (
                await task.decide("GET", "https://api.example/r", **STORY["decide"])
            ).allowed
            assert (await task.delegate(**STORY["delegate"])).token == "child"
        await agent.open_task_for_user(**STORY["for_user"])
        await agent.aclose()

    asyncio.run(story())
    return iter(seen)


def test_the_sync_and_async_clients_send_the_same_requests() -> None:
    key = new_key()
    sync_requests = [shape(r) for r in sync_story(key)]
    async_requests = [shape(r) for r in async_story(key)]
    assert [url for _, url, _, _ in sync_requests] == [
        f"{BASE}/v1/attest",
        f"{BASE}/v1/tasks",
        f"{BASE}/v1/decide",
        f"{BASE}/v1/token",
        f"{BASE}/v1/tasks/t/complete",
        f"{BASE}/v1/token",
    ]
    # the attest call carries each client's own fresh key: compare the rest
    assert sync_requests[1:] == async_requests[1:]
    assert [r[:3] for r in sync_requests[:1]] == [r[:3] for r in async_requests[:1]]


def test_unknown_keywords_are_refused_before_any_request() -> None:
    seen, answer = recorder()
    agent = Agent(BASE, http=httpx.Client(transport=httpx.MockTransport(answer)))
    agent.svid = SVID
    with pytest.raises(TypeError, match="intent"):
        agent.open_task(playbook="p", intnet="x")  # type: ignore[call-arg]
    async_agent = AsyncAgent(BASE, http=httpx.AsyncClient(transport=httpx.MockTransport(answer)))
    async_agent.svid = SVID
    with pytest.raises(TypeError, match="'tll'"):
        asyncio.run(async_agent.open_task(playbook="p", intent="x", tll=5))  # type: ignore[call-arg]
    assert seen == []
    agent.close()
    asyncio.run(async_agent.aclose())


def test_a_call_is_plain_data() -> None:
    call = Call(f"{BASE}/v1/x", {"A": "b"}, json={"k": 1})
    assert (call.mtls, call.content) == (False, None)
    with pytest.raises(AttributeError):
        call.url = "elsewhere"  # type: ignore[misc]
