"""JWS verify cost: zerolane's verifiers against a raw ES256 verify, same process.

    .venv/bin/python bench/jws.py [--ops 2000] [--rounds 2] [--tree LABEL=PATH ...]

Each ``--tree`` is a source tree (its ``src`` goes first on PYTHONPATH) measured in its
own worker process; without one, this checkout. Trees are interleaved round by round,
and every worker measures its own floor, so each ratio compares numbers of one process.

Each row is CPU microseconds per verify (process time, so other processes on the
machine do not count), best of 5 batches of ``--ops``, each batch run right after a
batch of the floor, whose best is printed beside it with the ratio:
  raw ES256                 cryptography's ECDSA P-256 verify of a task token's
                            signing input (DER signature ready): the floor
  task token, 1 key         jws.verify of an ES256 task token (kid) against 1 key
  task token, 10 keys       the same against 10 published keys (kid picks one)
  task token, 1000 keys     ... 1000 keys: what choosing by kid costs as keys pile up
  DPoP proof, 1 agent key   rfc9449.verify_proof of ES256 proofs (a fresh jti each,
                            replay cache that remembers nothing): parse, key, signature,
                            claims, thumbprint
  DPoP proof, 1000 keys     proofs of 1000 agents in turn (the parsed-key cache holds
                            them all after the first pass)
  DPoP proof, new keys      every proof from a key never seen: key import and
                            thumbprint each time (the cost of a first request)
  sign proof, 1 key         rfc9449.make_proof, the agent's side of every request
  sign proof, 10 keys       ten agents' keys in turn in one process
  sign proof, 1000 keys     a thousand in turn: more than the signer cache holds (64),
                            so each proof imports its key again (the uncached cost)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
URL = "https://gw.bench.example/v1/items"
TOKEN = "bench-access-token." + "x" * 700
NOW = 1_700_000_000


class _Forgetful:
    """A replay cache that remembers nothing: every jti is new (the JWS cost alone)."""

    def first_use(self, key: str, expires_at: float, now: float) -> bool:
        return True


def _cpu_us(batch: Callable[[], None], ops: int) -> float:
    """CPU microseconds per operation of one run of ``batch`` (``ops`` operations): CPU
    time, not wall time, so other processes on the machine do not count."""
    start = time.process_time()
    batch()
    return (time.process_time() - start) / ops * 1e6


def _paired(
    row: Callable[[], None], ops: int, floor: Callable[[], None], floor_ops: int
) -> tuple[float, float]:
    """Best of 5 of ``row`` and of the floor, run alternately: (row us, floor us)."""
    rows, floors = [], []
    for _ in range(5):
        floors.append(_cpu_us(floor, floor_ops))
        rows.append(_cpu_us(row, ops))
    return min(rows), min(floors)


def _worker(ops: int) -> dict[str, tuple[float, float]]:
    import jwt  # signing only: both trees can sign with it
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    from zerolane.tokens import jws
    from zerolane.tokens.rfc9449 import make_proof, verify_proof

    def jwk_of(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
        return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}

    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(1000)]
    published = [jwk_of(k, f"k{i}") for i, k in enumerate(keys)]
    claims: dict[str, Any] = {"iss": "https://cp.bench.example", "sub": "spiffe://bench/a"}
    claims |= {
        "aud": ["gw"],
        "iat": NOW,
        "exp": NOW + 300,
        "jti": "t" * 22,
        "cnf": {"jkt": "j" * 43},
    }
    token = jwt.encode(claims, keys[0], algorithm="ES256", headers={"kid": "k0", "typ": "at+jwt"})
    signing_input = token.rpartition(".")[0].encode()
    der = keys[0].sign(signing_input, ec.ECDSA(hashes.SHA256()))
    raw_public = keys[0].public_key()

    def raw() -> None:
        for _ in range(ops):
            raw_public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))

    def task_token(key_count: int) -> Callable[[], None]:
        subset = published[:key_count][::-1]  # the token's key last
        for _ in range(2):
            jws.verify(token, subset)

        def run() -> None:
            for _ in range(ops):
                jws.verify(token, subset)

        return run

    def proofs(agent_keys: list[ec.EllipticCurvePrivateKey]) -> list[str]:
        return [
            make_proof(
                agent_keys[i % len(agent_keys)],
                method="POST",
                url=URL,
                access_token=TOKEN,
                iat=NOW,
                jti=f"jti-{i}",
            )
            for i in range(ops)
        ]

    def dpop(pool: list[str]) -> Callable[[], None]:
        replay = _Forgetful()

        def run() -> None:
            for proof in pool:
                verify_proof(
                    proof, method="POST", url=URL, access_token=TOKEN, replay=replay, now=NOW
                )

        return run

    one_key, many_keys = proofs(keys[:1]), proofs(keys)
    dpop(one_key)()
    dpop(many_keys)()
    fresh_ops = max(ops // 10, 20)
    fresh = iter(
        [
            make_proof(
                ec.generate_private_key(ec.SECP256R1()),
                method="POST",
                url=URL,
                access_token=TOKEN,
                iat=NOW,
                jti=f"new-{i}-{j}",
            )
            for j in range(fresh_ops)
        ]
        for i in range(5)
    )

    def signing(agent_keys: list[ec.EllipticCurvePrivateKey]) -> Callable[[], None]:
        def run() -> None:
            for i in range(ops):
                make_proof(
                    agent_keys[i % len(agent_keys)], method="POST", url=URL, access_token=TOKEN
                )

        return run

    rows: dict[str, tuple[Callable[[], None], int]] = {
        "task token, 1 key": (task_token(1), ops),
        "task token, 10 keys": (task_token(10), ops),
        "task token, 1000 keys": (task_token(1000), ops),
        "DPoP proof, 1 agent key": (dpop(one_key), ops),
        "DPoP proof, 1000 keys": (dpop(many_keys), ops),
        "DPoP proof, new keys": (lambda: dpop(next(fresh))(), fresh_ops),
        "sign proof, 1 key": (signing(keys[:1]), ops),
        "sign proof, 10 keys": (signing(keys[:10]), ops),
        "sign proof, 1000 keys": (signing(keys), ops),
    }
    results = {}
    for name, (run, count) in rows.items():
        results[name] = _paired(run, count, raw, ops)
    return results


def _run_tree(path: Path, ops: int) -> dict[str, tuple[float, float]]:
    env = {**os.environ, "PYTHONPATH": str(path / "src")}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", "--ops", str(ops)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    results: dict[str, list[float]] = json.loads(out.stdout)
    return {row: (us, floor) for row, (us, floor) in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tree", action="append", default=[], help="LABEL=PATH of a checkout")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.ops)))
        return
    trees = [tuple(t.split("=", 1)) for t in args.tree] or [("this", str(ROOT))]
    print(f"{'':18}{'row':26}{'cpu us/verify':>14}{'raw ES256':>11}{'vs raw':>9}")
    for round_ in range(1, args.rounds + 1):
        for label, path in trees:
            results = _run_tree(Path(path), args.ops)
            for i, (row, (us, floor)) in enumerate(results.items()):
                head = f"{label} r{round_}" if i == 0 else ""
                print(f"{head:18}{row:26}{us:14.1f}{floor:11.1f}{us / floor:8.2f}x")


if __name__ == "__main__":
    main()
