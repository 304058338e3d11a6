"""What one access line costs a request: the ASGI middleware alone, in process.

    .venv/bin/python bench/access_log.py [--requests 20000] [--rounds 5]

Rows (per request, one event loop, a trivial app answering 200 with a 2-byte body; the
app records an allow decision the way the gateways do):
  bare app                     no middleware (baseline)
  access log off               the middleware with ``zerolane.access`` below info
  text line to a file          the middleware, a handler writing the text line to a file
  json line to a file          the same with the JSON formatter

Best-of-rounds wall and CPU microseconds per request, and the difference to the bare app.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zerolane.gateway.access_log import AccessLog, record_decision
from zerolane.logs import JsonFormatter, TextFormatter
from zerolane.tasks.decisions import Decision

ALLOW = Decision("dec_0123456789abcdef", True, (), ("permit-read",), "tsk_0123456789abcdef", None)
START = {"type": "http.response.start", "status": 200, "headers": []}
BODY = {"type": "http.response.body", "body": b"{}"}


async def app(scope: Any, receive: Any, send: Any) -> None:
    record_decision(scope, ALLOW)
    await send(START)
    await send(BODY)


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/finance/reports/q3",
        "raw_path": b"/finance/reports/q3",
        "query_string": b"year=2026",
        "headers": [],
        "state": {},
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(_: Any) -> None:
    return None


def run(served: Callable[..., Any], requests: int) -> tuple[float, float]:
    async def loop() -> None:
        for _ in range(requests):
            await served(scope(), receive, send)

    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(loop())
    return (
        (time.perf_counter() - wall) / requests * 1e6,
        (time.process_time() - cpu) / requests * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logger = logging.getLogger("zerolane.access")
    logger.propagate = False
    folder = Path(tempfile.mkdtemp(prefix="zl-bench-access-"))
    rows: list[tuple[str, Callable[..., Any], int, logging.Formatter | None]] = [
        ("bare app", app, logging.WARNING, None),
        ("access log off", AccessLog(app, "gateway"), logging.WARNING, None),
        ("text line to a file", AccessLog(app, "gateway"), logging.INFO, TextFormatter()),
        ("json line to a file", AccessLog(app, "gateway"), logging.INFO, JsonFormatter()),
    ]
    results: dict[str, tuple[float, float]] = {}
    for name, served, level, fmt in rows:
        handler: logging.Handler | None = None
        if fmt is not None:
            handler = logging.FileHandler(folder / f"{name.split()[0]}.log")
            handler.setFormatter(fmt)
            logger.addHandler(handler)
        logger.setLevel(level)
        measured = [run(served, args.requests) for _ in range(args.rounds)]
        results[name] = (min(m[0] for m in measured), min(m[1] for m in measured))
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()
    base_wall, base_cpu = results["bare app"]
    print(f"{args.requests} requests x {args.rounds} rounds (best round)")
    print(f"{'row':28} {'wall us':>8} {'cpu us':>8} {'+wall us':>9} {'+cpu us':>8}")
    for name, (wall, cpu) in results.items():
        print(f"{name:28} {wall:8.2f} {cpu:8.2f} {wall - base_wall:9.2f} {cpu - base_cpu:8.2f}")


if __name__ == "__main__":
    main()
