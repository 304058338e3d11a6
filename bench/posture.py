"""How fast ``zerolane posture scan`` reads a tree, against ``detect-secrets scan``
alone on the same tree in the same run (issue 15's benchmark; goal: at most 1.3x its
time).

A generated tree of ``N`` files (``--files``): Python modules, Markdown docs, GitHub
Actions workflows, ``.env`` files, shell scripts and JSON config, one in a hundred with a
planted secret. Both run as their command line, as a subprocess, on the same tree:
``detect-secrets scan --all-files --no-verify .`` (every file, as posture reads every
file; no provider is called, as posture never calls one; it spreads files over every
core, by default) and ``zerolane posture scan --json .`` (one process). The table shows
the median wall time per size, files per second, and posture's time as a multiple of
detect-secrets'.

    .venv/bin/python bench/posture.py --files 1000 10000 100000 --rounds 1
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ALNUM = string.ascii_letters + string.digits

PY = '''"""Module {n}: helpers for the {name} service."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class Config{n}:
    host: str = "db-{n}.internal"
    port: int = {port}
    password_file: str = "/run/secrets/db-{n}"

    def url(self) -> str:
        return f"postgresql://{{self.host}}:{{self.port}}/app"


def load_{n}(text: str) -> dict[str, object]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return {{key: value for key, value in data.items() if not key.startswith("_")}}
'''
MD = "# Service {n}\n\nSet `API_TOKEN` in your CI secrets; never commit it.\n\n" * 6
WORKFLOW = (
    "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    env:\n"
    "      GH_TOKEN: ${{{{ secrets.GH_TOKEN }}}}\n    steps:\n"
    "      - uses: actions/checkout@v4\n      - run: make test-{n}\n"
)
DOTENV = "DEBUG=false\nHOST=svc-{n}.internal\nAPI_KEY=<set me>\nDB_PASSWORD=\n"
SHELL = '#!/bin/sh\nset -eu\nexport TOKEN="$(cat /run/secrets/t{n})"\nexec app --port {port}\n'
JSON = '{{\n  "name": "svc-{n}",\n  "port": {port},\n  "replicas": 3\n}}\n'
KINDS = (
    ("src", ".py", PY, 70),
    ("docs", ".md", MD, 10),
    (".github/workflows", ".yml", WORKFLOW, 5),
    ("env", ".env", DOTENV, 5),
    ("scripts", ".sh", SHELL, 5),
    ("config", ".json", JSON, 5),
)


def generate(root: Path, files: int, seed: int = 15) -> int:
    """``files`` files under ``root`` (100 per folder); returns how many hold a secret."""
    rng = random.Random(seed)
    weights = [kind[3] for kind in KINDS]
    planted = 0
    for n in range(files):
        folder, suffix, template, _ = rng.choices(KINDS, weights)[0]
        path = root / folder / f"d{n // 100}" / f"f{n}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = template.format(n=n, name=f"svc{n}", port=1000 + n % 50000)
        if n % 100 == 7:
            text += f'\nDEPLOY_TOKEN="ghp_{"".join(rng.choices(ALNUM, k=36))}"\n'
            planted += 1
        path.write_text(text, encoding="utf-8")
    return planted


def timed(command: list[str], cwd: Path, ok: Callable[[int], bool]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if not ok(done.returncode):
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    detect = [str(BIN / "detect-secrets"), "scan", "--all-files", "--no-verify", "."]
    posture = [str(BIN / "zerolane"), "posture", "scan", "--json", "."]
    print(
        "| files | planted | detect-secrets s | files/s | zerolane posture s | files/s "
        "| x detect-secrets | growth (posture) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    first: float | None = None
    for files in args.files:
        with tempfile.TemporaryDirectory(prefix="bench-posture-") as folder:
            root = Path(folder)
            planted = generate(root, files)
            ours, theirs = [], []
            for _ in range(args.rounds):  # alternated, so both see the same machine
                theirs.append(timed(detect, root, lambda code: code == 0))
                ours.append(timed(posture, root, lambda code: code in (0, 1)))
        d, p = statistics.median(theirs), statistics.median(ours)
        first = first or p / files
        growth = (p / files) / first
        print(
            f"| {files:,} | {planted} | {d:.2f} | {files / d:,.0f} | {p:.2f} | "
            f"{files / p:,.0f} | {p / d:.2f} | {growth:.2f}x per file |",
            flush=True,
        )


if __name__ == "__main__":
    main()
