"""What reading ``zerolane.toml`` costs a command at start, typed (pydantic) or not.

    .venv/bin/python bench/config_load.py [--rounds 15] [--before SRC]

Each row is the wall time of a fresh process (the median of ``--rounds`` interleaved
rounds, and the least: on a loaded machine the least is the steadier) that imports
typer and ``pydantic.main`` (what every zerolane command imports anyway: the baseline
of the ratios), then, but for the baseline, imports ``zerolane.config`` and loads a
fresh home's file. ``--before SRC`` adds a row with the ``zerolane`` package found
under ``SRC`` (e.g. an older tree from ``git archive``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = "import typer, pydantic.main\n"
LOAD = BASE + "from pathlib import Path\nfrom zerolane.config import load_config\n"


def _wall(code: str, pythonpath: str | None) -> float:
    env = {**os.environ}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--before", help="a src folder holding an older zerolane")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        init = [sys.executable, "-m", "zerolane", "init", "--home", str(home)]
        subprocess.run([*init, "--trust-domain", "example.org"], check=True, capture_output=True)
        load = LOAD + f"load_config(Path({str(home)!r}))\n"
        rows: dict[str, tuple[str, str | None]] = {
            "typer + pydantic.main": (BASE, None),
            "load_config": (load, None),
        }
        if args.before:
            rows["load_config, before"] = (load, args.before)
        times: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.rounds + 1):  # the first round writes bytecode, unmeasured
            for name, (code, path) in rows.items():
                times[name].append(_wall(code, path))
    base = statistics.median(times["typer + pydantic.main"][1:])
    print(f"config load (median of {args.rounds} rounds; ratio vs typer + pydantic.main)")
    floor = min(times["typer + pydantic.main"][1:])
    print(f"{'row':26} {'wall ms':>8} {'ratio':>6} {'over baseline ms':>17} {'min ms':>7}")
    for name, values in times.items():
        median, least = statistics.median(values[1:]), min(values[1:])
        over = f"{median - base:.0f} (min {least - floor:.0f})"
        print(f"{name:26} {median:8.0f} {median / base:5.2f}x {over:>17} {least:7.0f}")


if __name__ == "__main__":
    main()
