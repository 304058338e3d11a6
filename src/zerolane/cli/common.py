"""What every CLI module shares: the home option, output helpers, error handling."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from zerolane.errors import Unavailable, ZerolaneError
from zerolane.server.deployment import Deployment, resolve_home

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="zerolane home folder [default: $ZEROLANE_HOME, else ./.zerolane]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def exit_code(err: ZerolaneError) -> int:
    """2 for bad input or refusals, 1 when something we depend on failed."""
    return 1 if isinstance(err, Unavailable) else 2


def fail(err: ZerolaneError) -> None:
    err_console.print(f"[red]error[/red] [bold]{err.reason}[/bold]: {err.message}", highlight=False)
    raise typer.Exit(exit_code(err))


@contextmanager
def opened(home: Path | None) -> Iterator[Deployment]:
    deployment = Deployment.open(resolve_home(home))
    try:
        yield deployment
    finally:
        deployment.close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``10m``, ``2h``, ``7d`` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    scale = 1
    if value and value[-1] in units:
        scale, value = units[value[-1]], value[:-1]
    if not value.isdigit() or int(value) <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 10m, 2h or 7d")
    return int(value) * scale
