"""What spending DPoP proofs in the store costs (usable once, everywhere, across
restarts), same run, SQLite.

    .venv/bin/python bench/spent_proofs.py [--ops 2000] [--rounds 3] [--sizes 1000,10000,1000000]

Rows (per write, in process, one thread, each write waited for as a decision does):
  spend + event                the allow's write before proofs were stored: the task's
                               compare-and-set and its audit event, one commit (baseline)
  spend + event + proof        the same write with the request's proof inserted too
                               (what every allowed decision now does)
  proof alone                  spend_proof as its own write (a refusal; control-plane
                               requests: opening a task, delegating)
  replayed proof (refused)     the allow's write whose proof was spent before: undone

Each with 1,000, 10,000 and 1,000,000 live spent proofs in the table (1x, 10x, 1000x),
wall and CPU microseconds per write, and the ratio to the baseline of the same size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import ProofReplayed
from zerolane.store.records import Spend, SpentProof, TaskRecord
from zerolane.store.sqlite import SqliteStores
from zerolane.store.sqlite.connection import connect
from zerolane.types import Outcome, TaskState

NOW = time.time()


class Clock:
    def now(self) -> float:
        return NOW


def _task(task_id: str, calls: int) -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        owner="spiffe://bench.example/agent",
        playbook="bench",
        playbook_version=1,
        intent="bench",
        scope="{}",
        authorization_details="[]",
        jkt="jkt",
        audience=("spiffe://bench.example",),
        state=TaskState.ACTIVE,
        created_at=NOW - 1,
        expires_at=NOW + 3600,
        max_calls=calls,
        calls_used=0,
        touched=1,
        token_jti=f"jti-{task_id}",
    )


def _spend(task_id: str, used: int, calls: int, proof: SpentProof | None) -> Spend:
    """A decision's spend of one call of a :func:`_task` (touched stays 1)."""
    return Spend(task_id, used, calls, 1, touched=1, now=NOW, proof=proof)


def _fill(stores: SqliteStores, count: int) -> None:
    """``count`` live spent proofs, inserted in large transactions."""
    conn = connect(stores.path)  # bench set-up only, not the code measured
    try:
        rows = ((SpentProof.of(f"fill:{i}", NOW + 600).digest, NOW + 600) for i in range(count))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO spent_proofs (digest, expires_at) VALUES (?, ?)", rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _fresh(prefix: str) -> Callable[[int], SpentProof]:
    """The ``i``-th never-spent proof under ``prefix``."""
    return lambda i: SpentProof.of(f"{prefix}{i}", NOW + 60)


def _spending(stores: SqliteStores, proofs: Callable[[int], SpentProof]) -> Callable[[int], object]:
    """``fn(i)``: spend the ``i``-th proof of ``proofs`` alone (no task, no event)."""
    return lambda i: stores.spend_proof(proofs(i), NOW)


def measure(fn: Callable[[int], object], ops: int) -> tuple[float, float]:
    """Wall and CPU microseconds per call of ``fn(i)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(ops):
        fn(i)
    return (
        (time.perf_counter() - wall) / ops * 1e6,
        (time.process_time() - cpu) / ops * 1e6,
    )


def run_size(size: int, ops: int, rounds: int) -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        stores = SqliteStores(Path(tmp) / "bench.db")
        try:
            _fill(stores, size)
            log = AuditLog(stores, Clock())
            tasks = [f"t{r}-{k}" for r in range(rounds) for k in range(3)]
            for task_id in tasks:
                stores.add_task(_task(task_id, ops + 10))
            used: dict[str, int] = dict.fromkeys(tasks, 0)
            replayed = SpentProof.of("spent:before", NOW + 600)
            stores.spend_proof(replayed, NOW)

            def allow(
                task_id: str, proof: Callable[[int], SpentProof | None]
            ) -> Callable[[int], object]:
                def once(i: int) -> object:
                    event = log.event("decision", Actor("workload", "w"), task_id, Outcome.SUCCESS)
                    spend = _spend(task_id, used[task_id], ops + 10, proof(i))
                    spent = stores.commit_decision(spend, [event.unsealed()], seal).result()
                    assert spent is not None
                    used[task_id] += 1
                    return spent

                return once

            def refused(i: int) -> object:
                event = log.event("decision", Actor("workload", "w"), "t", Outcome.SUCCESS)
                try:
                    spend = _spend(tasks[0], used[tasks[0]], ops + 10, replayed)
                    stores.commit_decision(spend, [event.unsealed()], seal).result()
                except ProofReplayed:
                    return None
                raise AssertionError("a spent proof was accepted")

            results: dict[str, list[tuple[float, float]]] = {
                "spend + event": [],
                "spend + event + proof": [],
                "proof alone": [],
                "replayed proof (refused)": [],
            }
            for r in range(rounds):  # interleaved, so drift hits every row alike
                base, with_proof, _ = tasks[3 * r : 3 * r + 3]
                results["spend + event"].append(measure(allow(base, lambda i: None), ops))
                fresh = _fresh(f"{r}:")
                results["spend + event + proof"].append(measure(allow(with_proof, fresh), ops))
                alone = _spending(stores, _fresh(f"alone{r}:"))
                results["proof alone"].append(measure(alone, ops))
                results["replayed proof (refused)"].append(measure(refused, ops))
            return [
                (
                    name,
                    statistics.median(w for w, _ in values),
                    statistics.median(c for _, c in values),
                )
                for name, values in results.items()
            ]
        finally:
            stores.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000,1000000")
    args = parser.parse_args()
    print(f"SQLite writes, waited for one at a time (median of {args.rounds} rounds)")
    print(f"{'live proofs':>12} {'row':26} {'us wall':>8} {'us CPU':>8} {'CPU vs base':>12}")
    for size in (int(s) for s in args.sizes.split(",")):
        rows = run_size(size, args.ops, args.rounds)
        base_cpu = rows[0][2]
        for name, wall, cpu in rows:
            print(f"{size:12,} {name:26} {wall:8.0f} {cpu:8.0f} {cpu / base_cpu:11.2f}x")


if __name__ == "__main__":
    main()
