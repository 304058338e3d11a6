"""One refusal, one answer, at every enforcement point (issue 11 item 1).

The same refused request is sent to the HTTP gateway, forward-auth, the MCP gateway's
endpoint, the control plane (``POST /v1/decide``, ``POST /v1/tasks/{id}/complete``)
and, where it applies, the in-process guard: each answers the same status, reason,
``WWW-Authenticate`` and error object. Each refusal has its allowed twin at every
listener. All over the gateway tests' stack (one home, one decider, one audit log).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from tests.gateway.conftest import ADMIN, AUDIENCE, Stack
from zerolane.cli.background import free_port
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.gateway.edge.http import www_authenticate
from zerolane.gateway.forward_auth import create_app
from zerolane.gateway.forward_auth_config import parse_config
from zerolane.gateway.inproc import EmbeddedDecider, ToolDenied, guard, task_context
from zerolane.gateway.mcp import create_gateway_app, parse_gateway_config
from zerolane.gateway.mcp.metadata import metadata_url
from zerolane.sdk import Task
from zerolane.tokens.rfc9449 import make_proof

PATH = "/finance/reports/q3"
UNSAFE = "/finance/reports/a%2Fb"  # an encoded slash: refused by the one path rule
MCP_PUBLIC = "https://mcp.edge.example"
MCP = parse_gateway_config(
    {
        "public_url": MCP_PUBLIC,
        "authorization_servers": ["https://zerolane.example.org"],
        # nothing listens there: a session opens with no upstream session, at once
        "servers": [
            {"name": "tools", "url": f"http://127.0.0.1:{free_port()}/mcp", "destination": "x.int"}
        ],
    }
)
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
ERROR_OBJECT = {"error", "reason", "message", "reasons", "decision_id"}

Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Answer:
    """What a listener answered: status, reason, challenges, the error object (None: allowed)."""

    status: int
    reason: str | None
    challenges: list[str]
    error: dict[str, Any] | None


def _of(response: httpx.Response | httpx2.Response) -> Answer:
    if response.status_code == 200:
        return Answer(200, None, [], None)
    body = response.json()
    assert set(body) >= ERROR_OBJECT, body
    return Answer(
        response.status_code,
        body["reason"],
        response.headers.get_list("www-authenticate"),
        {k: body[k] for k in ERROR_OBJECT},
    )


@dataclass
class Listeners:
    stack: Stack
    forward_auth: TestClient
    mcp: TestClient
    point: str  # the enforcement point credential for /v1/decide

    def task(self) -> Task:
        return self.stack.task(audience=[AUDIENCE, MCP.audience])

    def gateway(self, path: str, headers: Headers) -> Answer:
        return _of(httpx.get(self.stack.url(path), headers=list(headers)))

    def forward(self, path: str, headers: Headers) -> Answer:
        return _of(self.forward_auth.get("/forward-auth" + path, headers=list(headers)))

    def mcp_gateway(self, headers: Headers) -> Answer:
        return _of(self.mcp.post("/mcp", json=INITIALIZE, headers=list(headers)))

    def decide(self, task: Task, path: str, proof: str | None) -> Answer:
        url = self.stack.url(path)
        body: dict[str, Any] = {
            "token": task.token,
            # the resource comes from the URL's path (the decider applies the path rule)
            "request": {
                "method": "GET",
                "url": url,
                "action": "read",
                "destination": "finance-api.internal",
            },
            "audience": AUDIENCE,
        }
        if proof is not None:
            body["dpop"] = proof
        reply = httpx.post(
            self.stack.control.url + "/v1/decide",
            json=body,
            headers={"Authorization": f"Bearer {self.point}"},
        )
        assert reply.status_code == 200, reply.text
        decided = reply.json()
        if decided["decision"] == "allow":
            return Answer(decided["status"], None, [], None)
        return Answer(
            decided["status"], decided["reasons"][0], decided["www_authenticate"], decided["error"]
        )

    def complete(self, task_id: str, headers: Headers) -> Answer:
        url = f"{self.stack.control.url}/v1/tasks/{task_id}/complete"
        return _of(httpx.post(url, headers=list(headers)))


@pytest.fixture(scope="module")
def listeners(stack: Stack) -> Iterator[Listeners]:
    deployment = stack.deployment
    point, _ = deployment.enforcement_points.add(
        "edge-listeners", (stack.public_url, "https://inproc.invalid"), ADMIN
    )
    forward = parse_config(
        {
            # Envoy relays the check's status as it is (nginx turns a 400 into its 500,
            # so forward-auth answers nginx 403 instead: tests/gateway/test_forward_auth.py)
            "proxy": "envoy",
            "public_url": stack.public_url,
            "destination": "finance-api.internal",
            "audience": AUDIENCE,
            "routes": [
                {
                    "method": "GET",
                    "path": "/finance/reports/{id}",
                    "action": "read",
                    "resource": "finance/reports/{id}",
                }
            ],
        }
    )
    # the MCP gateway's own endpoint: an initialize it lets through opens a session (200)
    mcp_app = create_gateway_app(MCP, enforcement_of(deployment), upstreams=[], connect_seconds=1)
    with (
        TestClient(create_app(forward, deployment.decider, deployment.audit)) as forward_auth,
        TestClient(mcp_app, base_url=MCP_PUBLIC) as mcp,
    ):
        yield Listeners(stack, forward_auth, mcp, point)


def _headers(task: Task, url: str, **extra: str) -> list[tuple[str, str]]:
    return [*task.headers("GET", url).items(), *extra.items()]


def _mcp_headers(task: Task) -> list[tuple[str, str]]:
    return [
        *task.headers("POST", MCP.endpoint).items(),
        ("Accept", "application/json, text/event-stream"),
    ]


def _same(answers: Mapping[str, Answer], status: int, reason: str, challenges: list[str]) -> None:
    """Every listener answered ``status`` for ``reason`` with ``challenges`` (the MCP
    gateway's name its metadata too) and the one error object."""
    for name, answer in answers.items():
        assert (answer.status, answer.reason) == (status, reason), name
        assert answer.error is not None, name
        assert (answer.error["reason"], answer.error["reasons"][0]) == (reason, reason), name
        expected = (
            www_authenticate(reason, resource_metadata=metadata_url(MCP))
            if name == "mcp" and challenges
            else challenges
        )
        assert answer.challenges == expected, name
    errors = {answer.error["error"] for answer in answers.values() if answer.error is not None}
    messages = {answer.error["message"] for answer in answers.values() if answer.error is not None}
    assert len(errors) == 1, errors  # one code for one refusal
    assert all(messages), messages


def test_a_repeated_authorization_header_is_400_everywhere(listeners: Listeners) -> None:
    with listeners.task() as task:
        url = listeners.stack.url(PATH)
        twice = [*_headers(task, url), ("Authorization", f"DPoP {task.token}")]
        answers = {
            "gateway": listeners.gateway(PATH, twice),
            "forward-auth": listeners.forward(PATH, twice),
            "mcp": listeners.mcp_gateway(
                [*_mcp_headers(task), ("Authorization", f"DPoP {task.token}")]
            ),
            "complete": listeners.complete(
                task.task_id, [("Authorization", f"DPoP {task.token}")] * 2
            ),
        }
        _same(answers, 400, "auth.multiple", www_authenticate("auth.multiple"))
        assert 'error="invalid_request"' in answers["gateway"].challenges[0]
        # the twins: one header each, allowed
        assert listeners.gateway(PATH, _headers(task, url)).status == 200
        assert listeners.forward(PATH, _headers(task, url)).status == 200
        assert listeners.mcp_gateway(_mcp_headers(task)).status == 200


def test_a_repeated_proof_is_400_everywhere(listeners: Listeners) -> None:
    with listeners.task() as task:
        url = listeners.stack.url(PATH)
        twice = [*_headers(task, url), ("DPoP", task.headers("GET", url)["DPoP"])]
        mcp_twice = [*_mcp_headers(task), ("DPoP", task.headers("POST", MCP.endpoint)["DPoP"])]
        answers = {
            "gateway": listeners.gateway(PATH, twice),
            "forward-auth": listeners.forward(PATH, twice),
            "mcp": listeners.mcp_gateway(mcp_twice),
        }
        _same(answers, 400, "dpop.multiple", www_authenticate("dpop.multiple"))
        assert listeners.gateway(PATH, _headers(task, url)).status == 200  # the twin


def test_a_missing_token_is_401_with_the_bare_challenge_everywhere(listeners: Listeners) -> None:
    with listeners.task() as task:
        accept = [("Accept", "application/json, text/event-stream")]
        answers = {
            "gateway": listeners.gateway(PATH, []),
            "forward-auth": listeners.forward(PATH, []),
            "mcp": listeners.mcp_gateway(accept),
            "complete": listeners.complete(task.task_id, []),
        }
        _same(answers, 401, "auth.missing", ['DPoP algs="ES256 EdDSA"'])
        gateway, forward = answers["gateway"].error, answers["forward-auth"].error
        assert gateway is not None
        assert forward is not None
        # forward-auth audits the refusal (its decision_id); the gateway only counts it
        assert {**gateway, "decision_id": None} == {**forward, "decision_id": None}
        url = listeners.stack.url(PATH)
        assert listeners.forward(PATH, _headers(task, url)).status == 200  # the twin


def test_a_proof_by_another_key_is_401_invalid_dpop_proof_everywhere(
    listeners: Listeners,
) -> None:
    thief = ec.generate_private_key(ec.SECP256R1())
    with listeners.task() as task:
        url = listeners.stack.url(PATH)
        guard_url = "https://inproc.invalid/finance-api.internal/read"

        @guard("read", "finance/reports/{name}", destination="finance-api.internal")
        def read_report(name: str) -> str:
            return f"report {name}"

        embedded = EmbeddedDecider(listeners.stack.deployment.decider, audience=AUDIENCE)

        def owner_signs(method: str, target: str) -> str:
            assert target == guard_url
            return task.headers(method, target)["DPoP"]

        # the twins first, the owner's own proofs: once the thief's proofs are detected
        # (a replay, high), the task's risk keeps it from the outside (risk.high)
        with task_context(task.token, owner_signs, decider=embedded):
            assert read_report("q3") == "report q3"
        assert listeners.gateway(PATH, _headers(task, url)).status == 200
        assert listeners.forward(PATH, _headers(task, url)).status == 200
        assert listeners.decide(task, PATH, task.headers("GET", url)["DPoP"]).status == 200
        assert listeners.mcp_gateway(_mcp_headers(task)).status == 200

        def stolen(method: str, target: str) -> list[tuple[str, str]]:
            proof = make_proof(thief, method=method, url=target, access_token=task.token)
            return [("Authorization", f"DPoP {task.token}"), ("DPoP", proof)]

        answers = {
            "gateway": listeners.gateway(PATH, stolen("GET", url)),
            "forward-auth": listeners.forward(PATH, stolen("GET", url)),
            "mcp": listeners.mcp_gateway(
                [*stolen("POST", MCP.endpoint), ("Accept", "application/json")]
            ),
            "decide": listeners.decide(task, PATH, stolen("GET", url)[1][1]),
        }
        reason = answers["gateway"].reason
        assert reason is not None
        assert reason.startswith("dpop.")
        _same(answers, 401, reason, www_authenticate(reason))
        assert answers["gateway"].error is not None
        assert answers["gateway"].error["error"] == "invalid_dpop_proof"
        # the in-process guard decides with the same decider: the same refusal, as ToolDenied

        def thief_signs(method: str, target: str) -> str:
            return make_proof(thief, method=method, url=target, access_token=task.token)

        with (
            task_context(task.token, thief_signs, decider=embedded),
            pytest.raises(ToolDenied) as denied,
        ):
            read_report("q3")
        assert (denied.value.status, denied.value.reason) == (401, reason)


def test_an_unsafe_path_is_400_request_path_everywhere(listeners: Listeners) -> None:
    with listeners.task() as task:
        unsafe = listeners.stack.url(UNSAFE)
        answers = {
            "gateway": listeners.gateway(UNSAFE, _headers(task, unsafe)),
            "forward-auth": listeners.forward(UNSAFE, _headers(task, unsafe)),
            "decide": listeners.decide(task, UNSAFE, task.headers("GET", unsafe)["DPoP"]),
        }
        _same(answers, 400, "request.path", [])
        # the in-process guard refuses an unsafe resource with the same status
        embedded = EmbeddedDecider(listeners.stack.deployment.decider, audience=AUDIENCE)

        @guard("read", "finance/reports/{name}", destination="finance-api.internal")
        def read_report(name: str) -> str:
            return f"report {name}"

        def owner_signs(method: str, target: str) -> str:
            return task.headers(method, target)["DPoP"]

        with task_context(task.token, owner_signs, decider=embedded):
            with pytest.raises(ToolDenied) as denied:
                read_report("../payroll")
            assert (denied.value.status, denied.value.reason) == (400, "guard.resource")
            assert read_report("q3") == "report q3"  # the twin
        safe = listeners.stack.url(PATH)
        assert listeners.gateway(PATH, _headers(task, safe)).status == 200
        assert listeners.forward(PATH, _headers(task, safe)).status == 200
        assert listeners.decide(task, PATH, task.headers("GET", safe)["DPoP"]).status == 200
