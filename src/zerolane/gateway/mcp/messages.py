"""Reading one MCP POST body: a single JSON-RPC 2.0 message, checked before it is relayed.

The gateway decides on exactly the bytes it read, so they are read strictly: a body
is one JSON object (JSON-RPC batches are refused, so one proof never covers several
calls), duplicate keys are refused (parsers differ on which duplicate wins), and the
message must be a request, a notification or a response as JSON-RPC 2.0 shapes them.
The relay forwards the parsed message as a plain mapping, so fields it does not know
pass through unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from starlette.types import Receive

from zerolane.errors import InvalidInput

TOOLS_CALL = "tools/call"

Kind = Literal["request", "notification", "response"]


class Disconnected(Exception):
    """The client went away before its body was read."""


class TooLarge(Exception):
    """The body is larger than the configured limit."""


@dataclass(frozen=True, slots=True)
class Message:
    """One JSON-RPC message as received: its kind and the raw object."""

    kind: Kind
    raw: dict[str, Any]

    @property
    def method(self) -> str:
        """The method of a request or notification (``""`` for a response)."""
        method = self.raw.get("method")
        return method if isinstance(method, str) else ""

    @property
    def id(self) -> str | int | None:
        found = self.raw.get("id")
        return found if isinstance(found, str | int) and not isinstance(found, bool) else None

    @property
    def params(self) -> dict[str, Any]:
        params = self.raw.get("params")
        return params if isinstance(params, dict) else {}


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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidInput("jsonrpc.duplicate_key", f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def _valid_id(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def parse_message(body: bytes) -> Message:
    """The one JSON-RPC message ``body`` holds; :class:`InvalidInput` for anything else
    (not JSON, a batch, duplicate keys, not a JSON-RPC 2.0 request, notification or
    response, params that are not an object)."""
    try:
        message = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        raise InvalidInput("jsonrpc.invalid", "the body is not valid JSON") from None
    if isinstance(message, list):
        raise InvalidInput("jsonrpc.batch", "JSON-RPC batches are not supported: send one message")
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise InvalidInput("jsonrpc.invalid", "the body is not a JSON-RPC 2.0 message")
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            raise InvalidInput("jsonrpc.invalid", "method must be a non-empty string")
        if "params" in message and not isinstance(message["params"], dict):
            raise InvalidInput("jsonrpc.params", "params must be an object")
        if "result" in message or "error" in message:
            raise InvalidInput("jsonrpc.invalid", "a message is a request or a response, not both")
        if "id" not in message:
            return Message("notification", message)
        if not _valid_id(message["id"]):
            raise InvalidInput("jsonrpc.id", "a request id is a string or an integer")
        return Message("request", message)
    if not _valid_id(message.get("id")) or ("result" in message) == ("error" in message):
        raise InvalidInput("jsonrpc.invalid", "a response has an id and a result or an error")
    if "error" in message and not isinstance(message["error"], dict):
        raise InvalidInput("jsonrpc.invalid", "a response's error is an object")
    return Message("response", message)


def tool_call_of(message: Message) -> ToolCallMessage:
    """The ``tools/call`` request ``message`` is; :class:`InvalidInput` when malformed."""
    request_id = message.id
    params = message.params
    if request_id is None:
        raise InvalidInput("jsonrpc.id", "a tools/call must be a request with an id")
    if not isinstance(params.get("name"), str):
        raise InvalidInput("jsonrpc.params", "a tools/call needs params.name")
    arguments = params.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvalidInput("jsonrpc.params", "tools/call arguments must be an object")
    return ToolCallMessage(request_id, params["name"], arguments)
