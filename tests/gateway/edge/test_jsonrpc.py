"""The JSON-RPC edge: a refused call carries the HTTP edge's error object."""

from __future__ import annotations

import dataclasses

from zerolane.decision import Shadow
from zerolane.errors import Refusal
from zerolane.gateway.edge.http import denial
from zerolane.gateway.edge.jsonrpc import (
    FORBIDDEN,
    INVALID_REQUEST,
    UPSTREAM_UNAVAILABLE,
    allow_meta,
    denied,
    invalid_request,
    refused,
    upstream_unavailable,
)
from zerolane.tasks.decisions import Decision

ALLOW = Decision("d1", True, (), ("task.request",), "tsk_1", None)
DENY = Decision("d2", False, ("scope.action",), ("p",), "tsk_1", Refusal.FORBIDDEN)


def test_a_denied_call_has_the_http_error_object_in_its_data() -> None:
    error = denied(DENY, "read_report")
    assert error.code == FORBIDDEN
    assert error.data == {**denial(DENY).body, "policies": ["p"], "status": 403}
    assert "scope.action" in error.message
    failed = denied(ALLOW.failed_closed("audit.write"), "read_report")
    assert (failed.data["status"], failed.data["reason"]) == (503, "audit.write")


def test_refusals_before_a_decision_and_upstream_failures() -> None:
    error = refused("decision.missing", "no decision was made for this call")
    assert (error.code, error.data["reasons"], error.data["decision_id"]) == (
        FORBIDDEN,
        ["decision.missing"],
        None,
    )
    failed = upstream_unavailable(ALLOW, "upstream.closed", "the upstream closed")
    assert failed.code == UPSTREAM_UNAVAILABLE
    assert (failed.data["reason"], failed.data["decision_id"], failed.data["status"]) == (
        "upstream.closed",
        "d1",
        502,
    )


def test_a_malformed_message_is_an_invalid_request() -> None:
    answer = invalid_request("mcp.invalid", "not a JSON-RPC request")
    assert answer["id"] is None
    assert answer["error"]["code"] == INVALID_REQUEST
    assert answer["error"]["data"]["reason"] == "mcp.invalid"


def test_an_allowed_call_names_its_task_and_decision_and_a_shadow_allow_its_reasons() -> None:
    assert allow_meta(ALLOW) == {"dev.zerolane/task": "tsk_1", "dev.zerolane/decision": "d1"}
    shadow = Shadow(("scope.action", "policy.no_permit"), ("tool:tools/delete_report",))
    shadowed = dataclasses.replace(ALLOW, shadow=shadow)
    assert allow_meta(shadowed) == {
        "dev.zerolane/task": "tsk_1",
        "dev.zerolane/decision": "d1",
        "dev.zerolane/shadow": ["scope.action", "policy.no_permit"],
    }
