"""SVIDs issued per second: through the API vs a raw ES256 sign loop, same run.

    .venv/bin/python bench/svid.py [--seconds 3] [--clients 4] [--before SRC --rounds 5]

Rows:
  raw ES256 sign       cryptography's ECDSA P-256 sign of a 200-byte message (the floor)
  keyring.sign         the JWT-SVID encode (tokens.jws on joserfc) with our keyring
  attest in-process    IdentityService.attest with a join token on SQLite (no HTTP)
  POST /v1/attest      the real API under uvicorn, load from separate processes
Then the in-process attest again with 10x and 1000x more registered workloads and a
longer audit chain, to show how cost grows with state.

With ``--before SRC`` (an older zerolane's ``src/``, e.g. from ``git archive``) only
keyring.sign is measured, in child processes alternating between that tree and this
one for ``--rounds`` rounds, each child measuring the raw sign too: the table gives each
tree's median rate, its ratio to its own raw sign and this tree over the older one.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.audit.events import Actor
from zerolane.identity.service import AttestRequest
from zerolane.server.deployment import Deployment, init_home

ADMIN = Actor("admin", "bench")
TD = "bench.example"


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``fn`` over about ``seconds``."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(20):
            fn()
        count += 20
    return count / (time.perf_counter() - start)


def make_home(workloads: int) -> tuple[Path, Deployment]:
    home = Path(tempfile.mkdtemp(prefix="zl-bench-")) / "home"
    deployment, _ = init_home(home, TD)
    for i in range(workloads):
        deployment.registry.register(
            f"spiffe://{TD}/agents/a{i}", selectors=[], owner=None, actor=ADMIN
        )
    return home, deployment


def tokens(deployment: Deployment, count: int, workloads: int) -> list[str]:
    return [
        deployment.join_tokens.create(
            f"spiffe://{TD}/agents/a{i % workloads}", ttl=3600, actor=ADMIN
        ).token
        for i in range(count)
    ]


def attest_in_process(workloads: int, seconds: float) -> float:
    _, deployment = make_home(workloads)
    pool = tokens(deployment, 4000, workloads)
    it = iter(pool)

    def once() -> object:
        return deployment.identity.attest(AttestRequest(evidence={"join_token": next(it)}))

    try:
        return rate(once, seconds)
    except StopIteration:
        raise SystemExit("token pool exhausted: lower --seconds") from None
    finally:
        deployment.close()


def _client(port: int, batch: list[str], out: mp.Queue) -> None:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection("127.0.0.1", port)
    ok = 0
    start = time.perf_counter()
    for token in batch:
        conn.request(
            "POST",
            "/v1/attest",
            body=json.dumps({"join_token": token}),
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        ok += response.status == 200
    out.put((ok, time.perf_counter() - start))


def attest_over_http(clients: int, per_client: int) -> float:
    home, deployment = make_home(10)
    pool = tokens(deployment, clients * per_client, 10)
    deployment.close()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "zerolane", "up", "--home", str(home), "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(port)
        out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
        procs = [
            mp.Process(target=_client, args=(port, pool[i::clients], out)) for i in range(clients)
        ]
        start = time.perf_counter()
        for p in procs:
            p.start()
        results = [out.get(timeout=300) for _ in procs]
        elapsed = time.perf_counter() - start
        for p in procs:
            p.join()
        ok: int = sum(r[0] for r in results)
        if ok != len(pool):
            raise SystemExit(f"only {ok} of {len(pool)} attestations succeeded")
        return ok / elapsed
    finally:
        server.terminate()
        server.wait()


def _free_port() -> int:
    import socket

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
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def sign_rates(seconds: float) -> dict[str, float]:
    """The raw ES256 sign and keyring.sign rates of the zerolane this process imports."""
    from zerolane.identity.keyring import Keyring
    from zerolane.types import SystemClock

    key = ec.generate_private_key(ec.SECP256R1())
    message = os.urandom(200)
    raw = rate(lambda: key.sign(message, ec.ECDSA(hashes.SHA256())), seconds)
    keyring = Keyring(Path(tempfile.mkdtemp(prefix="zl-bench-")) / "keys", SystemClock())
    keyring.create()
    claims = {"sub": f"spiffe://{TD}/agents/a0", "aud": ["x"], "exp": 2**31, "iat": 0, "jti": "j"}
    return {"raw": raw, "sign": rate(lambda: keyring.sign(dict(claims)), seconds)}


def compare_sign(before: Path, rounds: int, seconds: float) -> None:
    """keyring.sign of ``before`` (a src/ folder) and of this tree, alternating."""
    trees = {"this tree": None, "before": before}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(rounds):
        for name, src in trees.items():
            env = dict(os.environ)
            if src is not None:
                env["PYTHONPATH"] = str(src)
            command = [sys.executable, __file__, "--sign-only", "--seconds", str(seconds)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(out.stdout))

    def median(name: str, row: str) -> float:
        values = sorted(run[row] for run in runs[name])
        return values[len(values) // 2]

    print(f"\n{'keyring.sign, median of ' + str(rounds):<30} {'ops/s':>8} {'vs raw sign':>12}")
    for name in trees:
        sign = median(name, "sign")
        print(f"{name:<30} {sign:>8.0f} {sign / median(name, 'raw'):>11.3f}x")
    ratio = median("this tree", "sign") / median("before", "sign")
    print(f"{'this tree / before':<30} {ratio:>8.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-client", type=int, default=500)
    parser.add_argument("--before", type=Path, help="an older zerolane's src/ folder")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds, --before")
    parser.add_argument("--sign-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sign_only:
        print(json.dumps(sign_rates(args.seconds)))
        return
    if args.before is not None:
        if not (args.before / "zerolane" / "__init__.py").is_file():
            parser.error(f"--before {args.before}: no zerolane package there")
        compare_sign(args.before, args.rounds, args.seconds)
        return

    key = ec.generate_private_key(ec.SECP256R1())
    message = os.urandom(200)
    raw = rate(lambda: key.sign(message, ec.ECDSA(hashes.SHA256())), args.seconds)

    _, deployment = make_home(1)
    claims = {"sub": f"spiffe://{TD}/agents/a0", "aud": ["x"], "exp": 2**31, "iat": 0, "jti": "j"}
    encode = rate(lambda: deployment.keyring.sign(dict(claims)), args.seconds)
    deployment.close()

    in_process = attest_in_process(10, args.seconds)
    over_http = attest_over_http(args.clients, args.per_client)

    rows = [
        ("raw ES256 sign (cryptography)", raw),
        ("keyring.sign (JWT-SVID encode)", encode),
        ("attest in-process, SQLite, 10 workloads", in_process),
        (f"POST /v1/attest over HTTP, {args.clients} client procs", over_http),
    ]
    print(f"\n{'path':<48} {'ops/s':>10} {'vs raw sign':>12}")
    for name, value in rows:
        print(f"{name:<48} {value:>10.0f} {value / raw:>11.3f}x")

    print(f"\n{'state (registered workloads)':<48} {'attest/s':>10} {'vs 10':>12}")
    for workloads in (10, 100, 10_000):
        value = in_process if workloads == 10 else attest_in_process(workloads, args.seconds)
        print(f"{workloads:<48} {value:>10.0f} {value / in_process:>11.3f}x")


if __name__ == "__main__":
    main()
