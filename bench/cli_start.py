"""How long a ``zerolane`` command takes to start, against Python and typer alone.

    .venv/bin/python bench/cli_start.py [--rounds 5] [--top 8]

Rows (wall time of a fresh process, and the imports' cumulative time as
``python -X importtime`` reports it summed over the top-level imports; each the median
of ``--rounds`` interleaved rounds):
  python -c pass              the interpreter alone (the floor)
  python -c "import typer"    the CLI framework alone: the baseline of the ratios
  typer app, one command      a one-command typer app run: what any typer CLI costs
  zerolane version            -m zerolane version
  zerolane --help             -m zerolane --help (every command's help text)
  zerolane task list          -m zerolane task list over a fresh home (opens it)

A column says which of the heavy dependencies (the MCP SDK, uvicorn, FastAPI,
Starlette, aiohttp, cedarpy) the command imported; then the top imports of each
zerolane row by cumulative time. State does not grow here: a fresh home is used.
Bytecode is cached (one unmeasured round first), as in an installed zerolane.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("mcp", "uvicorn", "fastapi", "starlette", "aiohttp", "cedarpy")
#: the framework's floor: typer parses and runs a command (it imports pydantic then)
HELLO = "import typer\napp = typer.Typer()\n@app.command()\ndef hello() -> None: pass\napp([])"
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)")


def _rows(home: Path) -> list[tuple[str, list[str]]]:
    zerolane = [sys.executable, "-m", "zerolane"]
    return [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ('python -c "import typer"', [sys.executable, "-c", "import typer"]),
        ("typer app, one command", [sys.executable, "-c", HELLO]),
        ("zerolane version", [*zerolane, "version"]),
        ("zerolane --help", [*zerolane, "--help"]),
        ("zerolane task list", [*zerolane, "task", "list", "--home", str(home)]),
    ]


def _env() -> dict[str, str]:
    """Bytecode is cached as an installed zerolane's is (a first, unmeasured round
    writes it): PYTHONDONTWRITEBYTECODE would measure compiling the sources too."""
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=_env(), capture_output=True, check=True)
    return time.perf_counter() - started


def _imports(command: list[str]) -> list[tuple[int, int, str]]:
    """(cumulative µs, depth, module) of every import of ``command``."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    found = []
    for line in done.stderr.splitlines():
        match = LINE.match(line)
        if match:
            found.append((int(match[2]), len(match[3]) // 2, match[4]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        init = ["init", "--trust-domain", "bench.example", "--home", str(home)]
        subprocess.run(
            [sys.executable, "-m", "zerolane", *init],
            env=_env(),
            capture_output=True,
            check=True,
        )
        rows = _rows(home)
        for _, command in rows:  # warm-up: bytecode written, files in the page cache
            _wall(command)
        walls: dict[str, list[float]] = {name: [] for name, _ in rows}
        totals: dict[str, list[int]] = {name: [] for name, _ in rows}
        imports: dict[str, list[tuple[int, int, str]]] = {}
        for _ in range(args.rounds):  # interleaved: a busy moment hits every row alike
            for name, command in rows:
                walls[name].append(_wall(command))
                imports[name] = _imports(command)
                totals[name].append(sum(c for c, depth, _ in imports[name] if depth == 0))

    base = statistics.median(walls['python -c "import typer"'])
    print(f"command start (median of {args.rounds} rounds; ratio vs python -c 'import typer')")
    print(f"{'row':<28}{'wall ms':>9}{'ratio':>8}{'import ms':>11}  heavy imported")
    for name, _ in rows:
        wall = statistics.median(walls[name])
        total = statistics.median(totals[name])
        modules = {module.split(".")[0] for _, _, module in imports[name]}
        heavy = ", ".join(h for h in HEAVY if h in modules) or "-"
        print(f"{name:<28}{wall * 1000:>9.0f}{wall / base:>7.2f}x{total / 1000:>11.1f}  {heavy}")
    for name, _ in rows[3:]:
        print(f"\ntop imports of {name} (cumulative ms)")
        top = sorted((i for i in imports[name] if i[1] == 0), key=lambda i: i[0], reverse=True)[
            : args.top
        ]
        for cumulative, _, module in top:
            print(f"  {cumulative / 1000:>8.1f}  {module}")


if __name__ == "__main__":
    main()
