"""Token exchanges (delegation, RFC 8693) per second, against one plain task open, same run.

    .venv/bin/python bench/exchange.py [--seconds 1.5] [--rounds 3] [--clients 4]
        [--http-seconds 6] [--state 100,1000,100000]

Rows:
  raw ES256 sign             the floor: a child token is one ES256 signature
  TaskLifecycle.open         the baseline: the caller authenticated beforehand (scope within
                             the playbook, the Cedar grant policy, the token, the task row,
                             its audit event), as in bench/task_open.py
    with its DPoP proof      the same, plus making the proof and checking it and the SVID
  TokenExchange.delegate     in-process, all a POST /v1/token does below HTTP: make the
                             parent's DPoP proof, verify the parent token and the proof,
                             verify the delegate's SVID, read the parent, check the child
                             is within it, the Cedar grant policy (with context.parent),
                             sign the child token, carve the budget and insert the child
                             (one atomic write), append the task.delegate audit event
  POST /v1/tasks, HTTP       the real API (``zerolane up``: uvicorn, one process) loaded by
                             separate client processes, each with its own key: opens only
  POST /v1/token, HTTP       the same clients exchanging their parent task's token for a
                             one-call child for a second identity, each with a fresh proof
In-process rows are medians of interleaved rounds; the HTTP rows are one run each.
Then the in-process exchange rate with 100, 1,000 and 100,000 tasks already stored
(10x and 1000x more state), seeded in one transaction as in bench/task_open.py.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from task_open import (  # the sibling benchmark: homes, credentials, seeding, HTTP helpers
    ADMIN,
    INTENT,
    OPEN_URL,
    OWNERS,
    _dpop,
    _free_port,
    _post,
    _wait,
    agent_id,
    credentials,
    make_home,
    medians,
    seed_tasks,
)
from zerolane.server.deployment import Deployment
from zerolane.tasks.auth import WorkloadCaller
from zerolane.tasks.lifecycle import OpenRequest
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc8693 import ACCESS_TOKEN_TYPE, GRANT_TYPE, JWT_TYPE, ExchangeRequest
from zerolane.tokens.rfc9449 import make_proof, proof_jwk

TEAM: dict[str, Any] = {
    "name": "bench-team",
    "description": "Delegate reading reports to helpers.",
    "actions": ["read", "write"],
    "resources": ["reports/*", "pages/*"],
    "destinations": ["files.bench.example", "wiki.bench.example"],
    "data_ceiling": "confidential",
    "max_ttl": "1d",
    "max_calls": 1_000_000,
    "delegable": True,
    "max_depth": 2,
    "openers": {"spiffe_ids": ["spiffe://bench.example/agents/*"]},
}
TOKEN_URL = "http://bench.local/v1/token"
CHILD: list[object] = [{"type": "zerolane_task", "actions": ["read"], "identifier": "reports/q3"}]
PARENT = {"intent": INTENT, "playbook": TEAM["name"], "ttl": 86_400, "max_calls": 1_000_000}


def team_home(workloads: int) -> tuple[Path, Deployment]:
    home, deployment = make_home(max(workloads, 2))
    deployment.playbooks.apply(parse_playbook(TEAM, "bench"), ADMIN)
    return home, deployment


def authenticate(
    deployment: Deployment, key: ec.EllipticCurvePrivateKey, svid: str
) -> WorkloadCaller:
    proof = make_proof(key, method="POST", url=OPEN_URL, access_token=svid)
    return deployment.authenticator.workload(svid, proof, method="POST", url=OPEN_URL)


# --- in process ---------------------------------------------------------------------------


def opener(deployment: Deployment, *, authed: bool) -> Callable[[], object]:
    """One plain open (the baseline); ``authed``: with its proof made and checked."""
    key, svid = credentials(deployment, agent_id(0))
    who = authenticate(deployment, key, svid)
    request = OpenRequest(intent=INTENT, playbook=TEAM["name"], max_calls=1)
    lifecycle = deployment.lifecycle

    def once() -> object:
        return lifecycle.open(authenticate(deployment, key, svid) if authed else who, request)

    once()  # warm up (first Cedar call, first token)
    return once


def exchanger(deployment: Deployment) -> Callable[[], object]:
    """One exchange: a0's parent task hands a one-call child to a1 (proof made, checked)."""
    key, svid = credentials(deployment, agent_id(0))
    _, helper_svid = credentials(deployment, agent_id(1))
    parent = deployment.lifecycle.open(authenticate(deployment, key, svid), OpenRequest(**PARENT))
    request = ExchangeRequest(
        subject_token=parent.token,
        subject_token_type=ACCESS_TOKEN_TYPE,
        actor_token=helper_svid,
        actor_token_type=JWT_TYPE,
        authorization_details=CHILD,
        ttl=300,
        max_calls=1,
    )
    exchange = deployment.exchange

    def once() -> object:
        proof = make_proof(key, method="POST", url=TOKEN_URL, access_token=parent.token)
        return exchange.exchange(request, proof, url=TOKEN_URL)

    once()
    return once


# --- over HTTP ----------------------------------------------------------------------------


def _exchange_form(parent_token: str, helper_svid: str) -> bytes:
    return urlencode(
        {
            "grant_type": GRANT_TYPE,
            "subject_token": parent_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "actor_token": helper_svid,
            "actor_token_type": JWT_TYPE,
            "authorization_details": json.dumps(CHILD),
            "ttl": "300",
            "max_calls": "1",
        }
    ).encode()


