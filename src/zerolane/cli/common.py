"""What every CLI module shares: the home option, output helpers, error handling."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from zerolane.errors import Unavailable, ZerolaneError
from zerolane.home import resolve_home

if TYPE_CHECKING:
    from zerolane.server.deployment import Deployment
    from zerolane.store.ports import Stores

console = Console()
#: nothing printed on stderr is rich markup: messages carry user input (``[/y]``)
err_console = Console(stderr=True, soft_wrap=True, markup=False)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="zerolane home folder [default: $ZEROLANE_HOME, else ./.zerolane]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
WideOption = Annotated[
    bool,
    typer.Option(
        "--wide",
        help="Never shorten ids or text (always so when the output is not a terminal).",
    ),
]
#: a cell of a listing on a terminal is shortened to this many characters (not --wide)
SHORT_CELL = 40
#: uvicorn's log levels: anything else is refused when the command line is parsed
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
LogLevelOption = Annotated[LogLevel, typer.Option("--log-level", help="uvicorn log level")]
#: how a server writes its log lines (:func:`zerolane.logs.configure_logging`)
LogFormatOption = Annotated[
    Literal["text", "json"],
    typer.Option("--log-format", help="Log lines as readable text or one JSON object each."),
]
PORT_MAX = 65535
#: the longest duration a CLI option takes (a join token's TTL): 366 days
MAX_DURATION = 366 * 86400


def port_option(help_text: str) -> Any:
    """``--port``: 0..65535 checked at parse time (0: any free port, the one bound is printed)."""
    return typer.Option("--port", min=0, max=PORT_MAX, help=help_text)


def printable(text: str) -> str:
    """``text`` safe to show on a terminal: control characters (an ESC starting a
    terminal escape sequence, a bidi override turning text around) are shown as
    ``\\x1b`` / ``\\u202e`` instead of acting. Data from agents and requests (task
    intents, audit subjects, error messages) goes through it."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def cells(*values: object) -> list[Text]:
    """A table row of plain, printable text: a cell is never read as rich markup."""
    return [Text(printable(str(value))) for value in values]


def is_wide(wide: bool) -> bool:
    """Whether a listing shows everything in full: asked for, or printed to something
    other than a terminal (a pipe, a file: ids there are to be used, not read)."""
    return wide or not console.is_terminal


def shortened(text: str, wide: bool) -> str:
    """``text``, cut to :data:`SHORT_CELL` characters on a terminal unless ``wide``."""
    if is_wide(wide) or len(text) <= SHORT_CELL:
        return text
    return text[: SHORT_CELL - 1] + "…"


def print_table(table: Table, *, empty: str, wide: bool) -> None:
    """Print a listing: ``empty`` (e.g. "no tasks") when it has no row, and, when
    :func:`is_wide`, every cell in full (nothing folded or cut, whatever the width)."""
    if not table.rows:
        console.print(empty, highlight=False)
        return
    if is_wide(wide):
        for column in table.columns:
            column.no_wrap, column.overflow = True, "ignore"
        Console(width=1_000_000, soft_wrap=True).print(table)
        return
    console.print(table)


#: set for a command line with ``--json``: its errors are printed as JSON too
json_errors: ContextVar[bool] = ContextVar("json_errors", default=False)


def report(reason: str, message: str) -> None:
    """Print ``error <reason>: <message>`` on stderr, one line per line of a message
    that lists several problems; the message is text, never rich markup (``[/y]`` in it
    prints as is). Under ``--json`` the line is ``{"reason": ..., "message": ...}``
    (the API's error body)."""
    lines = [printable(" ".join(line.split())) for line in message.splitlines()]
    lines = [line for line in lines if line] or [""]
    reason = printable(reason)
    if json_errors.get():
        sys.stderr.write(json.dumps({"reason": reason, "message": "\n".join(lines)}) + "\n")
        return
    for text in lines:  # a refusal naming several problems: one line each
        line = Text.assemble(("error", "red"), " ", (reason, "bold"), ": ", text)
        err_console.print(line, highlight=False, soft_wrap=True)


def exit_code(err: ZerolaneError) -> int:
    """2 for bad input or refusals, 1 when something we depend on failed."""
    return 1 if isinstance(err, Unavailable) else 2


def fail(err: ZerolaneError) -> NoReturn:
    report(err.reason, err.message)
    raise typer.Exit(exit_code(err))


@contextmanager
def opened(home: Path | None) -> Iterator[Deployment]:
    """The whole deployment of a home: every service, for commands that change it."""
    from zerolane.server.deployment import Deployment

    deployment = Deployment.open(resolve_home(home))
    try:
        yield deployment
    finally:
        deployment.close()


@contextmanager
def opened_stores(home: Path | None) -> Iterator[Stores]:
    """Only a home's stores (its configuration read for their URL): for a command that
    reads them, without building the deployment (keys, policies, brokers...) or
    importing what it needs. Refused as :func:`opened` is for a missing home
    (``home.missing``) or a bad configuration."""
    from zerolane.config import load_config
    from zerolane.store.open import open_stores

    folder = resolve_home(home)
    stores = open_stores(load_config(folder).store_url, base=folder)
    try:
        yield stores
    finally:
        stores.close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def parse_duration(text: str, maximum: int = MAX_DURATION) -> int:
    """``90``, ``90s``, ``10m``, ``2h``, ``7d`` -> seconds (at most ``maximum``)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    scale = 1
    if value and value[-1] in units:
        scale, value = units[value[-1]], value[:-1]
    if not (value.isascii() and value.isdigit()) or int(value) <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 10m, 2h or 7d")
    if len(value) > 12 or int(value) * scale > maximum:
        raise typer.BadParameter(f"{text!r} is longer than the most allowed, {maximum} s")
    return int(value) * scale
