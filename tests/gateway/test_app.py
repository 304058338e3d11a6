"""The ASGI app's edges, driven directly or over raw sockets: other scope types, a
server without ``raw_path``, clients that leave, and unreadable token claims."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import Stack, build_request
from zerolane.cli.gateway import build_app
from zerolane.gateway.config import load_gateway_config
from zerolane.gateway.http import GatewayApp

Message = MutableMapping[str, Any]  # starlette.types.Message: what an ASGI app sends


def _run(app: GatewayApp, scope: dict[str, Any], incoming: list[Message]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    async def main() -> None:
        await app(scope, receive, send)
        await app.aclose()

    asyncio.run(main())
    return sent


@pytest.fixture
def app(stack: Stack) -> GatewayApp:
    """A second app over the stack's home, driven without a server (nor lifespan)."""
    return build_app(load_gateway_config(stack.config_path), stack.gateway_deployment)


def _scope(stack: Stack, **changes: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/finance/reports/q3",
        "raw_path": b"/finance/reports/q3",
        "query_string": b"",
        "headers": [],
    }
    scope.update(changes)
    return scope


def test_websockets_are_closed(app: GatewayApp) -> None:
    sent = _run(app, {"type": "websocket"}, [{"type": "websocket.connect"}])
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_a_server_without_raw_path_is_refused(stack: Stack, app: GatewayApp) -> None:
    sent = _run(app, _scope(stack, raw_path=None), [])
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["reason"] == "request.path"


def test_a_client_leaving_before_its_body_arrives_gets_nothing(
    stack: Stack, app: GatewayApp
) -> None:
    with stack.task() as task:
        url = stack.url("/finance/upload")
        headers = [
            (k.lower().encode(), v.encode()) for k, v in task.headers("POST", url).items()
        ] + [(b"content-length", b"10")]
        scope = _scope(stack, method="POST", raw_path=b"/finance/upload", headers=headers)
        before = stack.upstream.count()
        assert _run(app, scope, [{"type": "http.disconnect"}]) == []
        assert stack.upstream.count() == before


def test_a_client_leaving_a_long_download_stops_it(stack: Stack) -> None:
    with stack.task() as task:
        path = "/finance/download/2000000?chunked"
        auth = list(task.headers("GET", stack.url(path)).items())
        with socket.create_connection(("127.0.0.1", stack.gateway.port), timeout=10) as sock:
            sock.sendall(build_request("GET", path, auth))
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        assert task.request("GET", stack.url("/finance/reports/q3")).status_code == 200
    assert httpx.get(stack.url("/healthz")).status_code == 200


class _BrokenDecider:
    def decide(self, *_: object) -> object:
        raise RuntimeError("database is locked")


def test_a_failing_decider_is_a_503_never_an_allow(stack: Stack) -> None:
    app = GatewayApp(stack.app.config, _BrokenDecider())  # type: ignore[arg-type]
    with stack.task() as task:
        url = stack.url("/finance/reports/q3")
        headers = [(k.lower().encode(), v.encode()) for k, v in task.headers("GET", url).items()]
        before = stack.upstream.count()
        sent = _run(app, _scope(stack, headers=headers), [])
    assert sent[0]["status"] == 503
    assert json.loads(sent[1]["body"]) == {
        "error": "unavailable",
        "reason": "decision.error",
        "message": "the decision could not be made or recorded; refused",
        "reasons": ["decision.error"],
        "decision_id": None,
    }
    assert stack.upstream.count() == before


def _upload_scope(stack: Stack, headers: dict[str, str], length: int) -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(length).encode()))
    return _scope(
        stack, method="POST", path="/finance/upload", raw_path=b"/finance/upload", headers=raw
    )


def test_a_failing_decider_with_a_body_is_a_503_never_waits_for_it(stack: Stack) -> None:
    app = GatewayApp(stack.app.config, _BrokenDecider())  # type: ignore[arg-type]
    with stack.task() as task:
        url = stack.url("/finance/upload")
        sent = _run(app, _upload_scope(stack, task.headers("POST", url), 10), [])
    assert sent[0]["status"] == 503  # no body was sent: it was never waited for
    assert json.loads(sent[1]["body"])["reason"] == "decision.error"


def test_a_verified_body_longer_than_declared_is_refused_and_its_proof_spent(
    stack: Stack, app: GatewayApp
) -> None:
    before = stack.upstream.count()
    with stack.task() as task:
        url = stack.url("/finance/upload")
        headers = task.headers("POST", url)
        longer: list[Message] = [{"type": "http.request", "body": b"abcd", "more_body": False}]
        sent = _run(app, _upload_scope(stack, headers, 3), longer)
        assert sent[0]["status"] == 400
        assert json.loads(sent[1]["body"])["reason"] == "request.body_length"
        assert stack.upstream.count() == before
        # the same proof, the body as declared, at a decider with its own replay cache
        # (another gateway process over the same store): spent already
        elsewhere = GatewayApp(stack.app.config, stack.deployment.decider)
        again: list[Message] = [{"type": "http.request", "body": b"abc", "more_body": False}]
        replayed = _run(elsewhere, _upload_scope(stack, headers, 3), again)
        assert json.loads(replayed[1]["body"])["reason"] == "dpop.replayed"
        # the legitimate twin: a fresh proof, the body as declared
        twin: list[Message] = [{"type": "http.request", "body": b"abc", "more_body": False}]
        allowed = _run(app, _upload_scope(stack, task.headers("POST", url), 3), twin)
        assert allowed[0]["status"] == 200


class _NoDiscard:
    """The stack's decider, but spending a never-decided request's proof fails."""

    def __init__(self, decider: Any) -> None:
        self._decider = decider

    def __getattr__(self, name: str) -> Any:
        return getattr(self._decider, name)

    def discard(self, verified: object) -> None:
        raise RuntimeError("the store is gone")


def test_a_proof_that_cannot_be_spent_still_refuses(stack: Stack) -> None:
    decider = _NoDiscard(stack.gateway_deployment.decider)
    app = GatewayApp(stack.app.config, decider)  # type: ignore[arg-type]
    with stack.task() as task:
        url = stack.url("/finance/upload")
        longer: list[Message] = [{"type": "http.request", "body": b"abcd", "more_body": False}]
        sent = _run(app, _upload_scope(stack, task.headers("POST", url), 3), longer)
    assert sent[0]["status"] == 400