def _attest(conn: http.client.HTTPConnection, join: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    body = {"join_token": join, "public_jwk": proof_jwk(key), "ttl": 3600}
    status, reply = _post(conn, "/v1/attest", body)
    if status != 200:
        raise SystemExit(f"attest {status}: {reply}")
    return key, str(reply["svid"])


def _client(port: int, joins: tuple[str, str], seconds: float, barrier: Any, out: Any) -> None:
    """One client process: opens for ``seconds``, then exchanges for ``seconds``."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    key, svid = _attest(conn, joins[0])
    _, helper_svid = _attest(conn, joins[1])
    status, parent = _post(conn, "/v1/tasks", PARENT, _dpop(key, svid, f"{base}/v1/tasks"))
    if status != 201:
        raise SystemExit(f"open parent {status}: {parent}")
    form = _exchange_form(parent["token"], helper_svid)
    open_body = {"playbook": TEAM["name"], "intent": INTENT, "max_calls": 1}
    counts: list[tuple[int, int, float]] = []
    barrier.wait()
    start = time.perf_counter()
    done = failed = 0
    while time.perf_counter() < start + seconds:
        status, _ = _post(conn, "/v1/tasks", open_body, _dpop(key, svid, f"{base}/v1/tasks"))
        done, failed = done + (status == 201), failed + (status != 201)
    counts.append((done, failed, time.perf_counter() - start))
    barrier.wait()
    start = time.perf_counter()
    done = failed = 0
    while time.perf_counter() < start + seconds:
        proof = make_proof(key, method="POST", url=f"{base}/v1/token", access_token=parent["token"])
        headers = {"Content-Type": "application/x-www-form-urlencoded", "DPoP": proof}
        conn.request("POST", "/v1/token", body=form, headers=headers)
        response = conn.getresponse()
        response.read()
        done, failed = done + (response.status == 200), failed + (response.status != 200)
    counts.append((done, failed, time.perf_counter() - start))
    out.put(counts)
    conn.close()


def over_http(clients: int, seconds: float) -> tuple[float, float]:
    """Opens per second, then exchanges per second, through the API."""
    home, deployment = team_home(2 * clients)
    joins = [
        (
            deployment.join_tokens.create(agent_id(2 * i), ttl=600, actor=ADMIN).token,
            deployment.join_tokens.create(agent_id(2 * i + 1), ttl=600, actor=ADMIN).token,
        )
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
        barrier, out = ctx.Barrier(clients), ctx.Queue()
        procs = [
            ctx.Process(target=_client, args=(port, joins[i], seconds, barrier, out))
            for i in range(clients)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=2 * seconds + 120) for _ in procs]
        for p in procs:
            p.join()
        rates = []
        for phase in (0, 1):
            failed = sum(r[phase][1] for r in results)
            if failed:
                raise SystemExit(f"{failed} requests failed over HTTP (phase {phase})")
            rates.append(sum(r[phase][0] for r in results) / max(r[phase][2] for r in results))
        return rates[0], rates[1]
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per in-process round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--http-seconds", type=float, default=6.0, help="load over HTTP")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--state", default="100,1000,100000", help="existing task counts (first = base)"
    )
    args = parser.parse_args()
    started = time.perf_counter()

    key = ec.generate_private_key(ec.SECP256R1())
    message = os.urandom(200)
    _, deployment = team_home(2)
    try:
        raw, plain, authed, exchange = medians(
            {
                "raw": lambda: key.sign(message, ec.ECDSA(hashes.SHA256())),
                "open": opener(deployment, authed=False),
                "authed": opener(deployment, authed=True),
                "exchange": exchanger(deployment),
            },
            args.seconds,
            args.rounds,
        )
    finally:
        deployment.close()
    http_open, http_exchange = over_http(args.clients, args.http_seconds)

    rows = [
        ("raw ES256 sign (cryptography)", raw),
        ("TaskLifecycle.open, in-process, SQLite (baseline)", plain),
        ("  the same with its DPoP proof made and checked", authed),
        ("TokenExchange.delegate, in-process (proof made and checked)", exchange),
        (f"POST /v1/tasks, HTTP, {args.clients} client procs", http_open),
        (f"POST /v1/token (delegation), HTTP, {args.clients} client procs", http_exchange),
    ]
    print(f"\n{'path':<62} {'ops/s':>8} {'vs raw sign':>12} {'vs open':>8}")
    for name, value in rows:
        print(f"{name:<62} {value:>8.0f} {value / raw:>11.4f}x {value / plain:>7.3f}x")
    print(f"{'exchange / open with proof, in-process':<62} {exchange / authed:>30.3f}x")
    print(f"{'exchange / open over HTTP':<62} {http_exchange / http_open:>30.3f}x")

    sizes = [int(s) for s in args.state.split(",")]
    homes = [team_home(OWNERS) for _ in sizes]
    try:
        for (home, deployment), size in zip(homes, sizes, strict=True):
            seeding = time.perf_counter()
            seed_tasks(home, deployment, size, "bulk")
            print(f"seeded {size} tasks in {time.perf_counter() - seeding:.1f} s")
        rates = medians(
            {str(size): exchanger(d) for (_, d), size in zip(homes, sizes, strict=True)},
            args.seconds,
            args.rounds,
        )
    finally:
        for _, deployment in homes:
            deployment.close()
    print(f"\n{'existing tasks in the store':<62} {'exch/s':>8} {'vs ' + str(sizes[0]):>12}")
    for size, value in zip(sizes, rates, strict=True):
        print(f"{size:<62} {value:>8.0f} {value / rates[0]:>11.3f}x")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
