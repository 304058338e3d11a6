"""Finding the tools/call in a POST body exactly as the SDK will read it."""

from __future__ import annotations

import json

import anyio
import pytest
from starlette.types import Message, Receive

from zerolane.errors import InvalidInput
from zerolane.gateway.mcp.messages import (
    Disconnected,
    TooLarge,
    read_body,
    replaying,
    tool_call_of,
)


def body(**message: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **message}).encode()


def test_a_tools_call_is_found() -> None:
    found = tool_call_of(body(id=7, method="tools/call", params={"name": "t", "arguments": {}}))
    assert found is not None
    assert (found.request_id, found.name, found.arguments) == (7, "t", {})
    bare = tool_call_of(body(id="a", method="tools/call", params={"name": "t"}))
    assert bare is not None
    assert bare.arguments == {}


@pytest.mark.parametrize(
    "message",
    [
        body(id=1, method="tools/list"),
        body(id=1, method="initialize", params={}),
        body(method="notifications/initialized"),
        body(id=1, result={}),
    ],
)
def test_other_messages_carry_no_call(message: bytes) -> None:
    assert tool_call_of(message) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" + body(id=1, method="tools/call", params={"name": "t"}) + b"]", "jsonrpc.batch"),
        (b'{"id":1,"method":"tools/list","method":"tools/call"}', "jsonrpc.duplicate_key"),
        (
            b'{"id":1,"method":"tools/call","params":{"name":"a","name":"b"}}',
            "jsonrpc.duplicate_key",
        ),
        (b"{not json", "jsonrpc.invalid"),
        ('{"method":"tools/call"}'.encode("utf-16"), "jsonrpc.invalid"),
        (body(method="tools/call", params={"name": "t"}), "jsonrpc.id"),
        (body(id=True, method="tools/call", params={"name": "t"}), "jsonrpc.id"),
        (body(id=1, method="tools/call", params={"name": 3}), "jsonrpc.params"),
        (body(id=1, method="tools/call"), "jsonrpc.params"),
        (body(id=1, method="tools/call", params={"name": "t", "arguments": []}), "jsonrpc.params"),
    ],
)
def test_ambiguous_or_malformed_bodies_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        tool_call_of(raw)
    assert caught.value.reason == reason


def feed(*messages: Message) -> Receive:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


def test_the_body_is_read_within_its_limit_and_replayed() -> None:
    async def main() -> None:
        parts = feed(
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"cd", "more_body": False},
            {"type": "http.disconnect"},
        )
        assert await read_body(parts, 4) == b"abcd"
        replay = replaying(b"abcd", parts)
        assert (await replay())["body"] == b"abcd"
        assert (await replay())["type"] == "http.disconnect"
        with pytest.raises(TooLarge):
            await read_body(feed({"type": "http.request", "body": b"abcde"}), 4)
        with pytest.raises(Disconnected):
            await read_body(feed({"type": "http.disconnect"}), 4)

    anyio.run(main)
