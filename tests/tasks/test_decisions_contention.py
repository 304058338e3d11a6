"""Several processes deciding one busy task: no false ``task.contention`` while the
budget remains, and the budget is spent exactly (issue 10 item 7)."""

from __future__ import annotations

import asyncio
import collections
import multiprocessing
import multiprocessing.queues
import sqlite3
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.tasks.conftest import AGENT, build_world
from tests.tasks.sqlite_world import READ
from tests.tasks.sqlite_world import READ_URL as URL
from zerolane.server.deployment import Deployment
from zerolane.tasks.decision_core import BACKOFF_CAP, backoff
from zerolane.tokens.rfc9449 import make_proof

PROCESSES, CONCURRENCY, SECONDS = 3, 24, 2.0


def _decide_for_a_while(
    home: str, token: str, key_pem: bytes, queue: multiprocessing.queues.Queue[dict[str, int]]
) -> None:
    """One enforcement point's process: CONCURRENCY requests in flight on its loop."""
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    deployment = Deployment.open(Path(home))
    counts: collections.Counter[str] = collections.Counter()
    end = time.monotonic() + SECONDS

    async def client() -> None:
        while time.monotonic() < end:
            proof = make_proof(key, method="GET", url=URL, access_token=token)
            decision = await deployment.decider.decide_async(token, proof, READ)
            counts["allow" if decision.allowed else decision.reasons[0]] += 1

    async def main() -> None:
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))

    try:
        asyncio.run(main())
    finally:
        deployment.close()
        queue.put(dict(counts))


def test_processes_deciding_one_task_see_no_false_contention(tmp_path: Path) -> None:
    world = build_world(tmp_path / "home", "sqlite:///zerolane.db")
    world.deployment.close()  # a deployment's clock never goes back: reopen at the new time
    world.clock.t = time.time()  # the processes below decide on the system clock
    world.deployment = Deployment.open(tmp_path / "home", world.clock)
    agent = world.agent(AGENT)
    opened = world.open(agent)
    world.deployment.close()
    with sqlite3.connect(tmp_path / "home" / "zerolane.db") as db:  # a budget none can spend
        db.execute("UPDATE tasks SET max_calls = 1000000 WHERE task_id = ?", (opened.task.task_id,))
    key_pem = agent.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    processes = [
        spawn.Process(
            target=_decide_for_a_while,
            args=(str(tmp_path / "home"), opened.token, key_pem, queue),
        )
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    totals: collections.Counter[str] = collections.Counter()
    for _ in processes:
        totals.update(queue.get(timeout=120))
    for process in processes:
        process.join(timeout=30)
    assert totals["allow"] > 0
    assert dict(totals) == {"allow": totals["allow"]}  # no task.contention, no other deny
    with sqlite3.connect(tmp_path / "home" / "zerolane.db") as db:
        (used,) = db.execute(
            "SELECT calls_used FROM tasks WHERE task_id = ?", (opened.task.task_id,)
        ).fetchone()
    assert used == totals["allow"]  # every allow spent exactly one call


@pytest.mark.parametrize("losses", range(0, 40))
def test_backoff_grows_with_losses_and_stays_bounded(losses: int) -> None:
    delays = [backoff(losses) for _ in range(50)]
    if losses < 2:
        assert delays == [0.0] * 50  # the first retry is at once
    else:
        assert all(0.0 <= d <= BACKOFF_CAP for d in delays)
