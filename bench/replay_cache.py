"""DPoP proofs checked per second, and the replay cache's memory, same run.

    .venv/bin/python bench/replay_cache.py [--seconds 1.5] [--rounds 3]
        [--sizes 1000,10000,1000000]

Rows (proofs per second, in process, one thread):
  ES256 verify (floor)        cryptography's ECDSA P-256 verify of a proof-sized
                              message: the signature check alone
  verify_proof, no cache      rfc9449.verify_proof with a cache that remembers nothing
                              (every jti is "new"): parsing, signature, claims, binding
  verify_proof + cache        the same with MemoryReplayCache: what the replay defense
                              adds on top (baseline: the row above)
  replayed proof refused      the same proof presented again: refused by the cache

Then the cache alone (first_use calls per second) and its memory: with 1,000, 10,000
and 1,000,000 live ids (1x, 10x, 1000x), ids added per second, a lookup of a seen id
per second, and bytes per id measured with tracemalloc (the keys are what the
Authenticator stores: ``<jkt>:<jti>``, 43 + 1 + 22 characters).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import secrets
import statistics
import time
import tracemalloc
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.store.memory.replay import MemoryReplayCache
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import DpopError, make_proof, proof_jwk, verify_proof

URL = "https://gw.bench.example/files/reports/q3"
TOKEN = "bench-access-token." + "x" * 700  # a task token's size; only its hash is bound
WINDOW = 300.0


class NoCache:
    """Remembers nothing: every id is new (the baseline, never for real use)."""

    def first_use(self, key: str, expires_at: float, now: float) -> bool:
        return True


def rate(fn: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(20):
            fn()
        count += 20
    return count / (time.perf_counter() - start)


def proofs_rows(seconds: float, rounds: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jkt = thumbprint(proof_jwk(key))
    now = time.time()
    pool = [make_proof(key, method="GET", url=URL, access_token=TOKEN) for _ in range(60_000)]
    message = pool[0].rsplit(".", 1)[0].encode()
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    cursor = iter(pool)

    def floor() -> None:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))

    def check(cache: MemoryReplayCache | NoCache) -> Callable[[], object]:
        def once() -> object:
            return verify_proof(
                next(cursor),
                method="GET",
                url=URL,
                access_token=TOKEN,
                replay=cache,
                now=now,
                expected_jkt=jkt,
            )

        return once

    replayed_cache = MemoryReplayCache()
    replayed = pool[-1]
    verify_proof(
        replayed, method="GET", url=URL, access_token=TOKEN, replay=replayed_cache, now=now
    )

    def replay() -> object:
        try:
            verify_proof(
                replayed,
                method="GET",
                url=URL,
                access_token=TOKEN,
                replay=replayed_cache,
                now=now,
                expected_jkt=jkt,
            )
        except DpopError as err:
            if err.reason != "dpop.replayed":
                raise
            return None
        raise AssertionError("a replayed proof was accepted")

    rows: dict[str, list[float]] = {
        "ES256 verify (floor)": [],
        "verify_proof, no cache": [],
        "verify_proof + cache": [],
        "replayed proof refused": [],
    }
    per_round = seconds / 4
    for _ in range(rounds):
        cursor = iter(pool)  # a fresh cache each round: every proof is new to it
        rows["ES256 verify (floor)"].append(rate(floor, per_round))
        rows["verify_proof, no cache"].append(rate(check(NoCache()), per_round))
        cursor = iter(pool)
        rows["verify_proof + cache"].append(rate(check(MemoryReplayCache()), per_round))
        rows["replayed proof refused"].append(rate(replay, per_round))
    base = statistics.median(rows["verify_proof, no cache"])
    print(f"proofs checked per second (median of {rounds} interleaved rounds)")
    print(f"{'row':28} {'per s':>10} {'vs no cache':>12} {'us each':>9}")
    for name, values in rows.items():
        median = statistics.median(values)
        print(f"{name:28} {median:10.0f} {median / base:11.3f}x {1e6 / median:9.1f}")


JKT = "A" * 43


def jtis(count: int) -> list[str]:
    return [secrets.token_urlsafe(16) for _ in range(count)]


def seen_again(cache: MemoryReplayCache, seen: list[str], now: float) -> Callable[[], object]:
    cursor = itertools.cycle(seen)
    return lambda: cache.first_use(next(cursor), now + WINDOW, now)


def cache_rows(sizes: list[int], seconds: float) -> None:
    now = time.time()
    print()
    print("the cache alone: live ids, ids added per second, seen-id lookups per second, memory")
    header = ("live ids", "vs first", "adds/s", "seen/s", "bytes/id", "MiB")
    print("{:>10} {:>9} {:>10} {:>10} {:>9} {:>8}".format(*header))
    first_add = None
    for size in sizes:
        fill = jtis(size)
        gc.collect()
        tracemalloc.start()
        cache = MemoryReplayCache(capacity=size + 100_000)
        start = time.perf_counter()
        for i, jti in enumerate(fill):  # the key is built per call, as the Authenticator does
            cache.first_use(f"{JKT}:{jti}", now + WINDOW + i * 1e-4, now)
        adds = size / (time.perf_counter() - start)
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        seen = [f"{JKT}:{jti}" for jti in fill[: min(size, 50_000)]]
        lookups = rate(seen_again(cache, seen, now), seconds / 2)
        first_add = first_add or adds
        print(
            f"{size:>10} {adds / first_add:8.3f}x {adds:10.0f} {lookups:10.0f} "
            f"{current / size:9.0f} {current / 2**20:8.1f}"
        )
        del cache, fill, seen
        gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000,1000000")
    args = parser.parse_args()
    proofs_rows(args.seconds, args.rounds)
    cache_rows([int(s) for s in args.sizes.split(",")], args.seconds)


if __name__ == "__main__":
    main()
