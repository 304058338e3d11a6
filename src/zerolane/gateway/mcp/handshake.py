"""The raw JSON-RPC pieces every upstream transport shares: the ``initialize`` request the
gateway sends, what it accepts in answer, and a request's result or error.

The messages are plain dicts (the gateway relays them, so fields it does not know stay
as they are); the ``InitializeResult`` is validated all the same, so a server that does
not speak MCP fails to connect instead of failing later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import mcp_types as types
from mcp import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

#: what a link does with each message the server sends beside an answer
OnMessage = Callable[[dict[str, Any]], Awaitable[None]]

CANCELLED = "notifications/cancelled"
PROGRESS = "notifications/progress"


def initialize_params(
    client_info: types.Implementation, capabilities: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "protocolVersion": LATEST_HANDSHAKE_VERSION,
        "capabilities": dict(capabilities),
        "clientInfo": client_info.model_dump(by_alias=True, exclude_none=True),
    }


def accepted(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The raw ``InitializeResult`` of an answer to ``initialize``; :class:`MCPError` when
    it is an error, not an ``InitializeResult`` or for a protocol revision not spoken."""
    raw = result_of("initialize", answer)
    result = types.InitializeResult.model_validate(raw)
    if result.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
        raise MCPError(
            types.INVALID_REQUEST, f"unsupported protocol version {result.protocol_version}"
        )
    return raw


def result_of(method: str, answer: Mapping[str, Any]) -> dict[str, Any]:
    """The ``result`` of a JSON-RPC answer; its ``error`` raised as :class:`MCPError`."""
    if "error" in answer:
        error = answer["error"] if isinstance(answer["error"], dict) else {}
        code = error.get("code")
        raise MCPError(
            code if isinstance(code, int) and not isinstance(code, bool) else types.INTERNAL_ERROR,
            str(error.get("message", "error")),
            error.get("data"),
        )
    result = answer.get("result")
    if not isinstance(result, dict):
        raise MCPError(types.INTERNAL_ERROR, f"{method}: the answer holds no result object")
    return result


def is_answer(message: Mapping[str, Any]) -> bool:
    """A response or an error (no method), as opposed to a request or a notification."""
    return "method" not in message and ("result" in message or "error" in message)


def is_ping(message: Mapping[str, Any]) -> bool:
    """A server's ``ping`` request (the link answers it itself)."""
    return message.get("method") == "ping" and "id" in message


def pong(message: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message["id"], "result": {}}


def cancelled(request_id: int) -> dict[str, Any]:
    return {"requestId": request_id, "reason": "abandoned by the gateway"}


def progress_token(params: Mapping[str, Any] | None) -> str | int | None:
    """The ``_meta.progressToken`` of a request's params (None: none, or not a token)."""
    return token_of(params.get("_meta") if params is not None else None, "progressToken")


def token_of(holder: object, key: str) -> str | int | None:
    """``holder[key]`` when ``holder`` is an object and that a string or an integer."""
    token = holder.get(key) if isinstance(holder, dict) else None
    return token if isinstance(token, str | int) and not isinstance(token, bool) else None
