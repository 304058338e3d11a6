"""A client streaming a huge request header, for the listeners' memory-bound tests."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
BLOCK = 256 * 1024


def peak_rss_kib(pid: int) -> int:
    """The peak resident set size of process ``pid`` (``VmHWM``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


@dataclass
class Streamed:
    answer: bytes  # what the server answered (until it closed, or 10 s of silence)
    sent: int  # header bytes sent before the server closed the connection


def stream_huge_header(port: int, total: int = 64 * MIB) -> Streamed:
    """Open a request and send a ``total``-byte header value in blocks, reading the
    server's answer meanwhile."""
    block = b"a" * BLOCK
    sent = 0
    answer = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:

        def read() -> None:
            try:
                while chunk := sock.recv(65536):
                    answer.extend(chunk)
            except OSError:
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ")
            while sent < total:
                sock.sendall(block)
                sent += len(block)
        except OSError:
            pass  # the server closed the connection: what was sent is all it saw
        reader.join(15)
    return Streamed(bytes(answer), sent)
