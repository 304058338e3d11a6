"""Tasks opened per second: through the API vs TaskLifecycle.open vs a raw ES256 sign, same run.

    .venv/bin/python bench/task_open.py [--seconds 1.5] [--rounds 3] [--clients 4]
        [--http-seconds 8] [--state 100,1000,100000] [--seed bulk|port]

Rows:
  raw ES256 sign             cryptography's ECDSA P-256 sign of a 200-byte message (the floor:
                             a task token is one signature)
  TaskLifecycle.open         in-process on SQLite, one caller authenticated beforehand:
                             scope within the playbook, the Cedar grant policy, the task
                             token (ES256), the task row and its audit event
  open + complete            in-process, the same work as one iteration of the API loop
                             below, minus HTTP and the two credential checks
    with DPoP proofs         the same plus, per task, making two proofs (client side) and
                             checking them with the SVID and the task token (server side)
  POST /v1/tasks + complete  the real API (``zerolane up``: uvicorn, one process) loaded by
                             separate client processes; each attests once with a join token
                             and its own key, then opens and completes tasks in a loop, each
                             request with its key-bound token and a fresh DPoP proof
  (info) refused             the same API and clients sending POST /v1/tasks without
                             credentials (401 auth.missing): the cost of HTTP, routing,
                             body validation and the error response alone
In-process rows are medians of interleaved rounds; the HTTP rows are one run.
Then the in-process open rate with 100, 1,000 and 100,000 tasks already in the store (10x
and 1000x more state), to show how cost grows with it. Those rows are written straight
into the tasks table in one transaction (``--seed port`` writes them one by one through
``TaskStore.add_task`` instead: one durable commit each, ~0.5 ms, 50 s for 100,000); a
sample is read back through the port to check it is what ``add_task`` would have stored.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import multiprocessing as mp
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.audit.events import Actor
from zerolane.identity.service import AttestRequest
from zerolane.server.deployment import Deployment, init_home
from zerolane.store.records import TaskRecord
from zerolane.tasks.auth import WorkloadCaller
from zerolane.tasks.lifecycle import OpenRequest
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc9449 import make_proof, proof_jwk
from zerolane.types import TaskState

ADMIN = Actor("admin", "bench")
TD = "bench.example"
PLAYBOOK = {
    "name": "bench-report",
    "description": "Read reports and write a summary page.",
    "actions": ["read", "write"],
    "resources": ["reports/*", "pages/*"],
    "destinations": [f"files.{TD}", f"wiki.{TD}"],
    "data_ceiling": "confidential",
    "max_ttl": "15m",
    "max_calls": 100,
    "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
}
INTENT = "Summarize the quarter's reports onto the wiki"
OWNERS = 100  # workloads the seeded tasks belong to
OPEN_URL = "http://bench.local/v1/tasks"


def agent_id(i: int) -> str:
    return f"spiffe://{TD}/agents/a{i}"


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``fn`` over about ``seconds``."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(10):
            fn()
        count += 10
    return count / (time.perf_counter() - start)


def make_home(workloads: int) -> tuple[Path, Deployment]:
    home = Path(tempfile.mkdtemp(prefix="zl-bench-")) / "home"
    deployment, _ = init_home(home, TD)
    for i in range(workloads):
        deployment.registry.register(agent_id(i), selectors=[], owner=None, actor=ADMIN)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK, "bench"), ADMIN)
    return home, deployment


# --- in process ---------------------------------------------------------------------------


def credentials(deployment: Deployment, spiffe_id: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A key and a JWT-SVID bound to it, from a join token."""
    key = ec.generate_private_key(ec.SECP256R1())
    token = deployment.join_tokens.create(spiffe_id, ttl=600, actor=ADMIN).token
    svid = deployment.identity.attest(
        AttestRequest(evidence={"join_token": token}, public_jwk=proof_jwk(key), ttl=3600)
    )
    return key, svid.token


def caller(deployment: Deployment, spiffe_id: str) -> WorkloadCaller:
    """Attest ``spiffe_id`` with a key and authenticate it once, as the API would."""
    key, svid = credentials(deployment, spiffe_id)
    proof = make_proof(key, method="POST", url=OPEN_URL, access_token=svid)
    return deployment.authenticator.workload(svid, proof, method="POST", url=OPEN_URL)


