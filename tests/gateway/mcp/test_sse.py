"""Reading an upstream's event stream: the WHATWG rules, and MCP's priming events (an id
and empty data: never a message) with the last event id and ``retry`` kept for resuming."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from mcp import MCPError

from zerolane.gateway.mcp.sse import EventStream

LIMIT = 16 * 1024 * 1024


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def read(stream: EventStream, *parts: bytes) -> list[bytes]:
    """The messages of one connection of ``stream`` that sends ``parts``."""

    async def main() -> list[bytes]:
        return [data async for data in stream.messages(chunks_of(*parts))]

    return anyio.run(main)


def messages(*parts: bytes) -> list[bytes]:
    return read(EventStream(LIMIT), *parts)


def test_a_priming_event_is_no_message_but_its_id_and_retry_are_kept() -> None:
    """What the MCP SDKs send first when resumability is on (the bug: an empty message)."""
    stream = EventStream(LIMIT)
    answer = b'{"jsonrpc":"2.0","id":1,"result":{}}'
    got = read(stream, b"id: s1::0\nretry: 5000\ndata: \n\n", b"event: message\ndata: " + answer)
    assert got == []  # the answer's event is not finished: never dispatched
    assert (stream.last_event_id, stream.retry_ms) == ("s1::0", 5000)
    assert read(stream, b"id: s1::1\ndata:\n\nevent: message\nid: s1::2\ndata: " + answer + b"\n\n")
    assert stream.last_event_id == "s1::2"  # kept across connections, as for a resumed stream


def test_events_without_data_comments_and_other_types_are_no_messages() -> None:
    stream = EventStream(LIMIT)
    got = read(
        stream,
        b": keep-alive\n\n",  # a comment only: nothing
        b"id: 7\n\n",  # no data at all: its id counts all the same
        b"event: ping\nid: 8\ndata: no\n\n",  # another type: skipped, its id kept
        b"data\n\n",  # a field without a colon has an empty value: no data
        b"event: message\ndata: yes\n\n",
    )
    assert got == [b"yes"]
    assert stream.last_event_id == "8"
    assert stream.retry_ms is None


def test_data_lines_join_with_line_feeds() -> None:
    stream = b'data: {\ndata:  "a": 1\ndata:}\n\ndata:x\ndata\ndata: y\n\n'
    assert messages(stream) == [b'{\n "a": 1\n}', b"x\n\ny"]


def test_sse_lines_end_with_crlf_lf_or_cr_even_split_across_chunks() -> None:
    assert messages(b"data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\r", b"\n\r\n") == [
        b"a",
        b"b",
        b"c",
        b"d",
    ]
    assert messages(b"data: e\r\r") == [b"e"]  # a CR ending the stream still ends its line
    stream = b"id: 1\r\nretry: 10\r\ndata: z\r\n\r\n"
    assert messages(*[stream[i : i + 1] for i in range(len(stream))]) == [b"z"]


def test_an_unfinished_event_is_dropped_with_its_id() -> None:
    stream = EventStream(LIMIT)
    assert read(stream, b"id: 1\ndata: a\n\nid: 2\ndata: unfinished") == [b"a"]
    assert stream.last_event_id == "1"  # the stream is resumed after the last whole event


def test_a_leading_byte_order_mark_is_dropped_even_cut_in_two() -> None:
    assert messages(b"\xef\xbb\xbfdata: a\n\n") == [b"a"]
    assert messages(b"\xef", b"\xbb", b"\xbfdata: b\n\n") == [b"b"]
    # only at the start: later it is part of a field name (unknown, ignored)
    assert messages(b"data: c\n\n\xef\xbb\xbfdata: d\n\n") == [b"c"]


def test_ids_and_retries_the_rules_ignore() -> None:
    stream = EventStream(LIMIT)
    read(stream, b"id: 5\nretry: 250\n\n")
    read(stream, b"id: a\x00b\nretry: 1s\nretry: -3\nretry:\n\n")  # NUL in id, not digits
    assert (stream.last_event_id, stream.retry_ms) == ("5", 250)
    read(stream, b"retry: " + b"9" * 5000 + b"\n\n")  # huge: taken as very long, no int parse
    assert stream.retry_ms is not None
    assert stream.retry_ms >= 10**9
    read(stream, b"id\n\n")  # an empty id resets it: nothing to resume from
    assert stream.last_event_id == ""


def test_an_sse_event_of_empty_data_lines_is_bounded() -> None:
    """Empty ``data:`` lines grow the event too (each adds a line feed): no endless growth."""
    with pytest.raises(MCPError, match="too large"):
        read(EventStream(1000), b"data:\n" * 2000)


def test_an_sse_line_is_bounded() -> None:
    with pytest.raises(MCPError, match="too long"):
        read(EventStream(1000), b": " + b"x" * 600, b"y" * 600)
    with pytest.raises(MCPError, match="too large"):
        read(EventStream(1000), b"data: " + b"x" * 2000 + b"\n")
