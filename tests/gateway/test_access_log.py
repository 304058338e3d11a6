"""One access line per request: the middleware alone, then the HTTP gateway's allow and
deny lines (never a query, token or proof in them)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

from tests.gateway.access_lines import AccessLines, access_lines
from tests.gateway.conftest import Stack
from zerolane.errors import Refusal
from zerolane.gateway.access_log import (
    AccessLog,
    Receive,
    Scope,
    Send,
    record_decision,
    record_error,
    record_refusal,
)
from zerolane.logs import JsonFormatter
from zerolane.tasks.decisions import Decision

Message = dict[str, Any]


def _scope(raw_path: bytes = b"/v1/things", **changes: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": b"",
        "headers": [],
    }
    scope.update(changes)
    return scope


def _serve(app: Any, scope: dict[str, Any]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _answering(status: int, then: Any = None) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if then is not None:
            then(scope)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


ALLOW = Decision("d1", True, (), ("p",), "task-1", None)
DENY = Decision("d2", False, ("scope.action",), ("p",), "task-2", Refusal.FORBIDDEN)


def test_a_line_per_request_with_its_decision_after_the_answer() -> None:
    with access_lines() as lines:
        sent = _serve(
            AccessLog(_answering(200, lambda s: record_decision(s, ALLOW)), "api"),
            _scope(),
        )
        assert sent[0]["status"] == 200
        _serve(AccessLog(_answering(403, lambda s: record_decision(s, DENY)), "api"), _scope())
    allowed, denied = lines.fields()
    assert allowed == {
        "listener": "api",
        "method": "GET",
        "path": "/v1/things",
        "status": 200,
        "task": "task-1",
        "decision": "allow",
        "reason": None,
        "latency_ms": allowed["latency_ms"],
    }
    assert 0 <= allowed["latency_ms"] < 5000
    assert (denied["status"], denied["decision"], denied["task"], denied["reason"]) == (
        403,
        "deny",
        "task-2",
        "scope.action",
    )
    text = lines.rendered()[0]
    assert text.endswith("ms")
    assert 'api "GET /v1/things" 200 allow task=task-1 reason=-' in text


def test_refusals_errors_and_no_decision() -> None:
    with access_lines() as lines:
        _serve(
            AccessLog(_answering(401, lambda s: record_refusal(s, "auth.missing")), "x"), _scope()
        )
        _serve(AccessLog(_answering(404, lambda s: record_error(s, "not_found")), "x"), _scope())
        _serve(AccessLog(_answering(200), "x"), _scope())
    refused, missing, plain = lines.fields()
    assert (refused["decision"], refused["reason"], refused["task"]) == (
        "deny",
        "auth.missing",
        None,
    )
    assert (missing["decision"], missing["reason"]) == ("none", "not_found")
    assert (plain["decision"], plain["reason"], plain["task"]) == ("none", None, None)


def test_the_query_is_never_logged_and_a_path_cannot_forge_a_line() -> None:
    secret = "access_token=eyJhbGciOi.secret.part"
    with access_lines() as lines:
        _serve(AccessLog(_answering(200), "gw"), _scope(b"/a?" + secret.encode()))
        _serve(AccessLog(_answering(200), "gw"), _scope(query_string=secret.encode()))
        # a raw path (a server that hands one over undecoded) with a line break and quotes
        forged = b'/x\n2026-01-01T00:00:00.000Z INFO zerolane.access: "GET /admin" 200'
        _serve(AccessLog(_answering(200), "gw"), _scope(forged))
        _serve(AccessLog(_answering(200), "gw"), _scope(b"/" + b"a" * 5000))
    first, second, third, long = lines.fields()
    assert first["path"] == "/a"
    assert second["path"] == "/v1/things"
    assert "\n" not in third["path"]
    assert '"' not in third["path"]
    assert third["path"].startswith("/x\\x0a")
    assert len(long["path"]) < 600
    for line in lines.rendered():
        assert secret not in line
        assert "secret" not in line
        assert "\n" not in line


def test_the_userinfo_and_fragment_of_a_raw_target_are_never_logged() -> None:
    """Review finding: the gateway's protocol hands over the request target as sent
    (RawTargetHttpToolsProtocol), so an absolute-form target's userinfo or a fragment
    reached the access line; the plain path of the twin is logged whole."""
    with access_lines() as lines:
        absolute = b"http://alice:s3cret@api.example/x?q=1"
        _serve(AccessLog(_answering(400), "gw"), _scope(absolute))
        _serve(AccessLog(_answering(400), "gw"), _scope(b"/x#access_token=s3cret"))
        _serve(AccessLog(_answering(200), "gw"), _scope(b"/files/a@b/c"))
    absolute_line, fragment, twin = lines.fields()
    assert absolute_line["path"] == "http://***@api.example/x"
    assert fragment["path"] == "/x"
    assert twin["path"] == "/files/a@b/c"
    for line in lines.rendered():
        assert "s3cret" not in line


def test_a_failing_app_is_a_500_line_and_the_error_goes_on() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("bug")

    with access_lines() as lines, pytest.raises(RuntimeError):
        _serve(AccessLog(broken, "api"), _scope())
    (line,) = lines.fields()
    assert (line["status"], line["reason"]) == (500, "server.error")


def test_nothing_is_noted_when_access_lines_are_off() -> None:
    logger = logging.getLogger("zerolane.access")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        seen: list[Any] = []
        _serve(AccessLog(_answering(200, lambda s: seen.append(s.get("state"))), "gw"), _scope())
        assert seen == [None]  # the off path adds nothing to the request
    finally:
        logger.setLevel(level)


def test_other_scope_types_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    with access_lines() as lines:
        asyncio.run(AccessLog(app, "gw")({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert seen == ["lifespan"]
    assert lines.records == []


def _gateway_line(lines: AccessLines, path: str) -> dict[str, Any]:
    return lines.wait(lambda f: f["listener"] == "gateway" and f["path"] == path)


def test_the_http_gateway_logs_allow_and_deny_without_credentials(stack: Stack) -> None:
    with access_lines() as lines, stack.task() as task:
        url = stack.url("/finance/reports/q3")
        allowed_headers = task.headers("GET", url)
        allowed = httpx.get(url + "?api_key=very-secret-key", headers=allowed_headers)
        assert allowed.status_code == 200
        allow = _gateway_line(lines, "/finance/reports/q3")
        # the twin: the same task, an action outside its scope
        denied_headers = task.headers("DELETE", url)
        denied = httpx.delete(url, headers=denied_headers)
        assert denied.status_code == 403
        deny = lines.wait(lambda f: f["method"] == "DELETE" and f["listener"] == "gateway")
        refused = httpx.get(stack.url("/finance/reports/q3"))  # no credentials: 401
        assert refused.status_code == 401
        unauth = lines.wait(lambda f: f["status"] == 401 and f["listener"] == "gateway")
    assert (allow["status"], allow["decision"], allow["task"], allow["reason"]) == (
        200,
        "allow",
        task.task_id,
        None,
    )
    assert (deny["status"], deny["decision"], deny["task"], deny["reason"]) == (
        403,
        "deny",
        task.task_id,
        "scope.action",
    )
    assert (unauth["decision"], unauth["reason"], unauth["task"]) == ("deny", "auth.missing", None)
    secrets = [
        "very-secret-key",
        allowed_headers["Authorization"].split()[-1],
        allowed_headers["DPoP"],
        denied_headers["DPoP"],
    ]
    for line in lines.rendered():
        assert not any(secret in line for secret in secrets), line


def test_json_lines_parse(stack: Stack) -> None:
    with access_lines() as lines:
        assert httpx.get(stack.url("/healthz")).status_code == 200
        lines.wait(lambda f: f["path"] == "/healthz")
    record = next(r for r in lines.records if "/healthz" in r.getMessage())
    doc = json.loads(JsonFormatter().format(record))
    assert doc["logger"] == "zerolane.access"
    assert (doc["listener"], doc["method"], doc["path"], doc["status"]) == (
        "gateway",
        "GET",
        "/healthz",
        200,
    )
    assert doc["decision"] == "none"
    assert doc["time"].endswith("Z")
    assert isinstance(doc["latency_ms"], float)


def test_no_answer_is_a_line_without_status() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None  # the client left: nothing was answered

    with access_lines() as lines:
        _serve(AccessLog(silent, "gw"), _scope())
    (line,) = lines.fields()
    assert line["status"] is None
    assert '"GET /v1/things" - none' in lines.rendered()[0]


def test_an_allowed_request_whose_upstream_fails_says_why(stack: Stack) -> None:
    with access_lines() as lines, stack.task() as task:
        reply = task.request("GET", stack.url("/dead/x"))
        assert reply.status_code == 502
        dead = _gateway_line(lines, "/dead/x")
        # the twin: the same task, an upstream that answers
        assert task.request("GET", stack.url("/finance/reports/q3")).status_code == 200
        served = _gateway_line(lines, "/finance/reports/q3")
    assert (dead["status"], dead["decision"], dead["task"], dead["reason"]) == (
        502,
        "allow",
        task.task_id,
        "upstream.error",
    )
    assert (served["status"], served["reason"]) == (200, None)
