"""A POST whose body trickles in is answered 408 ``request.body_timeout`` once its time
is up (the body is read before any decision, so a slow client must not hold the request
open), and the same request sent at once is decided as usual."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.gateway.mcp.conftest import Stack
from zerolane.gateway.mcp import transport

BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
BODY_INIT = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "slow-body-test", "version": "1"},
        },
    }
).encode()


def _head(stack: Stack, length: int, credentials: dict[str, str]) -> bytes:
    host = stack.config.public_url.split("://", 1)[1]
    lines = [
        f"POST {stack.config.path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        *(f"{name}: {value}" for name, value in credentials.items()),
        f"Content-Length: {length}",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _exchange(
    stack: Stack, body: bytes, credentials: dict[str, str], *, sent: int | None = None
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` (declared whole), of which only ``sent`` bytes are sent before the
    client waits for the answer (all of them by default)."""
    with socket.create_connection((stack.config.host, stack.config.port), timeout=10) as sock:
        sock.sendall(_head(stack, len(body), credentials) + body[:sent])
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, answer = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(answer) if answer.startswith(b"{") else {}


def test_a_trickled_body_is_refused_in_time(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "BODY_TIMEOUT", 0.5)
    forged = {"Authorization": "DPoP not-a-token", "DPoP": "not-a-proof"}
    status, body = _exchange(stack, BODY, forged, sent=5)
    assert status == 408
    assert body["reason"] == "request.body_timeout"
    # the twin: a task's initialize sent at once is read, decided and answered
    url = stack.config.public_url + stack.config.path
    with stack.agent() as agent, stack.task(agent) as task:
        status, _ = _exchange(stack, BODY_INIT, task.headers("POST", url))
    assert status == 200
