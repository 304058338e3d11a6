"""The JSON-RPC edge: every outcome of a JSON-RPC call (the MCP gateway's) as a
JSON-RPC error.

A call refused by a decision, or before one, is an error with ``code``
:data:`FORBIDDEN`; a call allowed whose upstream failed, :data:`UPSTREAM_UNAVAILABLE`;
a message that is not a valid request, ``-32600`` (JSON-RPC 2.0 section 5.1). The
error's ``data`` is the HTTP edge's error object (:func:`zerolane.gateway.edge.http.error_body`:
``error``, ``reason``, ``message``, ``reasons``, ``decision_id``) plus the decision's
``policies`` and the ``status`` an HTTP enforcement point would have answered, so a
client reads one shape whichever protocol refused it.

An allowed call goes upstream naming its task and decision in its ``_meta``
(:func:`allow_meta`), and a shadow allow the reasons enforcement would have denied it
with (:data:`SHADOW_META`), as the HTTP edge's ``X-Zerolane-Shadow``: an upstream never
mistakes a shadow allow for a plain one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp.shared.exceptions import MCPError

from zerolane.errors import Refusal
from zerolane.gateway.edge.http import denial, error_body
from zerolane.tasks.decisions import Decision

#: a call the gateway refused (JSON-RPC's implementation-defined server error range)
FORBIDDEN = -32003
#: a call allowed whose upstream could not answer
UPSTREAM_UNAVAILABLE = -32004
#: JSON-RPC 2.0: the message is not a valid request object
INVALID_REQUEST = -32600

#: the ``_meta`` keys of an allowed call relayed upstream: its task, its decision and,
#: on a shadow allow, the reasons enforcement would have denied it with (a list)
TASK_META = "dev.zerolane/task"
DECISION_META = "dev.zerolane/decision"
SHADOW_META = "dev.zerolane/shadow"


def allow_meta(decision: Decision) -> dict[str, Any]:
    """What names an allowed call's task and decision in the ``_meta`` it is relayed
    with and, on a shadow allow, what enforcement would have denied it for."""
    meta: dict[str, Any] = {TASK_META: decision.task_id, DECISION_META: decision.decision_id}
    if decision.shadow is not None:
        meta[SHADOW_META] = list(decision.shadow.reasons)
    return meta


def error_data(
    status: int,
    reason: str,
    message: str,
    *,
    reasons: Sequence[str] = (),
    decision_id: str | None = None,
    policies: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``data`` of a refusal: the HTTP edge's error object, ``policies``, ``status``."""
    body = error_body(status, reason, message, reasons=reasons, decision_id=decision_id)
    return {**body, "policies": list(policies), "status": status}


def refused(reason: str, message: str) -> MCPError:
    """A call refused before any decision (no verified task, no decision for it)."""
    data = error_data(403, reason, message)
    return MCPError(FORBIDDEN, f"zerolane: {message}", data)


def denied(decision: Decision, tool: str) -> MCPError:
    """A tools/call refused by its decision (or with no route to call): the deny's
    error object as the HTTP edge renders it, the decision's policies and status."""
    if decision.allowed:  # allowed, but nothing to call: refused all the same
        decision = Decision(
            decision.decision_id,
            False,
            ("request.unmapped",),
            decision.policies,
            decision.task_id,
            Refusal.FORBIDDEN,
        )
    answer = denial(decision)
    data = {**answer.body, "policies": list(decision.policies), "status": answer.status}
    reasons = ", ".join(answer.body["reasons"])
    return MCPError(FORBIDDEN, f"zerolane denied {tool}: {reasons}", data)


def upstream_unavailable(decision: Decision, reason: str, message: str) -> MCPError:
    """An allowed call whose upstream failed (``reason``: ``upstream.*``), answered as
    the HTTP gateway answers a failed upstream (502)."""
    data = error_data(
        502, reason, message, decision_id=decision.decision_id, policies=decision.policies
    )
    return MCPError(UPSTREAM_UNAVAILABLE, f"zerolane: {message}", data)


def invalid_request(reason: str, message: str) -> dict[str, Any]:
    """The JSON-RPC error response to a message that is not a valid request (``id``
    null: it could not be read), with the error object in ``data``."""
    error = {"code": INVALID_REQUEST, "message": message, "data": error_data(400, reason, message)}
    return {"jsonrpc": "2.0", "id": None, "error": error}
