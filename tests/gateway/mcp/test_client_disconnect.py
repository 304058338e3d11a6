"""The MCP gateway: a client that drops its upload mid-body leaves no traceback."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.gateway.mcp.conftest import Stack
from tests.server_logs import drop_upload, server_logs

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("authorized", [False, True])
@pytest.mark.parametrize("declared", [1000, 100_000])
def test_an_upload_dropped_mid_body(stack: Stack, declared: int, authorized: bool) -> None:
    where = urlsplit(stack.url)
    assert where.port is not None
    lines = [
        f"POST {where.path} HTTP/1.1",
        f"Host: {where.netloc}",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        f"Content-Length: {declared}",
    ]
    with stack.agent() as agent, stack.task(agent) as task, server_logs() as logs:
        if authorized:
            lines += [f"{k}: {v}" for k, v in task.headers("POST", stack.url).items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        used = stack.calls_used(task)
        drop_upload(where.port, head, b'{"jsonrpc"')
        text = logs.getvalue()
        assert stack.calls_used(task) == used  # nothing was decided: no call spent
    assert "Traceback" not in text
    # still serving: an unauthenticated request gets its 401 with a reason
    reply = httpx.post(stack.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert reply.status_code == 401
