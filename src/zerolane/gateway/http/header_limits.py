"""The limits of a request head (``[http]``), held while its bytes arrive.

httptools buffers a header's name and value until the header ends and only then
calls back, so a limit checked in the parser's callbacks alone would let a client
stream any amount into memory first. :class:`HeadMeter` counts the raw bytes of a
head before they are fed to the parser: the request line, each header line and
their total are refused the moment they pass their limit, so a connection never
holds more than the limits plus one read from the socket.

:class:`HeadCount` checks the same limits on what the parser hands over (the
target's fragments, each header): it holds for a head the meter did not see from
its first byte (a request pipelined behind another in the same read).

Both raise :class:`HeadRefused`: 414 (``request.line_too_long``) for the request
line, 431 (``request.headers_too_large``) for the headers.
"""

from __future__ import annotations

from zerolane.settings.listener import HttpLimits

LINE_TOO_LONG = "request.line_too_long"
HEADERS_TOO_LARGE = "request.headers_too_large"
HEADER_TIMEOUT = "request.header_timeout"


class HeadRefused(Exception):
    """A request head over one of its limits: the status, reason id and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def _line_too_long(limits: HttpLimits) -> HeadRefused:
    return HeadRefused(
        414,
        LINE_TOO_LONG,
        f"the request line is longer than {limits.max_request_line_bytes} bytes",
    )


def _header_too_long(limits: HttpLimits) -> HeadRefused:
    return HeadRefused(
        431,
        HEADERS_TOO_LARGE,
        f"a header line is longer than {limits.max_header_line_bytes} bytes",
    )


def _headers_too_large(limits: HttpLimits) -> HeadRefused:
    return HeadRefused(
        431,
        HEADERS_TOO_LARGE,
        f"the headers are larger than {limits.max_headers_bytes} bytes together",
    )


def _too_many_headers(limits: HttpLimits) -> HeadRefused:
    return HeadRefused(
        431, HEADERS_TOO_LARGE, f"the request has more than {limits.max_header_count} headers"
    )


class HeadMeter:
    """The raw bytes of one request head, from its first byte to its empty line.

    Lines end at LF (a CR before it is not counted in the line's length); empty lines
    before the request line are skipped, as the parser skips them, but count towards
    the total. After the head's empty line the meter stops looking at lines: bytes
    fed to it then (which only happens if the parser disagrees that the head ended)
    count towards the total, so nothing is ever fed uncounted.
    """

    def __init__(self, limits: HttpLimits) -> None:
        self._limits = limits
        self.reset()

    def reset(self) -> None:
        """Ready for the next head."""
        self._line = 0  # bytes of the current line so far, its LF not included
        self._cr = False  # the last byte of the current line so far is a CR
        self._request_line_done = False
        self._headers = 0
        self._headers_bytes = 0  # header lines with their line endings (and empty lines)
        self.ended = False

    def feed(self, data: bytes) -> None:
        """Count ``data``, the next bytes of the head; raise :class:`HeadRefused` as
        soon as a limit is passed. Bytes after the head's empty line are not looked
        at (they are the body, or the next request)."""
        if self.ended:
            self._add(len(data))
            return
        start = 0
        while not self.ended:
            end = data.find(b"\n", start)
            stop = len(data) if end < 0 else end
            if stop > start:
                self._line += stop - start
                self._cr = data[stop - 1] == 0x0D
            if end < 0:
                self._check_open_line()
                return
            self._end_line()
            start = end + 1

    def _length(self) -> int:
        """The current line's length without a CR ending it."""
        return self._line - 1 if self._cr else self._line

    def _check_open_line(self) -> None:
        # the line may still end in CR LF: its CR does not count towards its length
        if not self._request_line_done:
            if self._length() > self._limits.max_request_line_bytes:
                raise _line_too_long(self._limits)
            return
        length = self._length()
        if length > self._limits.max_header_line_bytes:
            raise _header_too_long(self._limits)
        # a header line (not the empty line ending the head) adds itself and its LF
        if length and self._headers_bytes + self._line + 1 > self._limits.max_headers_bytes:
            raise _headers_too_large(self._limits)

    def _end_line(self) -> None:
        length, ending = self._length(), self._line - self._length() + 1
        self._line, self._cr = 0, False
        if not self._request_line_done:
            if length == 0:  # an empty line before the request line
                self._add(ending)
                return
            if length > self._limits.max_request_line_bytes:
                raise _line_too_long(self._limits)
            self._request_line_done = True
            return
        if length == 0:
            self.ended = True
            return
        if length > self._limits.max_header_line_bytes:
            raise _header_too_long(self._limits)
        self._headers += 1
        if self._headers > self._limits.max_header_count:
            raise _too_many_headers(self._limits)
        self._add(length + ending)

    def _add(self, count: int) -> None:
        self._headers_bytes += count
        if self._headers_bytes > self._limits.max_headers_bytes:
            raise _headers_too_large(self._limits)


class HeadCount:
    """The limits checked on what the parser reports of one head: the target as its
    fragments arrive, then each header (its line counted as ``name:value`` and a CR
    LF, never more than it took on the wire)."""

    def __init__(self, limits: HttpLimits) -> None:
        self._limits = limits
        self.reset()

    def reset(self) -> None:
        self._target = 0
        self._headers = 0
        self._headers_bytes = 0

    def target(self, fragment: bytes) -> None:
        self._target += len(fragment)
        if self._target > self._limits.max_request_line_bytes:
            raise _line_too_long(self._limits)

    def header(self, name: bytes, value: bytes) -> None:
        line = len(name) + 1 + len(value)
        if line > self._limits.max_header_line_bytes:
            raise _header_too_long(self._limits)
        self._headers += 1
        if self._headers > self._limits.max_header_count:
            raise _too_many_headers(self._limits)
        self._headers_bytes += line + 2
        if self._headers_bytes > self._limits.max_headers_bytes:
            raise _headers_too_large(self._limits)
