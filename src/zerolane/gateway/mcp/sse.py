"""Reading an upstream's ``text/event-stream`` as the MCP streamable HTTP transport uses it.

The WHATWG event-stream rules (HTML, "Server-sent events"): lines end with CRLF, LF or
CR; a leading byte order mark is dropped; a line starting with ``:`` is a comment; a
line without ``:`` is a field with an empty value; one space after the ``:`` is not part
of the value; ``data`` lines join with LF; a blank line dispatches the event; the end
of the stream discards an unfinished one.

What MCP adds (2025-11-25): a server that can resume its streams opens each with a
*priming* event (an ``id`` and empty data) and may close the stream after any event
with an ``id``; the client then reconnects with that id as ``Last-Event-ID``, waiting
the ``retry`` the server asked for. So an event whose data is empty is never a
message, and :class:`EventStream` keeps the last event id and the reconnection time
of one logical stream across the connections it is read from.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable

import mcp_types as types
from mcp import MCPError

BOM = b"\xef\xbb\xbf"
#: the event types that carry JSON-RPC messages (no ``event`` field means ``message``)
MESSAGE_TYPES = (b"", b"message")
#: a ``retry`` longer than this many digits is taken as "very long" (no huge int parsing)
_RETRY_DIGITS = 9


class EventStream:
    """One event stream, possibly read over several connections: the messages of each,
    the last event id dispatched (``""``: none) and the reconnection time the server
    asked for (``retry_ms``; None: it did not)."""

    def __init__(self, max_bytes: int) -> None:
        self.last_event_id = ""
        self.retry_ms: int | None = None
        self.max_bytes = max_bytes

    async def messages(self, chunks: AsyncIterable[bytes]) -> AsyncGenerator[bytes, None]:
        """The data of each message event of one connection, read in ``chunks``.

        Events of another type and events with empty data (priming events, keep-alives)
        are not messages, but their ``id`` is kept all the same. An event or a line
        larger than the limit raises :class:`MCPError`.
        """
        parser = _Connection(self)
        async for chunk in chunks:
            for message in parser.feed(chunk):
                yield message
        for message in parser.end():
            yield message


class _Connection:
    """The parser of one connection's bytes, dispatching into its :class:`EventStream`."""

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream
        self._pending = bytearray()
        self._data: list[bytes] = []
        self._event = b""
        self._id = stream.last_event_id  # the last event id buffer
        self._size = 0
        self._at_start = True

    def feed(self, chunk: bytes) -> list[bytes]:
        pending = self._pending
        pending += chunk
        if self._at_start:
            if len(pending) < len(BOM) and BOM.startswith(pending):
                return []  # maybe a BOM cut in two: wait for the rest
            if pending.startswith(BOM):
                del pending[: len(BOM)]
            self._at_start = False
        found: list[bytes] = []
        start = 0
        while (end := _line_end(pending, start)) is not None:
            line_end, next_start = end
            message = self._line(bytes(pending[start:line_end]))
            start = next_start
            if message is not None:
                found.append(message)
        del pending[:start]
        if len(pending) > self._stream.max_bytes:
            raise MCPError(types.INTERNAL_ERROR, "an upstream SSE line is too long")
        return found

    def end(self) -> list[bytes]:
        """The stream ended: a last CR still ends its line; an unfinished event is dropped."""
        if self._pending.endswith(b"\r"):
            return self.feed(b"\n")
        return []

    def _line(self, line: bytes) -> bytes | None:
        if not line:  # a blank line dispatches the event
            self._stream.last_event_id = self._id
            message = b"\n".join(self._data)
            kind = self._event
            self._data, self._event, self._size = [], b"", 0
            return message if message and kind in MESSAGE_TYPES else None
        field, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if field == b"data":
            self._size += len(value) + 1  # its line feed: empty data lines grow it too
            if self._size > self._stream.max_bytes:
                raise MCPError(types.INTERNAL_ERROR, "an upstream SSE event is too large")
            self._data.append(value)
        elif field == b"event":
            self._event = value
        elif field == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif field == b"retry" and value.isdigit():  # only digits, else ignored
            long = len(value) > _RETRY_DIGITS
            self._stream.retry_ms = 10**_RETRY_DIGITS if long else int(value)
        # a comment (an empty field name) and any other field are ignored
        return None


def _line_end(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """Where the line from ``start`` ends and the next begins (None: not complete yet;
    a CR at the very end waits for the next chunk, which may begin with its LF)."""
    lf = buffer.find(b"\n", start)
    cr = buffer.find(b"\r", start, lf if lf >= 0 else len(buffer))
    if cr >= 0:
        if cr + 1 == len(buffer):
            return None
        return cr, cr + 2 if buffer[cr + 1] == 0x0A else cr + 1
    if lf >= 0:
        return lf, lf + 1
    return None
