"""CPU per decision of the decider alone (no HTTP), in process, over SQLite.

    .venv/bin/python bench/decider.py [--requests 2000] [--rounds 3] [--before SRC]

Each measurement is its own process over a fresh home (``bench/gateway.py``'s: the
bench playbook, one agent, 16 tasks), its proofs signed before the clock starts:
  async, 1 task      ``Decider.decide_async`` on one event loop, 16 requests in flight,
                     all of one task (they race for its budget: the pipelined path)
  async, 16 tasks    the same, request i on task i mod 16
  sync, 1 task       ``Decider.decide`` on one thread, one request at a time
(after 64 decisions not measured: the first loads the policies).
CPU: the process's user + system time (every thread: the store's writer too) over the
requests, in microseconds per decision; every request must be allowed.

With ``--before SRC`` (an older tree's ``src``), each row is measured over that tree
too, in the same rounds, interleaved (after, before, after, before...), and ``ratio``
is after over before (the median of each row over the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gateway import AUDIENCE, DESTINATION, PATH, make_home  # noqa: E402

URL = f"http://gw.bench.local{PATH}"
CONCURRENCY = 16
#: decisions made before the clock starts (the first one loads the policies)
WARM_UP = 64
ROWS = ("async, 1 task", "async, 16 tasks", "sync, 1 task")


def measure(row: str, requests: int) -> float:
    """CPU microseconds per decision of ``row``, in this process."""
    from cryptography.hazmat.primitives import serialization

    from zerolane.server.deployment import Deployment
    from zerolane.tasks.decisions import DecideInput
    from zerolane.tokens.rfc9449 import make_proof

    with tempfile.TemporaryDirectory() as tmp:
        home = make_home(Path(tmp), ["urn:zerolane:bench:mcp"], 0, CONCURRENCY)
        key = serialization.load_pem_private_key(home.key_pem.encode(), None)
        tokens = home.tokens[:1] if row.endswith("1 task") else home.tokens
        calls = [tokens[i % len(tokens)] for i in range(WARM_UP + requests)]
        signed = [(t, make_proof(key, method="GET", url=URL, access_token=t)) for t in calls]  # type: ignore[arg-type]
        warm, signed = signed[:WARM_UP], signed[WARM_UP:]
        request = DecideInput(
            "GET",
            URL,
            action="read",
            resource="reports/q3",
            destination=DESTINATION,
            sensitivity="internal",
            audience=AUDIENCE,
        )
        deployment = Deployment.open(home.path)
        try:
            decider = deployment.decider
            for token, proof in warm:  # policies compiled, caches and pools filled
                decider.decide(token, proof, request)
            start = time.process_time()
            if row.startswith("sync"):
                allowed = sum(decider.decide(t, p, request).allowed for t, p in signed)
            else:
                allowed = asyncio.run(_in_flight(decider, signed, request))
            spent = time.process_time() - start
        finally:
            deployment.close()
    if allowed != requests:
        raise SystemExit(f"{row}: {requests - allowed} of {requests} requests refused")
    return spent / requests * 1e6


async def _in_flight(decider: Any, signed: list[tuple[str, str]], request: Any) -> int:
    """``CONCURRENCY`` requests in flight on one loop until ``signed`` is used up."""
    queue = list(reversed(signed))
    allowed = 0

    async def worker() -> None:
        nonlocal allowed
        while queue:
            token, proof = queue.pop()
            decision = await decider.decide_async(token, proof, request)
            allowed += decision.allowed  # after the await: no update lost

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return allowed


def child(row: str, requests: int, src: Path | None) -> float:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    argv = [sys.executable, __file__, "--child", row, "--requests", str(requests)]
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["cpu_us"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="an older zerolane's src/, interleaved")
    parser.add_argument("--child", choices=ROWS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps({"cpu_us": measure(args.child, args.requests)}))
        return
    if args.before is not None and not (args.before / "zerolane" / "__init__.py").is_file():
        parser.error(f"--before {args.before}: no zerolane package there")
    trees: list[tuple[str, Path | None]] = [("after", None)]
    if args.before is not None:
        trees.append(("before", args.before.resolve()))
    results: dict[tuple[str, str], list[float]] = {}
    for n in range(args.rounds):
        for row in ROWS:
            for name, src in trees:
                cpu = child(row, args.requests, src)
                results.setdefault((row, name), []).append(cpu)
                print(f"round {n + 1} {row:<16} {name:<7} {cpu:8.0f} us/decision", flush=True)
    print(f"\n{args.requests} decisions per row and tree, median of {args.rounds} rounds")
    head = f"{'row':<18}{'cpu us':>9}"
    print(head + (f"{'before':>9}{'ratio':>8}" if args.before else ""))
    for row in ROWS:
        after = statistics.median(results[(row, "after")])
        line = f"{row:<18}{after:>9.0f}"
        if args.before is not None:
            before = statistics.median(results[(row, "before")])
            line += f"{before:>9.0f}{after / before:>7.2f}x"
        print(line)


if __name__ == "__main__":
    main()
