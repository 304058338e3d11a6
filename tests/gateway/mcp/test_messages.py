"""Reading one POST body: within its limit, one JSON-RPC 2.0 message, read strictly."""

from __future__ import annotations

import json

import anyio
import pytest
from starlette.types import Message as AsgiMessage
from starlette.types import Receive

from zerolane.errors import InvalidInput
from zerolane.gateway.mcp.messages import (
    Disconnected,
    Message,
    TooLarge,
    parse_message,
    read_body,
    tool_call_of,
)


def body(**message: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **message}).encode()


@pytest.mark.parametrize(
    ("raw", "kind", "method", "request_id"),
    [
        (body(id=7, method="tools/call", params={"name": "t"}), "request", "tools/call", 7),
        (body(id="a", method="tools/list"), "request", "tools/list", "a"),
        (body(id=0, method="ping"), "request", "ping", 0),
        (
            body(method="notifications/initialized"),
            "notification",
            "notifications/initialized",
            None,
        ),
        (body(id="zl-1", result={}), "response", "", "zl-1"),
        (body(id=3, error={"code": -1, "message": "no"}), "response", "", 3),
    ],
)
def test_one_message_is_read_as_its_kind(
    raw: bytes, kind: str, method: str, request_id: str | int | None
) -> None:
    message = parse_message(raw)
    assert (message.kind, message.method, message.id) == (kind, method, request_id)
    assert message.raw == json.loads(raw)  # relayed as it came, unknown fields too


def test_fields_the_gateway_does_not_know_pass_unchanged() -> None:
    raw = body(id=1, method="x/y", params={"a": [1, {"b": None}]}, extra={"k": "v"})
    message = parse_message(raw)
    assert message.raw["extra"] == {"k": "v"}
    assert message.params == {"a": [1, {"b": None}]}
    assert parse_message(body(id=1, method="ping")).params == {}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" + body(id=1, method="tools/call", params={"name": "t"}) + b"]", "jsonrpc.batch"),
        (b"[]", "jsonrpc.batch"),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}',
            "jsonrpc.duplicate_key",
        ),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}',
            "jsonrpc.duplicate_key",
        ),
        (b"{not json", "jsonrpc.invalid"),
        (b"\xff\xfe", "jsonrpc.invalid"),
        ('{"jsonrpc":"2.0","method":"ping"}'.encode("utf-16"), "jsonrpc.invalid"),
        (b'"a string"', "jsonrpc.invalid"),
        (b"[" * 100_000, "jsonrpc.invalid"),  # nested past the parser's depth
        (json.dumps({"id": 1, "method": "ping"}).encode(), "jsonrpc.invalid"),  # no jsonrpc
        (json.dumps({"jsonrpc": "1.0", "id": 1, "method": "ping"}).encode(), "jsonrpc.invalid"),
        (json.dumps({"jsonrpc": 2.0, "id": 1, "method": "ping"}).encode(), "jsonrpc.invalid"),
        (body(id=1, method=""), "jsonrpc.invalid"),
        (body(id=1, method=3), "jsonrpc.invalid"),
        (body(id=True, method="tools/call", params={"name": "t"}), "jsonrpc.id"),
        (body(id=False, method="ping"), "jsonrpc.id"),
        (body(id=None, method="ping"), "jsonrpc.id"),
        (body(id=1.5, method="ping"), "jsonrpc.id"),
        (body(id=[1], method="ping"), "jsonrpc.id"),
        (body(id={"a": 1}, method="ping"), "jsonrpc.id"),
        (body(id=1, method="tools/call", params=[]), "jsonrpc.params"),
        (body(id=1, method="tools/call", params="t"), "jsonrpc.params"),
        (body(method="notifications/x", params=None), "jsonrpc.params"),
        (body(id=1, method="ping", result={}), "jsonrpc.invalid"),  # request and response
        (body(id=1, method="ping", error={"code": 1, "message": "m"}), "jsonrpc.invalid"),
        (body(id=1), "jsonrpc.invalid"),  # a response with neither
        (body(id=1, result={}, error={"code": 1, "message": "m"}), "jsonrpc.invalid"),
        (body(result={}), "jsonrpc.invalid"),  # a response without an id
        (body(id=True, result={}), "jsonrpc.invalid"),
        (body(id=None, error={"code": 1, "message": "m"}), "jsonrpc.invalid"),
        (body(id=1, error="no"), "jsonrpc.invalid"),
    ],
)
def test_ambiguous_or_malformed_bodies_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_message(raw)
    assert caught.value.reason == reason


def test_a_tools_call_is_read() -> None:
    found = tool_call_of(parse_message(body(id=7, method="tools/call", params={"name": "t"})))
    assert (found.request_id, found.name, found.arguments) == (7, "t", {})
    given = parse_message(
        body(id="a", method="tools/call", params={"name": "t", "arguments": {"x": [1]}})
    )
    assert tool_call_of(given).arguments == {"x": [1]}
    null = parse_message(body(id=1, method="tools/call", params={"name": "t", "arguments": None}))
    assert tool_call_of(null).arguments == {}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (Message("notification", {"jsonrpc": "2.0", "method": "tools/call"}), "jsonrpc.id"),
        (parse_message(body(id=1, method="tools/call", params={"name": 3})), "jsonrpc.params"),
        (parse_message(body(id=1, method="tools/call")), "jsonrpc.params"),
        (
            parse_message(body(id=1, method="tools/call", params={"name": "t", "arguments": []})),
            "jsonrpc.params",
        ),
        (
            parse_message(body(id=1, method="tools/call", params={"name": "t", "arguments": "a"})),
            "jsonrpc.params",
        ),
    ],
)
def test_a_malformed_tools_call_is_refused(message: Message, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        tool_call_of(message)
    assert caught.value.reason == reason


def feed(*messages: AsgiMessage) -> Receive:
    queue = list(messages)

    async def receive() -> AsgiMessage:
        return queue.pop(0)

    return receive


def test_the_body_is_read_whole_within_its_limit() -> None:
    async def main() -> None:
        parts = feed(
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"cd", "more_body": False},
            {"type": "http.disconnect"},
        )
        assert await read_body(parts, 4) == b"abcd"  # exactly the limit
        assert (await parts())["type"] == "http.disconnect"  # nothing read past the body
        assert await read_body(feed({"type": "http.request"}), 4) == b""

    anyio.run(main)


def test_a_body_past_its_limit_is_refused_as_soon_as_it_is() -> None:
    async def main() -> None:
        with pytest.raises(TooLarge):
            await read_body(feed({"type": "http.request", "body": b"abcde"}), 4)
        # the chunk that crosses the limit ends the read: the rest is never asked for
        parts = feed(
            {"type": "http.request", "body": b"abc", "more_body": True},
            {"type": "http.request", "body": b"de", "more_body": True},
        )
        with pytest.raises(TooLarge):
            await read_body(parts, 4)

    anyio.run(main)


def test_a_client_gone_before_its_body_is_read_is_noticed() -> None:
    async def main() -> None:
        with pytest.raises(Disconnected):
            await read_body(feed({"type": "http.disconnect"}), 4)
        partial = feed(
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.disconnect"},
        )
        with pytest.raises(Disconnected):
            await read_body(partial, 4)

    anyio.run(main)
