"""The gateway end to end: an agent's requests, decided, rewritten and forwarded to a
real upstream process (which counts what reaches it)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import AUDIENCE, HMAC_KEY, WIKI_SECRET, Stack
from zerolane.audit.events import Actor
from zerolane.grants import verify_api_key
from zerolane.sdk import Task

pytestmark = pytest.mark.e2e


def _headers(echo: dict[str, Any]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in echo["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    return seen


def _denied(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["reason"] == reason
    assert set(body) == {"error", "reason", "message", "reasons", "decision_id"}
    return body


def test_an_allowed_request_reaches_the_upstream_with_the_injected_credential(
    stack: Stack,
) -> None:
    before = stack.upstream.count()
    with stack.task() as task:
        response = task.request("GET", stack.url("/finance/reports/q3?year=2026&x=%2F"))
        assert response.status_code == 200, response.text
        echo = response.json()
        assert stack.upstream.count() == before + 1
        assert echo["method"] == "GET"
        assert echo["path"] == "/fin/reports/q3"
        assert echo["query"] == "year=2026&x=%2F"
        seen = _headers(echo)
        assert "authorization" not in seen
        assert "dpop" not in seen
        assert seen["x-zerolane-task"] == [task.task_id]
        assert len(seen["x-zerolane-decision"][0]) == 32
        assert seen["host"] == [f"127.0.0.1:{stack.upstream.port}"]
        (api_key,) = seen["x-api-key"]
        assert verify_api_key(HMAC_KEY, api_key, time.time()) == task.task_id
        assert response.headers["x-upstream"] == "echo"  # response headers pass through


def test_a_static_secret_replaces_the_agents_authorization(stack: Stack) -> None:
    with stack.task() as task:
        response = task.request("PUT", stack.url("/wiki/pages/home"), content=b"# Home")
        assert response.status_code == 200, response.text
        echo = response.json()
        assert _headers(echo)["authorization"] == [f"Bearer {WIKI_SECRET}"]
        assert echo["body_length"] == 6


def test_openapi_routes_are_enforced(stack: Stack) -> None:
    before = stack.upstream.count()
    with stack.task() as task:
        allowed = task.request("GET", stack.url("/docs-api/docs/readme"))
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["path"] == "/docs-api/docs/readme"
        _denied(task.request("DELETE", stack.url("/docs-api/docs/readme")), 403, "scope.action")
        _denied(task.request("GET", stack.url("/docs-api/internal")), 403, "route.unmapped")
    assert stack.upstream.count() == before + 1


def test_a_denied_request_never_reaches_the_upstream(stack: Stack) -> None:
    before = stack.upstream.count()
    with stack.task() as task:
        body = _denied(
            task.request("DELETE", stack.url("/finance/reports/q3")), 403, "scope.action"
        )
        assert len(body["decision_id"]) == 32
        restricted = task.request("GET", stack.url("/finance/reports/payroll"))
        _denied(restricted, 403, "scope.sensitivity")  # the literal route wins over {id}
    assert stack.upstream.count() == before
    events = [
        e
        for e in stack.deployment.audit.tail(50)
        if e.kind == "decision" and body["decision_id"] in e.body
    ]
    assert len(events) == 1


def test_an_unmapped_route_is_denied(stack: Stack) -> None:
    before = stack.upstream.count()
    with stack.task() as task:
        for path in ("/finance/admin", "/finance", "/finance/reports/q3/raw", "/elsewhere/x"):
            _denied(task.request("GET", stack.url(path)), 403, "route.unmapped")
        _denied(task.request("POST", stack.url("/finance/reports/q3")), 403, "route.unmapped")
    assert stack.upstream.count() == before


@pytest.mark.parametrize(
    ("headers", "reason", "challenge"),
    [
        ({}, "auth.missing", 'DPoP algs="ES256 EdDSA"'),
        ({"Authorization": "Bearer abc"}, "auth.scheme", 'error="invalid_token"'),
        ({"Authorization": "DPoP not-a-token", "DPoP": "x"}, "token.malformed", "invalid_token"),
    ],
)
def test_a_missing_or_invalid_token_gets_401(
    stack: Stack, headers: dict[str, str], reason: str, challenge: str
) -> None:
    before = stack.upstream.count()
    response = httpx.get(stack.url("/finance/reports/q3"), headers=headers)
    _denied(response, 401, reason)
    assert challenge in response.headers["www-authenticate"]
    assert response.headers["www-authenticate"].startswith("DPoP ")
    assert stack.upstream.count() == before


def test_a_proof_problem_is_an_invalid_dpop_proof(stack: Stack) -> None:
    with stack.task() as task:
        url = stack.url("/finance/reports/q3")
        no_proof = httpx.get(url, headers={"Authorization": f"DPoP {task.token}"})
        _denied(no_proof, 401, "dpop.missing")
        assert 'error="invalid_dpop_proof"' in no_proof.headers["www-authenticate"]
        other_url = task.headers("GET", stack.url("/finance/reports/q4"))
        _denied(httpx.get(url, headers=other_url), 401, "dpop.htu")
        twice = [*task.headers("GET", url).items(), ("DPoP", "x")]
        repeated = httpx.get(url, headers=twice)
        _denied(repeated, 400, "dpop.multiple")
        assert 'error="invalid_request"' in repeated.headers["www-authenticate"]
        tokens = [*task.headers("GET", url).items(), ("Authorization", f"DPoP {task.token}")]
        _denied(httpx.get(url, headers=tokens), 400, "auth.multiple")


def test_a_replayed_request_is_refused(stack: Stack) -> None:
    before = stack.upstream.count()
    with stack.task() as task:
        url = stack.url("/finance/reports/q3")
        captured = task.headers("GET", url)
        assert httpx.get(url, headers=captured).status_code == 200
        replayed = httpx.get(url, headers=captured)
        _denied(replayed, 401, "dpop.replayed")
        assert 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]
    assert stack.upstream.count() == before + 1


def test_a_token_for_another_audience_is_refused(stack: Stack) -> None:
    with stack.task(audience=["urn:some:other:gateway"]) as task:
        _denied(task.request("GET", stack.url("/finance/reports/q3")), 401, "token.audience")


def test_a_completed_or_revoked_task_is_refused_at_once(stack: Stack) -> None:
    task: Task = stack.task()
    assert task.request("GET", stack.url("/finance/reports/q3")).status_code == 200
    stack.deployment.lifecycle.revoke(task.task_id, actor=Actor("admin", "t"), reason="test")
    _denied(task.request("GET", stack.url("/finance/reports/q3")), 403, "task.revoked")
    with stack.task() as done:
        pass
    _denied(done.request("GET", stack.url("/finance/reports/q3")), 403, "task.completed")


def test_upstream_failures_are_502_and_504_with_the_decision(stack: Stack) -> None:
    with stack.task() as task:
        dead = _denied(task.request("GET", stack.url("/dead/x")), 502, "upstream.error")
        slow = _denied(task.request("GET", stack.url("/finance/slow")), 504, "upstream.timeout")
        assert dead["decision_id"]
        assert slow["decision_id"]


def test_health_and_metrics(stack: Stack) -> None:
    assert httpx.get(stack.url("/healthz")).json() == {"status": "ok"}
    with stack.task() as task:
        task.request("GET", stack.url("/finance/reports/q3"))
        task.request("DELETE", stack.url("/finance/reports/q3"))
    text = httpx.get(stack.url("/metrics")).text
    assert 'zerolane_gateway_decisions_total{outcome="allow",reason="ok"}' in text
    assert 'zerolane_gateway_decisions_total{outcome="deny",reason="scope.action"}' in text
    assert "zerolane_gateway_decision_seconds_count" in text
    assert 'zerolane_gateway_request_seconds_count{upstream="finance"}' in text


def test_hop_by_hop_headers_and_upgrades_are_not_forwarded(stack: Stack) -> None:
    with stack.task() as task:
        response = task.request(
            "GET",
            stack.url("/finance/reports/q3"),
            headers={
                "Connection": "Upgrade, X-Secret-Hop",
                "Upgrade": "websocket",
                "X-Secret-Hop": "1",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                "X-Kept": "yes",
            },
        )
        assert response.status_code == 200, response.text
        seen = _headers(response.json())
        for name in ("upgrade", "x-secret-hop", "keep-alive", "te", "proxy-authorization"):
            assert name not in seen
        assert seen["x-kept"] == ["yes"]


def test_the_audience_is_the_configured_one(stack: Stack) -> None:
    assert stack.app.config.audience == AUDIENCE
