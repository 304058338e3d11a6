"""``zerolane audit``: read, verify and export the hash-chained audit log."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from zerolane.cli.common import (
    HomeOption,
    JsonOption,
    console,
    opened,
    opened_stores,
    print_json,
    printable,
)
from zerolane.errors import InvalidInput

if TYPE_CHECKING:
    from zerolane.store.records import AuditRecord

app = typer.Typer(help="Read, verify and export the audit log.", no_args_is_help=True)
#: the most events ``tail -n`` prints (SQLite integers are 64-bit: bounded at parse time)
MAX_LINES = 1_000_000
#: the largest sequence number (SQLite integers are 64-bit)
MAX_SEQ = 2**63 - 1
_COLOURS = {"success": "green", "denied": "red", "failure": "yellow"}


def _shown(value: object) -> str:
    """A stored value in a rich line: printable, and never read as markup."""
    return escape(printable(str(value)))


def _line(record: AuditRecord, as_json: bool) -> None:
    from zerolane.audit.log import event_json

    event = event_json(record)
    if as_json:
        typer.echo(json.dumps(event, sort_keys=True))
        return
    colour = _COLOURS.get(record.outcome, "white")
    actor = event.get("actor")
    actor_id = actor.get("id") if isinstance(actor, dict) else "?"
    console.print(
        f"{record.seq:>6} {record.time} [bold]{_shown(f'{record.kind:<22}')}[/bold] "
        f"[{colour}]{_shown(f'{record.outcome:<7}')}[/{colour}] {_shown(event.get('reason'))} "
        f"subject={_shown(event.get('subject'))} actor={_shown(actor_id)}",
        highlight=False,
    )


@app.command("tail")
def tail(
    home: HomeOption = None,
    lines: Annotated[
        int, typer.Option("-n", "--lines", min=1, max=MAX_LINES, help="How many events")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Print the newest events (one JSON object per line with --json)."""
    with opened(home) as deployment:
        records = deployment.audit.tail(lines)
        for record in records:
            _line(record, as_json)
        after = records[-1].seq if records else 0
        while follow:
            batch = deployment.stores.read_events(after, 1000)
            for record in batch:
                _line(record, as_json)
                after = record.seq
            if not batch:
                time.sleep(0.5)


@app.command("verify")
def verify(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Check the hash chain; exit 1 naming the first broken link."""
    with opened(home) as deployment:
        count, broken = deployment.audit.verify()
    if as_json:
        where = None
        if broken is not None:
            where = {"seq": broken.seq, "event_id": broken.event_id, "problem": broken.problem}
        print_json({"intact": broken is None, "verified": count, "broken": where})
        raise typer.Exit(0 if broken is None else 1)
    if broken is not None:
        typer.echo(
            f"BROKEN at event {broken.seq} ({broken.event_id}): {broken.problem}; "
            f"{count} event(s) before it verified",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"OK: {count} event(s), chain intact")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) or SIGTERM while the block runs: a following
    export finishes the line it is writing and exits 0. The handlers are restored after."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals can only be handled in the main thread
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """Standard output, or ``path`` opened to append, created with mode 0600 (an audit
    log is sensitive even masked); a regular file that was wider is narrowed to 0600 (a
    pipe or a device such as ``/dev/null`` is written to as it is, never chmod-ed). A
    symbolic link is refused: followed, it would append to (and narrow) whatever file it
    names, chosen by whoever could write the folder."""
    if path is None:
        yield sys.stdout
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise InvalidInput(
                "audit.output_symlink", f"{path} is a symbolic link: give the file itself"
            ) from None
        raise
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)
        yield out


@app.command("export")
def export(
    home: HomeOption = None,
    fmt: Annotated[
        Literal["ocsf", "json"],
        typer.Option(
            "--format",
            help="ocsf: OCSF 1.4 events (docs/audit-export.md); json: each event as stored.",
        ),
    ] = "ocsf",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Append to this file (created with mode 0600) instead of standard output.",
            dir_okay=False,
        ),
    ] = None,
    after: Annotated[
        int,
        typer.Option(
            "--after",
            min=0,
            max=MAX_SEQ,
            help="Start after this sequence number (the last one a previous export wrote).",
        ),
    ] = 0,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep exporting new events until Ctrl-C or SIGTERM."),
    ] = False,
    poll: Annotated[
        float,
        typer.Option("--poll", min=0.05, max=60.0, help="Seconds between reads with --follow."),
    ] = 0.5,
) -> None:
    """Write the audit log as JSON lines, in order, for a SIEM (docs/audit-export.md).

    Each event carries its sequence number (OCSF: metadata.sequence; stored: seq).

    The last one written is printed on stderr: --after it resumes, nothing repeated or lost.
    """
    from zerolane.audit import export as exporting
    from zerolane.audit.log import event_json
    from zerolane.audit.ocsf import to_ocsf

    convert = to_ocsf if fmt == "ocsf" else event_json
    with opened_stores(home) as stores, _output(output) as out, _stop_on_signals() as stop:

        def write(line: str) -> None:
            out.write(line)
            out.flush()  # a SIEM agent tailing the file sees each event whole, at once

        last = exporting.export(
            stores, write, convert, after=after, follow=follow, poll=poll, stop=stop
        )
    typer.echo(f"exported through sequence number {last}", err=True)
