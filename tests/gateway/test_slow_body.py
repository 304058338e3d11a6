"""A slow client cannot hold the HTTP gateway (security review of issue 13): the token
and its proof are verified before a body is waited for, so a client without a valid
one is answered at once; a verified client's small body must arrive within
``[limits] body_timeout``, else 408 ``request.body_timeout``, audited with its task,
and the proof it came with is spent. Real clients over sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.gateway.conftest import Stack, build_request, gateway_toml
from zerolane.cli.background import free_port
from zerolane.cli.gateway import BackgroundGateway
from zerolane.gateway.config import load_gateway_config
from zerolane.gateway.http import GatewayApp
from zerolane.gateway.refusals import KIND, RefusalAudit

BODY = b"0123456789"


@pytest.fixture(scope="module")
def slow_gateway(stack: Stack) -> Iterator[tuple[GatewayApp, RefusalAudit, int]]:
    """A gateway on the session's home whose bodies must come within a second."""
    port = free_port()
    folder = stack.home.parent / f"gw-slow-{port}"
    config = gateway_toml(folder, stack.upstream.port, port, limits="body_timeout = 1")
    deployment = stack.gateway_deployment
    refusals = RefusalAudit(deployment.audit, deployment.clock)
    app = GatewayApp(
        load_gateway_config(config), deployment.decider, listener="slow-gw", refusals=refusals
    )
    with BackgroundGateway(app, port=port):
        yield app, refusals, port
    refusals.close()


def _head(port: int, headers: list[tuple[str, str]], sent: bytes) -> bytes:
    """``POST /finance/upload`` declaring :data:`BODY`'s length, of which only ``sent``
    is sent; then nothing until the gateway answers and closes."""
    data = build_request(
        "POST", "/finance/upload", [*headers, ("Content-Length", str(len(BODY)))], sent
    )
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(data)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    return bytes(received)


def _status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_verified_client_too_slow_with_its_body_is_refused_408_and_audited(
    stack: Stack, slow_gateway: tuple[GatewayApp, RefusalAudit, int]
) -> None:
    _, refusals, port = slow_gateway
    deployment = stack.gateway_deployment
    start = deployment.audit.tail(1)[0].seq
    before = stack.upstream.count()
    url = f"http://127.0.0.1:{port}/finance/upload"
    with stack.task() as task:
        headers = list(task.headers("POST", url).items())
        status, body = _status_and_body(_head(port, headers, BODY[:4]))
        assert status == 408
        assert body["reason"] == "request.body_timeout"
        assert body["error"] == "timeout"
        assert stack.upstream.count() == before  # nothing forwarded
        # the proof it came with is spent: sent again whole, it is refused
        status, body = _status_and_body(_head(port, headers, BODY))
        assert (status, body["reason"]) == (401, "dpop.replayed")
        # the legitimate twin: the same request, its body in two parts in time
        twin = list(task.headers("POST", url).items())
        data = build_request("POST", "/finance/upload", [*twin, ("Content-Length", "10")])
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(data + BODY[:4])
            sock.sendall(BODY[4:])
            answer = bytearray()
            while chunk := sock.recv(65536):
                answer += chunk
        status, echoed = _status_and_body(bytes(answer))
        assert status == 200, echoed
        assert echoed["body_length"] == len(BODY)
        task_id = task.task_id
    refusals.flush(10)
    events = [json.loads(r.body) for r in deployment.stores.read_events(start, 100_000)]
    (timed_out,) = [
        e for e in events if e["kind"] == KIND and e["reason"] == "request.body_timeout"
    ]
    assert timed_out["subject"] == task_id
    assert timed_out["details"]["task_id"] == task_id
    assert timed_out["details"]["listener"] == "slow-gw"
    assert timed_out["details"]["status"] == 408
    decisions = [e for e in events if e["kind"] == "decision" and e["subject"] == task_id]
    assert [e["details"]["decision"] for e in decisions] == ["deny", "allow"]


def test_a_client_without_a_valid_token_is_answered_before_any_body(
    stack: Stack, slow_gateway: tuple[GatewayApp, RefusalAudit, int]
) -> None:
    _, _, port = slow_gateway
    url = f"http://127.0.0.1:{port}/finance/upload"
    with stack.task() as task:
        headers = dict(task.headers("POST", url))
        # the attack: a forged token, no body byte sent; answered at once (no wait for
        # the body nor its deadline), decided and audited as before
        forged = [("Authorization", "DPoP not.a.token"), ("DPoP", headers["DPoP"])]
        status, body = _status_and_body(_head(port, forged, b""))
        assert status == 401
        assert body["reason"] != "request.body_timeout"
        assert body["decision_id"]  # a decision refused it, and recorded it
        # the legitimate twin: the valid token, its whole body
        status, echoed = _status_and_body(_head(port, list(headers.items()), BODY))
        assert status == 200, echoed
