"""The stderr of a stdio upstream's process: held while it starts, then relayed to the log.

The MCP SDK gives the process the file it is handed as ``errlog`` for its stderr; here
that is the write end of a pipe, read line by line by a daemon thread (one per
process, ending when the process and its children have closed the pipe). Until the
session is initialized the lines are only kept (the last :data:`TAIL_LINES`): a
process that dies while starting is then reported once, by the last line it wrote
(``ModuleNotFoundError: No module named 'x'``), instead of its whole traceback at every
retry. Once it serves, each line is logged at ``info`` on this module's logger, named
after the upstream.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import BinaryIO, TextIO

log = logging.getLogger(__name__)

TAIL_LINES = 20
MAX_LINE = 2000


class StderrRelay:
    """A pipe for one process's stderr; :attr:`file` is what the process gets."""

    def __init__(self, name: str) -> None:
        read_fd, write_fd = os.pipe()  # neither end is inherited by other children
        self.name = name
        self.file: TextIO = os.fdopen(write_fd, "w", encoding="utf-8", errors="replace")
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._lock = threading.Lock()
        self._live = False
        self._ended = threading.Event()
        reader = os.fdopen(read_fd, "rb")
        self._thread = threading.Thread(
            target=self._pump, args=(reader,), name=f"mcp-stderr-{name}", daemon=True
        )
        self._thread.start()

    def release(self) -> None:
        """Close this side's write end (the process has its own copy once spawned)."""
        if not self.file.closed:
            self.file.close()

    def serving(self) -> None:
        """The session is up: from now on every line is logged as it comes."""
        with self._lock:
            self._live = True

    def last_line(self, wait: float) -> str | None:
        """The last non-empty line written, waiting up to ``wait`` s for the pipe to end
        (blocking: call it in a worker thread)."""
        self.release()
        self._ended.wait(wait)
        with self._lock:
            return self._tail[-1] if self._tail else None

    def _pump(self, reader: BinaryIO) -> None:
        try:
            for raw in iter(reader.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip()[:MAX_LINE]
                if not line.strip():
                    continue
                with self._lock:
                    self._tail.append(line)
                    live = self._live
                if live:
                    log.info("MCP upstream %s (stderr): %s", self.name, line)
        except (OSError, ValueError):  # the pipe is gone
            pass
        finally:
            reader.close()
            self._ended.set()