def opener(deployment: Deployment, mode: str = "open") -> Callable[[], object]:
    """One in-process open; ``cycle``: then complete; ``authed``: both with DPoP checks."""
    who = caller(deployment, agent_id(0))
    key, svid = credentials(deployment, agent_id(0))
    request = OpenRequest(intent=INTENT, playbook=str(PLAYBOOK["name"]))
    lifecycle, auth = deployment.lifecycle, deployment.authenticator

    def once() -> object:
        if mode == "authed":
            proof = make_proof(key, method="POST", url=OPEN_URL, access_token=svid)
            opened = lifecycle.open(
                auth.workload(svid, proof, method="POST", url=OPEN_URL), request
            )
            task_id = opened.task.task_id
            url = f"{OPEN_URL}/{task_id}/complete"
            proof = make_proof(key, method="POST", url=url, access_token=opened.token)
            holder = auth.task_holder(opened.token, proof, method="POST", url=url)
            return lifecycle.complete(task_id, holder.claims.subject, holder.claims.task_id)
        opened = lifecycle.open(who, request)
        if mode == "cycle":
            task_id = opened.task.task_id
            lifecycle.complete(task_id, opened.task.owner, task_id)
        return opened

    once()  # warm up (first Cedar call, first token)
    return once


def medians(fns: Mapping[str, Callable[[], object]], seconds: float, rounds: int) -> list[float]:
    """The median rate of each of ``fns``, measured in interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(rate(fn, seconds))
    return [statistics.median(samples[name]) for name in fns]


def seed_record(template: TaskRecord, i: int, now: float) -> TaskRecord:
    """Existing task ``i``: nine in ten have ended, the rest are live; spread over owners."""
    created = now - 86_400 + i * (86_000 / 100_000)
    live = i % 10 == 0
    return dataclasses.replace(
        template,
        task_id=f"tsk_seed{i:08d}",
        owner=agent_id(i % OWNERS),
        intent=f"{INTENT} #{i}",
        token_jti=f"seed{i:08d}",
        created_at=created,
        expires_at=now + 600 if live else created + 300,
        state=TaskState.ACTIVE if live else TaskState.COMPLETED,
        calls_used=0 if live else i % 7,
        ended_at=None if live else created + 120,
        end_reason=None if live else "completed",
    )


def seed_tasks(home: Path, deployment: Deployment, count: int, via: str) -> None:
    """Put ``count`` tasks in the store: in one transaction, or one by one via the port."""
    template = deployment.lifecycle.open(
        caller(deployment, agent_id(0)), OpenRequest(intent=INTENT, playbook=str(PLAYBOOK["name"]))
    ).task
    now = time.time()
    records = (seed_record(template, i, now) for i in range(count))
    if via == "port":
        for record in records:
            deployment.stores.add_task(record)
    else:
        columns = [f.name for f in dataclasses.fields(TaskRecord)]

        def row(record: TaskRecord) -> tuple[object, ...]:
            values: dict[str, object] = {
                **dataclasses.asdict(record),
                "audience": json.dumps(list(record.audience)),
                "state": record.state.value,
            }
            return tuple(values[c] for c in columns)

        path = home / deployment.config.store_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA busy_timeout=10000")
            db.executemany(
                f"INSERT INTO tasks ({', '.join(columns)}) "  # noqa: S608
                f"VALUES ({', '.join('?' for _ in columns)})",
                (row(r) for r in records),
            )
        db.close()
    for i in {0, count // 2, count - 1}:  # read back through the port
        assert deployment.stores.get_task(f"tsk_seed{i:08d}") == seed_record(template, i, now)


# --- over HTTP ----------------------------------------------------------------------------


def _post(
    conn: http.client.HTTPConnection,
    path: str,
    body: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else b""
    conn.request(
        "POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    response = conn.getresponse()
    payload = response.read()
    return response.status, json.loads(payload) if payload else {}


def _dpop(key: ec.EllipticCurvePrivateKey, token: str, url: str) -> dict[str, str]:
    proof = make_proof(key, method="POST", url=url, access_token=token)
    return {"Authorization": f"DPoP {token}", "DPoP": proof}


def _client(port: int, join_token: str, seconds: float, barrier: Any, out: Any) -> None:
    """One client process: attest once, open + complete tasks until the deadline, then
    send requests that are refused at the first check (no credentials) for half as long."""
    key = ec.generate_private_key(ec.SECP256R1())
    conn = http.client.HTTPConnection("127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    status, attested = _post(
        conn, "/v1/attest", {"join_token": join_token, "public_jwk": proof_jwk(key), "ttl": 3600}
    )
    svid = attested.get("svid", "") if status == 200 else ""
    problem = "" if svid else f"attest {status}: {attested}"
    body = {"playbook": PLAYBOOK["name"], "intent": INTENT}
    barrier.wait()
    opened = failed = 0
    start = time.perf_counter()
    deadline = start + (seconds if svid else 0)
    while time.perf_counter() < deadline:
        status, task = _post(conn, "/v1/tasks", body, _dpop(key, svid, f"{base}/v1/tasks"))
        if status != 201:
            failed, problem = failed + 1, f"open {status}: {task}"
            continue
        opened += 1
        path = f"/v1/tasks/{task['task_id']}/complete"
        status, done = _post(conn, path, None, _dpop(key, task["token"], base + path))
        if status != 200:
            failed, problem = failed + 1, f"complete {status}: {done}"
    elapsed = time.perf_counter() - start
    barrier.wait()
    refused = 0
    start = time.perf_counter()
    deadline = start + seconds / 2
    while time.perf_counter() < deadline:
        status, reply = _post(conn, "/v1/tasks", body)
        refused += status == 401 and reply.get("reason") == "auth.missing"
    out.put((opened, failed or not svid, elapsed, problem, refused, time.perf_counter() - start))
    conn.close()


def open_over_http(clients: int, seconds: float) -> tuple[float, float]:
    """Tasks opened (and completed) per second through the API; and refusals per second."""
    home, deployment = make_home(clients)
    tokens = [
        deployment.join_tokens.create(agent_id(i), ttl=600, actor=ADMIN).token
        for i in range(clients)
    ]
    deployment.close()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "zerolane", "up", "--home", str(home), "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(port)
        ctx = mp.get_context("fork")
        barrier = ctx.Barrier(clients)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_client, args=(port, tokens[i], seconds, barrier, out))
            for i in range(clients)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=2 * seconds + 120) for _ in procs]
        for p in procs:
            p.join()
        failed = sum(r[1] for r in results)
        if failed:
            problems = "; ".join(r[3] for r in results if r[3])
            raise SystemExit(f"{failed} requests failed over HTTP: {problems}")
        opens = sum(r[0] for r in results) / max(r[2] for r in results)
        refusals = sum(r[4] for r in results) / max(r[5] for r in results)
        return opens, refusals
    finally:
        server.terminate()
        server.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per in-process round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--http-seconds", type=float, default=8.0, help="load over HTTP")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--state", default="100,1000,100000", help="existing task counts (first = base)"
    )
    parser.add_argument("--seed", choices=("bulk", "port"), default="bulk")
    args = parser.parse_args()
    started = time.perf_counter()

    key = ec.generate_private_key(ec.SECP256R1())
    message = os.urandom(200)
    _, deployment = make_home(1)
    try:
        raw, in_process, cycle, authed = medians(
            {
                "raw": lambda: key.sign(message, ec.ECDSA(hashes.SHA256())),
                "open": opener(deployment),
                "cycle": opener(deployment, "cycle"),
                "authed": opener(deployment, "authed"),
            },
            args.seconds,
            args.rounds,
        )
    finally:
        deployment.close()
    over_http, refusals = open_over_http(args.clients, args.http_seconds)

    rows = [
        ("raw ES256 sign (cryptography)", raw),
        ("TaskLifecycle.open, in-process, SQLite", in_process),
        ("TaskLifecycle.open + complete, in-process", cycle),
        ("  the same with DPoP proofs made and checked, in-process", authed),
        (f"POST /v1/tasks + complete, HTTP, {args.clients} client procs", over_http),
        ("(info) POST /v1/tasks refused at auth.missing, HTTP", refusals),
    ]
    print(f"\n{'path':<56} {'ops/s':>9} {'vs raw sign':>12} {'vs open':>9}")
    for name, value in rows:
        print(f"{name:<56} {value:>9.0f} {value / raw:>11.4f}x {value / in_process:>8.3f}x")

    sizes = [int(s) for s in args.state.split(",")]
    homes = [make_home(OWNERS) for _ in sizes]
    try:
        for (home, deployment), size in zip(homes, sizes, strict=True):
            seeding = time.perf_counter()
            seed_tasks(home, deployment, size, args.seed)
            print(f"seeded {size} tasks ({args.seed}) in {time.perf_counter() - seeding:.1f} s")
        rates = medians(
            {str(size): opener(d) for (_, d), size in zip(homes, sizes, strict=True)},
            args.seconds,
            args.rounds,
        )
    finally:
        for _, deployment in homes:
            deployment.close()
    print(f"\n{'existing tasks in the store':<56} {'opens/s':>9} {'vs ' + str(sizes[0]):>12}")
    for size, value in zip(sizes, rates, strict=True):
        print(f"{size:<56} {value:>9.0f} {value / rates[0]:>11.3f}x")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
