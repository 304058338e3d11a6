"""How long a ``zerolane`` command takes to start, against Python and typer alone.

    .venv/bin/python bench/cli_start.py [--rounds 5] [--top 8] [--before SRC]

Rows (wall time of a fresh process, and the imports' cumulative time as
``python -X importtime`` reports it summed over the top-level imports; each the median
of ``--rounds`` interleaved rounds):
  python -c pass              the interpreter alone (the floor)
  python -c "import typer"    the CLI framework alone: the baseline of the ratios
  typer app, one command      a one-command typer app run: what any typer CLI costs
  zerolane version            -m zerolane version
  zerolane --help             -m zerolane --help (every command's help text)
  zerolane task list          -m zerolane task list over a fresh home (opens it)
  ... (before)                with --before SRC: each zerolane row again, run over the
                              zerolane sources in SRC (a worktree of an older commit's
                              src/, on PYTHONPATH), interleaved with the others; the
                              "vs before" column is a row's time over its before twin

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


BEFORE = " (before)"
#: a row: its name, its command line and the sources it runs over (None: the installed)
Row = tuple[str, list[str], "Path | None"]


def _rows(home: Path, before: Path | None) -> list[Row]:
    zerolane = [sys.executable, "-m", "zerolane"]
    commands = [
        ("zerolane version", [*zerolane, "version"]),
        ("zerolane --help", [*zerolane, "--help"]),
        ("zerolane task list", [*zerolane, "task", "list", "--home", str(home)]),
    ]
    rows: list[Row] = [
        ("python -c pass", [sys.executable, "-c", "pass"], None),
        ('python -c "import typer"', [sys.executable, "-c", "import typer"], None),
        ("typer app, one command", [sys.executable, "-c", HELLO], None),
    ]
    for name, command in commands:
        rows.append((name, command, None))
        if before is not None:
            rows.append((name + BEFORE, command, before))
    return rows


def _env(source: Path | None = None) -> dict[str, str]:
    """Bytecode is cached as an installed zerolane's is (a first, unmeasured round
    writes it): PYTHONDONTWRITEBYTECODE would measure compiling the sources too.
    ``source``: zerolane's sources to run instead of the installed ones."""
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env


def _wall(command: list[str], source: Path | None) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=_env(source), capture_output=True, check=True)
    return time.perf_counter() - started


def _imports(command: list[str], source: Path | None) -> list[tuple[int, int, str]]:
    """(cumulative µs, depth, module) of every import of ``command``."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        env=_env(source),
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
    parser.add_argument(
        "--before", type=Path, help="an older zerolane's src/ folder, measured alongside"
    )
    args = parser.parse_args()
    if args.before is not None and not (args.before / "zerolane" / "__init__.py").is_file():
        parser.error(f"--before {args.before}: no zerolane package there")
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        init = ["init", "--trust-domain", "bench.example", "--home", str(home)]
        subprocess.run(
            [sys.executable, "-m", "zerolane", *init],
            env=_env(),
            capture_output=True,
            check=True,
        )
        rows = _rows(home, args.before)
        for _, command, source in rows:  # warm-up: bytecode written, files in the page cache
            _wall(command, source)
        walls: dict[str, list[float]] = {name: [] for name, _, _ in rows}
        totals: dict[str, list[int]] = {name: [] for name, _, _ in rows}
        imports: dict[str, list[tuple[int, int, str]]] = {}
        for _ in range(args.rounds):  # interleaved: a busy moment hits every row alike
            for name, command, source in rows:
                walls[name].append(_wall(command, source))
                imports[name] = _imports(command, source)
                totals[name].append(sum(c for c, depth, _ in imports[name] if depth == 0))

    base = statistics.median(walls['python -c "import typer"'])
    print(f"command start (median of {args.rounds} rounds; ratio vs python -c 'import typer')")
    print(
        f"{'row':<31}{'wall ms':>9}{'ratio':>8}{'vs before':>11}{'import ms':>11}  heavy imported"
    )
    for name, _, _ in rows:
        wall = statistics.median(walls[name])
        total = statistics.median(totals[name])
        modules = {module.split(".")[0] for _, _, module in imports[name]}
        heavy = ", ".join(h for h in HEAVY if h in modules) or "-"
        twin = walls.get(name + BEFORE)
        versus = f"{wall / statistics.median(twin):>10.2f}x" if twin else f"{'':>11}"
        print(
            f"{name:<31}{wall * 1000:>9.0f}{wall / base:>7.2f}x{versus}"
            f"{total / 1000:>11.1f}  {heavy}"
        )
    for name, _, _ in rows[3:]:
        print(f"\ntop imports of {name} (cumulative ms)")
        top = sorted((i for i in imports[name] if i[1] == 0), key=lambda i: i[0], reverse=True)[
            : args.top
        ]
        for cumulative, _, module in top:
            print(f"  {cumulative / 1000:>8.1f}  {module}")


if __name__ == "__main__":
    main()
