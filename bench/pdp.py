"""Policy decisions per second: CedarEngine.decide() vs raw cedarpy.is_authorized, same run.

    .venv/bin/python bench/pdp.py [--seconds 1] [--rounds 5]

Rows:
  raw cedarpy.is_authorized   the binding called with the engine's own pre-parsed
                              PolicySet, Schema and (empty) Entities handles, on
                              request dicts built beforehand (the floor)
  CedarEngine.decide()        our PDP on the same requests, as PolicyRequest values
  context + decide()          building the context from task/request facts, then decide()
  (info) raw, no schema       is_authorized without the Schema handle: what checking each
                              request's context against the schema costs (we always do)
Requests are a fixed mix of allowed and denied ones against the default policy set.
Then the same comparison with 10x and 1000x more policies (distinct forbids that never
fire), to show how cost grows with the size of the set.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cedarpy

from zerolane.policy.cedar import (
    ACTION_TYPE,
    NO_ENTITIES,
    RESOURCE_TYPES,
    WORKLOAD_TYPE,
    CedarEngine,
)
from zerolane.policy.context import RequestFacts, TaskFacts, request_policy_request
from zerolane.policy.defaults import install_defaults
from zerolane.policy.engine import PolicyRequest
from zerolane.types import Sensitivity, TaskState

AGENT = "spiffe://bench.example/agents/reporter"
NOW = 1_700_000_000.0
EXTRA = (
    '@id("bench.extra.{i}")\n'
    'forbid (principal, action == Zerolane::Action::"request", resource)\n'
    'when {{ context.request.action == "never-{i}" }};\n'
)

Facts = tuple[TaskFacts, RequestFacts]


def facts() -> list[Facts]:
    """A fixed mix: allowed, and denied by each kind of rule."""
    task = TaskFacts(
        id="tsk_bench",
        playbook="reports",
        intent="summarise the quarter",
        state=TaskState.ACTIVE,
        actions=("read", "write"),
        resources=("finance/reports/*", "crm/**"),
        destinations=("db.bench.example", "api.partner.com"),
        ceiling=Sensitivity.CONFIDENTIAL,
        touched=-1,
        calls_used=3,
        max_calls=100,
        created_at=NOW - 60,
        expires_at=NOW + 300,
        depth=0,
        delegated=False,
        on_behalf_of=None,
    )
    read = RequestFacts(
        "read", "finance/reports/q3", "db.bench.example", Sensitivity.INTERNAL, "GET", True
    )
    egress = RequestFacts(
        "read", "crm/accounts/acme", "api.partner.com", Sensitivity.INTERNAL, "POST", False
    )
    sensitive = dataclasses.replace(task, touched=int(Sensitivity.CONFIDENTIAL))
    other = RequestFacts("delete", "hr/payroll", "evil.net", Sensitivity.RESTRICTED, "DELETE")
    return [(task, read), (task, egress), (sensitive, read), (sensitive, egress), (task, other)]


def raw_request(request: PolicyRequest) -> dict[str, object]:
    return {
        "principal": {"type": WORKLOAD_TYPE, "id": request.principal},
        "action": {"type": ACTION_TYPE, "id": request.action},
        "resource": {"type": RESOURCE_TYPES[request.resource_type], "id": request.resource},
        "context": dict(request.context),
    }


def per_call(fn: Callable[[], object], batch: int, seconds: float) -> float:
    """Microseconds per call of ``fn`` (which makes ``batch`` calls) over about ``seconds``."""
    calls, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        fn()
        calls += batch
    return (time.perf_counter() - start) / calls * 1e6


def measure(engine: CedarEngine, seconds: float, rounds: int) -> dict[str, float]:
    """Median microseconds per decision for each path, rounds interleaved."""
    pairs = facts()
    requests = [request_policy_request(AGENT, t, r, NOW) for t, r in pairs]
    raws = [raw_request(r) for r in requests]
    snapshot = engine.snapshot
    for ours, raw in zip(requests, raws, strict=True):  # identical answers, or no benchmark
        expected = cedarpy.is_authorized(raw, snapshot.policies, NO_ENTITIES, snapshot.schema)
        if engine.decide(ours).allowed != expected.allowed or expected.diagnostics.errors:
            raise SystemExit(f"decide() and is_authorized disagree on {ours}")

    def raw_path() -> None:
        for raw in raws:
            cedarpy.is_authorized(raw, snapshot.policies, NO_ENTITIES, snapshot.schema)

    def decide_path() -> None:
        for request in requests:
            engine.decide(request)

    def context_path() -> None:
        for task, request in pairs:
            engine.decide(request_policy_request(AGENT, task, request, NOW))

    def unvalidated_path() -> None:
        for raw in raws:
            cedarpy.is_authorized(raw, snapshot.policies, NO_ENTITIES)

    paths = {
        "raw": raw_path,
        "decide": decide_path,
        "context": context_path,
        "no_schema": unvalidated_path,
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            samples[name].append(per_call(fn, len(requests), seconds))
    return {name: statistics.median(values) for name, values in samples.items()}


def engine_with_extra(extra: int) -> tuple[CedarEngine, float]:
    folder = Path(tempfile.mkdtemp(prefix="zl-bench-pdp-")) / "policies"
    install_defaults(folder)
    if extra:
        (folder / "zz_extra.cedar").write_text("".join(EXTRA.format(i=i) for i in range(extra)))
    start = time.perf_counter()
    engine = CedarEngine(folder)
    return engine, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per path per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    base, _ = engine_with_extra(0)
    count = len(base.snapshot.policy_ids)
    result = measure(base, args.seconds, args.rounds)
    raw = result["raw"]
    rows = [
        ("raw cedarpy.is_authorized (pre-parsed)", raw),
        ("CedarEngine.decide()", result["decide"]),
        ("context build + decide()", result["context"]),
        ("(info) raw, no schema: context unchecked", result["no_schema"]),
    ]
    print(f"\n{count} policies (the default set), {len(facts())} requests, median of rounds")
    print(f"{'path':<42} {'us/decision':>12} {'decisions/s':>12} {'vs raw':>8}")
    for name, value in rows:
        print(f"{name:<42} {value:>12.1f} {1e6 / value:>12.0f} {value / raw:>7.3f}x")

    header = ("policies", "load s", "raw us", "decide us", "ratio", "vs base")
    print("\n{:<10} {:>8} {:>9} {:>10} {:>7} {:>8}".format(*header))
    for scale in (1, 10, 1000):
        if scale == 1:
            engine, load, scaled = base, engine_with_extra(0)[1], result
        else:
            engine, load = engine_with_extra(count * scale - count)
            scaled = measure(engine, args.seconds, args.rounds)
        ratio = scaled["decide"] / scaled["raw"]
        growth = scaled["decide"] / result["decide"]
        total = len(engine.snapshot.policy_ids)
        print(
            f"{total:<10} {load:>8.2f} {scaled['raw']:>9.1f} {scaled['decide']:>10.1f} "
            f"{ratio:>6.3f}x {growth:>7.1f}x"
        )


if __name__ == "__main__":
    main()
