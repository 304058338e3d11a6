"""A tiny upstream for the nginx test: echoes each request as JSON and logs it to a file.

Run as ``python forward_auth_upstream.py PORT LOGFILE``; every request it receives is
appended to LOGFILE as ``METHOD PATH`` so the test can tell what reached it.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Echo(BaseHTTPRequestHandler):
    log_file: Path

    def _echo(self) -> None:
        with self.log_file.open("a", encoding="utf-8") as log:
            log.write(f"{self.command} {self.path}\n")
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _echo

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the log file is the record."""


def main() -> None:
    port, log_file = int(sys.argv[1]), Path(sys.argv[2])
    Echo.log_file = log_file
    with ThreadingHTTPServer(("127.0.0.1", port), Echo) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
