"""A client that drops its upload mid-body: no traceback, nothing complete goes upstream.

A body the HTTP gateway reads before deciding (declared, up to 64 KiB: a human approval
binds its digest) is never decided nor forwarded when the client leaves mid-upload; a
larger or chunked one is decided on the request head (the allow audited, the call spent)
and streamed, and the upstream request is cut off so the upstream never sees a complete
body.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.gateway.conftest import Stack, build_request
from tests.gateway.task_home import API, control_plane
from tests.server_logs import drop_upload, server_logs
from zerolane.cli.background import BackgroundApp, free_port
from zerolane.gateway.forward_auth import create_app
from zerolane.gateway.forward_auth_config import parse_config

pytestmark = pytest.mark.e2e


def _upload_head(stack: Stack, headers: list[tuple[str, str]]) -> bytes:
    return build_request("POST", "/finance/upload", headers)


@pytest.mark.parametrize(
    ("framing", "forwarded"),
    [
        ([("Content-Length", "1000")], 0),  # read whole before forwarding: nothing goes
        ([("Content-Length", "100000")], 1),  # streamed: the upstream request is cut off
        ([("Transfer-Encoding", "chunked")], 1),
    ],
    ids=["buffered", "streamed", "chunked"],
)
def test_http_gateway_upload_dropped(
    stack: Stack, framing: list[tuple[str, str]], forwarded: int
) -> None:
    count, complete = stack.upstream.count(), stack.upstream.complete()
    with stack.task() as task, server_logs() as logs:
        url = stack.url("/finance/upload")
        head = _upload_head(stack, [*task.headers("POST", url).items(), *framing])
        chunked = framing[0][0] == "Transfer-Encoding"
        drop_upload(stack.gateway.port, head, b"a\r\n0123456789\r\n" if chunked else b"0123456789")
        text = logs.getvalue()
    assert "Traceback" not in text
    assert "client left before its request body was complete" in text
    assert stack.upstream.complete() == complete  # no upstream saw a whole request
    assert stack.upstream.count() == count + forwarded
    # the legitimate twin: the same upload, complete, goes through
    with stack.task() as task:
        reply = task.request("POST", stack.url("/finance/upload"), content=b"b" * 100_000)
        assert reply.status_code == 200, reply.text
        assert reply.json()["body_length"] == 100_000
    assert stack.upstream.complete() == complete + 1


def test_forward_auth_upload_dropped(tmp_path_factory: pytest.TempPathFactory) -> None:
    config = parse_config(
        {
            "public_url": "https://api.example.org",
            "destination": API,
            "proxy": "nginx",
            "routes": [
                {"method": "*", "path": "/files/{a}", "action": "read", "resource": "f/{a}"}
            ],
        }
    )
    with control_plane(tmp_path_factory.mktemp("fa-drop") / "home") as plane:
        app = create_app(config, plane.deployment.decider, plane.deployment.audit)
        port = free_port()
        with BackgroundApp(app, port=port), server_logs() as logs:
            head = build_request("POST", "/forward-auth", [("Content-Length", "100000")])
            drop_upload(port, head)
            text = logs.getvalue()
            reply = httpx.get(f"http://127.0.0.1:{port}/forward-auth")  # still answering
    assert "Traceback" not in text
    assert reply.status_code == 403
    assert json.loads(reply.text)["reason"] == "forward_auth.headers"


def test_http_gateway_upload_dropped_after_the_upstream_answered(stack: Stack) -> None:
    """The upstream answers before the body is in; then the client hangs up."""
    with stack.task() as task, server_logs() as logs:
        url = stack.url("/finance/early")
        headers = [*task.headers("POST", url).items(), ("Content-Length", "100000")]
        with socket.create_connection(("127.0.0.1", stack.gateway.port), timeout=5) as sock:
            sock.sendall(build_request("POST", "/finance/early", headers) + b"0123456789")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # the answer has started
        time.sleep(0.8)  # the upstream's answer ends meanwhile
        text = logs.getvalue()
    assert "Traceback" not in text
    assert "client left before its request body was complete" in text
    # the twin: a client that sends the whole body gets the whole answer
    with stack.task() as task:
        reply = task.request("POST", stack.url("/finance/early"), content=b"x" * 100_000)
        assert (reply.status_code, reply.content) == (200, b"early late")
