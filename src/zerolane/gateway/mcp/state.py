"""What the enforcement middleware hands the MCP handlers for one HTTP request.

It travels in the ASGI scope, which the SDK's streamable HTTP transport passes on to
each handler as ``ctx.request``; a handler that finds none refuses (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from zerolane.gateway.mcp.mapping import ToolRoute
from zerolane.tasks.decisions import Decision
from zerolane.tokens.rfc9068 import TaskTokenClaims

SCOPE_KEY = "zerolane.mcp"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The decision made for the one ``tools/call`` an HTTP POST carried."""

    request_id: str | int
    name: str
    route: ToolRoute | None
    decision: Decision


@dataclass(frozen=True, slots=True)
class RequestState:
    """The caller of one HTTP request: a verified task holder, or a decided tool call."""

    task_id: str
    claims: TaskTokenClaims | None = None  # verified token (requests other than tools/call)
    call: ToolCall | None = None


def state_of(request: Any) -> RequestState | None:
    """The state the middleware attached to ``ctx.request``, if any."""
    if not isinstance(request, Request):
        return None
    state = request.scope.get(SCOPE_KEY)
    return state if isinstance(state, RequestState) else None
