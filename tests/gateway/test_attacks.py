"""Normalization and header attacks: each is refused (or neutralized) and never reaches
the upstream as something else, while its legitimate twin is allowed and forwarded.

Requests go over raw sockets, byte for byte, so no client library cleans them first;
every attack carries a valid task token and a fresh proof for exactly its own URL, so
the refusal is the attack's, not a missing credential's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.gateway.conftest import RawResponse, Stack, build_request, raw_request
from zerolane.sdk import Task

pytestmark = pytest.mark.e2e
TWIN = "/finance/reports/q3"

PATH_ATTACKS = [
    ("dot-dot", "/finance/reports/../admin"),
    ("dot", "/finance/./reports/q3"),
    ("encoded dot-dot", "/finance/reports/%2e%2e/admin"),
    ("encoded dot-dot upper", "/finance/reports/%2E%2E/admin"),
    ("half-encoded dot-dot", "/finance/reports/%2E./admin"),
    ("encoded slash", "/finance/reports/q3%2fadmin"),
    ("encoded slash upper", "/finance/reports/q3%2Fadmin"),
    ("encoded backslash", "/finance/reports/q3%5cadmin"),
    ("duplicate slash", "/finance//reports/q3"),
    ("path parameter", "/finance/reports/q3;jsessionid=abc"),
    ("encoded path parameter", "/finance/reports/q3%3Bjsessionid=abc"),
    ("backslash", "/finance/reports\\q3"),
    ("double encoding", "/finance/reports/%252e%252e/admin"),
    ("encoded NUL", "/finance/reports/q3%00.pdf"),
    ("encoded control", "/finance/reports/q3%0D%0AX-Injected:1"),
    ("non-ASCII", "/finance/reports/q%C3%A9"),
    ("overlong UTF-8 dot", "/finance/reports/%C0%AE%C0%AE/admin"),
    ("encoded unreserved", "/finance/reports/%71%33"),
    ("lowercase hex", "/finance/reports/q3%c3%a9"),
    ("absolute form", "http://127.0.0.1/finance/reports/q3"),
    ("fragment", "/finance/reports/q3#x"),
]


def _send(
    stack: Stack,
    task: Task,
    method: str,
    target: str,
    headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
    body: bytes = b"",
    signed_path: str | None = None,
) -> RawResponse:
    """``method target`` with the task's token and a proof for the gateway URL of it."""
    path = signed_path or target
    auth = task.headers(method, stack.url(path))
    all_headers = [*auth.items(), *headers]
    return raw_request(stack.gateway.port, build_request(method, target, all_headers, body))


def _echo(response: RawResponse) -> dict[str, Any]:
    assert response.status, response
    echo: dict[str, Any] = json.loads(response.body)
    return echo


def _echoed_headers(response: RawResponse) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in _echo(response)["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    return seen


@pytest.fixture
def task(stack: Stack) -> Any:
    with stack.task() as opened:
        yield opened


def _twin(stack: Stack, task: Task) -> None:
    before = stack.upstream.count()
    response = _send(stack, task, "GET", TWIN)
    assert response.status == 200, response.body
    assert _echo(response)["path"] == "/fin/reports/q3"
    assert stack.upstream.count() == before + 1


@pytest.mark.parametrize(("name", "target"), PATH_ATTACKS, ids=[a[0] for a in PATH_ATTACKS])
def test_path_attacks_are_refused_and_never_forwarded(
    stack: Stack, task: Task, name: str, target: str
) -> None:
    before = stack.upstream.count()
    signed = None if target.startswith("/") and "#" not in target else TWIN
    response = _send(stack, task, "GET", target, signed_path=signed)
    assert response.status == 400, (name, response.status, response.body)
    assert json.loads(response.body)["reason"] == "request.path"
    assert stack.upstream.count() == before
    _twin(stack, task)


@pytest.mark.parametrize(
    "header",
    ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"],
)
def test_a_method_override_is_decided_and_forwarded_as_the_real_method(
    stack: Stack, task: Task, header: str
) -> None:
    # DELETE is out of the task's scope: had the override counted, this would be a 403
    response = _send(stack, task, "GET", TWIN, [(header, "DELETE")])
    assert response.status == 200, response.body
    assert _echo(response)["method"] == "GET"
    assert header.lower() not in _echoed_headers(response)
    _twin(stack, task)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Original-URL", "/fin/admin"),
        ("X-Original-URI", "/fin/admin"),
        ("X-Rewrite-URL", "/fin/admin"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Prefix", "/admin"),
        ("Forwarded", "for=10.0.0.1;host=evil.example;proto=https"),
        ("X-Real-IP", "10.0.0.1"),
        ("X-Zerolane-Task", "tsk_forged"),
        ("X-Api-Key", "zlk_tsk_forged.99999999999.AAAA"),
    ],
)
def test_steering_headers_never_reach_the_upstream(
    stack: Stack, task: Task, header: str, value: str
) -> None:
    response = _send(stack, task, "GET", TWIN, [(header, value)])
    assert response.status == 200, response.body
    echo = _echo(response)
    assert echo["path"] == "/fin/reports/q3"
    seen = _echoed_headers(response)
    assert value not in seen.get(header.lower(), [])
    assert seen["x-zerolane-task"] == [task.task_id]
    assert len(seen["x-api-key"]) == 1
    _twin(stack, task)


def test_a_spoofed_host_changes_nothing(stack: Stack, task: Task) -> None:
    auth = task.headers("GET", stack.url(TWIN))
    request = f"GET {TWIN} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n"
    request += "".join(f"{k}: {v}\r\n" for k, v in auth.items()) + "\r\n"
    response = raw_request(stack.gateway.port, request.encode())
    assert response.status == 200, response.body
    assert _echoed_headers(response)["host"] == [f"127.0.0.1:{stack.upstream.port}"]


@pytest.mark.parametrize(
    ("name", "framing"),
    [
        ("CL and TE", [("Content-Length", "5"), ("Transfer-Encoding", "chunked")]),
        ("TE and CL", [("Transfer-Encoding", "chunked"), ("Content-Length", "5")]),
        ("differing CLs", [("Content-Length", "5"), ("Content-Length", "6")]),
        ("CL list", [("Content-Length", "5, 6")]),
    ],
)
def test_ambiguous_framing_is_refused_and_never_forwarded(
    stack: Stack, task: Task, name: str, framing: list[tuple[str, str]]
) -> None:
    before = stack.upstream.count()
    response = _send(stack, task, "POST", "/finance/upload", framing, b"5\r\nhello\r\n0\r\n\r\n")
    assert response.status == 400, (name, response.status, response.body)
    if response.body.startswith(b"{"):  # else refused by the HTTP parser before the app
        assert json.loads(response.body)["reason"] == "request.framing"
    assert stack.upstream.count() == before
    twin = _send(stack, task, "POST", "/finance/upload", [("Content-Length", "5")], b"hello")
    assert twin.status == 200, twin.body
    assert _echo(twin)["body_length"] == 5
    assert stack.upstream.count() == before + 1


def test_a_chunked_body_is_forwarded_chunked(stack: Stack, task: Task) -> None:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    response = _send(
        stack, task, "POST", "/finance/upload", [("Transfer-Encoding", "chunked")], body
    )
    assert response.status == 200, response.body
    assert _echo(response)["body_length"] == 11
    assert "content-length" not in _echoed_headers(response)
