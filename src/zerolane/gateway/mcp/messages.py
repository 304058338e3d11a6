"""Reading one MCP POST body before the SDK does, to find the ``tools/call`` in it.

The middleware decides on exactly the bytes it then hands to the SDK, so the two must
read them the same way: bodies are one JSON object (JSON-RPC batches are refused, so
one proof never covers several calls), and duplicate keys are refused (parsers differ
on which duplicate wins).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.types import Message, Receive

from zerolane.errors import InvalidInput

TOOLS_CALL = "tools/call"


class Disconnected(Exception):
    """The client went away before its body was read."""


class TooLarge(Exception):
    """The body is larger than the configured limit."""


@dataclass(frozen=True, slots=True)
class ToolCallMessage:
    request_id: str | int
    name: str
    arguments: dict[str, Any]


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, at most ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already-read body once, then the client's events."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidInput("jsonrpc.duplicate_key", f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def tool_call_of(body: bytes) -> ToolCallMessage | None:
    """The ``tools/call`` request ``body`` carries; None when it carries none.

    A body that is not one JSON object, has duplicate keys or a malformed
    ``tools/call`` raises :class:`InvalidInput`: nothing unparsed reaches the SDK.
    """
    try:
        message = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        raise InvalidInput("jsonrpc.invalid", "the body is not valid JSON") from None
    if isinstance(message, list):
        raise InvalidInput("jsonrpc.batch", "JSON-RPC batches are not supported: send one message")
    if not isinstance(message, dict) or message.get("method") != TOOLS_CALL:
        return None
    request_id = message.get("id")
    params = message.get("params")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        raise InvalidInput("jsonrpc.id", "a tools/call must be a request with an id")
    if not isinstance(params, dict) or not isinstance(params.get("name"), str):
        raise InvalidInput("jsonrpc.params", "a tools/call needs params.name")
    arguments = params.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvalidInput("jsonrpc.params", "tools/call arguments must be an object")
    return ToolCallMessage(request_id, params["name"], arguments)
