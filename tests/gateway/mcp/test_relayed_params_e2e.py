"""What an agent sends passes upstream only as the protocol defines it: the gateway is
not a channel for data its decisions did not see.

Undecided requests carry only their defined params (``logging/setLevel`` a level from
the enum, ``resources/unsubscribe`` a URI the session subscribed to,
``notifications/roots/list_changed`` nothing), decided ones only their method's params
(and of ``_meta`` the progress token), and an upstream is told only the capabilities
the gateway relays. Each refusal has its allowed twin.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.features import WATCHED, Features, running
from zerolane.gateway.mcp.session import client_capabilities
from zerolane.sdk import Task

pytestmark = pytest.mark.e2e

SECRET_DATA = "CONFIDENTIAL-Q3-NUMBERS"


@pytest.fixture(scope="module")
def features(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Features]:
    with running(stack, tmp_path_factory.mktemp("relayed")) as found:
        yield found


class Raw:
    """An agent speaking raw JSON-RPC to the gateway, signing each request."""

    def __init__(self, features: Features, task: Task) -> None:
        self.url, self.task = features.url, task
        self.session_id = ""
        self.ids = 0

    def post(self, message: dict[str, Any]) -> httpx2.Response:
        headers = {
            "Accept": "application/json, text/event-stream",
            **self.task.headers("POST", self.url),
            "mcp-protocol-version": "2025-11-25",
        }
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        return httpx2.post(self.url, json=message, headers=headers, timeout=30)

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.ids, "method": method}
        if params is not None:
            message["params"] = params
        reply = self.post(message)
        assert reply.status_code == 200, reply.text
        answer: dict[str, Any] = reply.json()
        return answer

    def open(self, capabilities: dict[str, Any]) -> None:
        reply = self.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": capabilities,
                    "clientInfo": {"name": "raw", "version": "1"},
                },
            }
        )
        assert reply.status_code == 200, reply.text
        self.session_id = reply.headers["mcp-session-id"]


def upstream_saw(features: Features, method: str) -> list[dict[str, Any]]:
    return features.upstream.recorder.methods(method)


def test_only_the_relayed_capabilities_reach_an_upstream(features: Features) -> None:
    offered = {
        "sampling": {"context": {}, "exfil": SECRET_DATA},
        "elicitation": {"form": {}, "url": {"x": SECRET_DATA}},
        "roots": {"listChanged": True, "note": SECRET_DATA},
        "experimental": {"x": SECRET_DATA},
    }
    assert client_capabilities(offered) == {
        "sampling": {"context": {}},
        "elicitation": {"form": {}, "url": {}},
        "roots": {"listChanged": True},
    }
    with features.task() as task:
        before = len(upstream_saw(features, "initialize"))
        Raw(features, task).open(offered)
        initialized = upstream_saw(features, "initialize")[before:]
    assert len(initialized) == 1  # the agent's own upstream session was opened
    told = initialized[0]["params"]["capabilities"]
    assert told == client_capabilities(offered)
    assert SECRET_DATA not in str(initialized)


def test_undecided_requests_carry_only_their_defined_params(features: Features) -> None:
    with features.task() as task:
        agent = Raw(features, task)
        agent.open({"roots": {"listChanged": True}})
        # unsubscribing from a URI the session never subscribed to: refused, not relayed
        before = len(upstream_saw(features, "resources/unsubscribe"))
        refused = agent.request("resources/unsubscribe", {"uri": f"res://{SECRET_DATA}"})
        assert refused["error"]["code"] == -32602
        assert len(upstream_saw(features, "resources/unsubscribe")) == before
        # the twin: subscribed first (listed, so routed), then unsubscribed; extra keys
        # stay behind
        agent.request("resources/list")
        assert "result" in agent.request("resources/subscribe", {"uri": WATCHED})
        agent.request("resources/unsubscribe", {"uri": WATCHED, "more": SECRET_DATA})
        [relayed] = upstream_saw(features, "resources/unsubscribe")[before:]
        assert relayed["params"] == {"uri": WATCHED}  # relayed (this upstream then refuses it)

        # a log level out of the enum is refused; a good one goes alone
        bad = agent.request("logging/setLevel", {"level": SECRET_DATA})
        assert bad["error"]["code"] == -32602
        agent.request("logging/setLevel", {"level": "info", "more": SECRET_DATA})
        levels = upstream_saw(features, "logging/setLevel")
        assert all(m["params"] == {"level": "info"} for m in levels)

        # roots changed: relayed without the agent's params
        note = {
            "jsonrpc": "2.0",
            "method": "notifications/roots/list_changed",
            "params": {"exfil": SECRET_DATA},
        }
        assert agent.post(note).status_code == 202
        changed = upstream_saw(features, "notifications/roots/list_changed")
        assert changed
        assert all("params" not in m or not m["params"] for m in changed)
    assert SECRET_DATA not in str(features.upstream.recorder.messages)


def test_a_decided_request_carries_only_its_methods_params(features: Features) -> None:
    with features.task() as task:
        agent = Raw(features, task)
        agent.open({})
        agent.request("resources/list")
        read = agent.request(
            "resources/read",
            {"uri": WATCHED, "exfil": SECRET_DATA, "_meta": {"progressToken": 3, "x": SECRET_DATA}},
        )
        assert "result" in read, read
        relayed = upstream_saw(features, "resources/read")[-1]
        assert relayed["params"] == {"uri": WATCHED, "_meta": {"progressToken": 3}}
    assert SECRET_DATA not in str(features.upstream.recorder.messages)


def test_an_agent_session_opens_upstream_sessions_only_where_its_task_can_act(
    features: Features, stack: Stack
) -> None:
    """A task whose scope names no action of the ``features`` server opens no session
    with it: nothing of the agent reaches a server it can do nothing on."""
    from tests.gateway.mcp.test_resumable_e2e import playbook, task_for

    playbook(stack.deployment, "conformance-only", "conformance", ["test_simple_text"])
    with stack.agent() as agent:
        narrow = task_for(
            agent, features.gateway, "conformance-only", ["mcp:conformance/test_simple_text"]
        )
        before = len(upstream_saw(features, "initialize"))
        raw = Raw(features, narrow)
        raw.open({})
        tools = raw.request("tools/list")["result"]["tools"]
        assert [t["name"] for t in tools] == ["test_simple_text"]
        assert len(upstream_saw(features, "initialize")) == before  # never opened
        narrow.complete()
    with features.task() as task:  # the twin: a task with actions there opens one
        Raw(features, task).open({})
        assert len(upstream_saw(features, "initialize")) == before + 1
