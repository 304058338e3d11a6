"""``zerolane posture``: what in your files and your home makes non-human identities
weak (docs/posture.md).

``posture scan PATH...`` reports long-lived secrets in files (detect-secrets' patterns
and zerolane's rules for CI files, ``.env`` files, shell scripts, kubeconfigs, cloud
credential files, Docker's ``config.json`` and Terraform state), each with its file and
line, the secret masked, its OWASP NHI ids and the zerolane replacement.

Exit codes: 0 when nothing was found, 1 when something was, 2 for bad input (a path
that does not exist, a report file that cannot be written).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from zerolane.cli.common import JsonOption, console, print_json, printable
from zerolane.errors import InvalidInput

if TYPE_CHECKING:
    from zerolane.posture.report import Part, Report

app = typer.Typer(
    help="Posture: long-lived secrets in files, mapped to the OWASP NHI Top 10.",
    no_args_is_help=True,
)
#: a source of findings: called once per run, returns its part of the report
Source = Callable[[], "Part"]
_SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "dim"}


def secrets_source(paths: Sequence[Path]) -> Source:
    """The source of long-lived secrets in the files of ``paths``."""

    def run() -> Part:
        from zerolane.posture.report import Part
        from zerolane.posture.secrets import scan_files

        try:
            found = scan_files(list(paths))
        except FileNotFoundError as err:
            raise InvalidInput("posture.path", f"no such file or folder: {err}") from None
        return Part(tuple(found.findings), tuple(found.notes), {"files": found.files})

    return run


def run_sources(sources: Sequence[Source]) -> Report:
    """Run every source and join what they found into one report."""
    from zerolane.posture.report import combine

    started = time.time()
    parts = [source() for source in sources]
    return combine(parts, started, time.time())


def _print_report(report: Report) -> None:
    """Findings as a table per file (then per subject), each rule's remedy once, the
    notes, and a summary line. Every cell is plain text (never rich markup)."""
    groups: dict[str, list[int]] = {}
    for i, finding in enumerate(report.findings):
        groups.setdefault(finding.path or finding.subject or "", []).append(i)
    for where, indexes in groups.items():
        table = Table(title=Text(printable(where), style="bold"), title_justify="left")
        for column in ("line", "severity", "rule", "secret", "masked", "OWASP NHI"):
            table.add_column(column)
        for i in indexes:
            f = report.findings[i]
            table.add_row(
                str(f.line) if f.line is not None else "-",
                Text(f.severity.value, style=_SEVERITY_STYLE[f.severity.value]),
                Text(f.rule),
                Text(printable(f.message)),
                Text(printable(f.masked or "-")),
                Text(", ".join(f.nhi)),
            )
        console.print(table)
    remedies = {f.rule: f.remedy for f in report.findings}
    for rule_id, remedy in sorted(remedies.items()):
        console.print(Text.assemble((rule_id, "bold"), ": ", remedy))
    for note in report.notes:
        console.print(Text(f"note: {printable(note.where)}: {note.reason}", style="dim"))
    covered = ", ".join(f"{n} {name}" for name, n in report.counts.items())
    if not report.findings:
        console.print(f"no findings ({covered})")
        return
    severities = ", ".join(f"{n} {s}" for s, n in report.by_severity().items() if n)
    console.print(f"{len(report.findings)} findings ({severities}; {covered})")


def write_reports(report: Report, *, as_json: bool, sarif: Path | None) -> None:
    """Print the report (tables, or JSON) and write SARIF if asked."""
    from zerolane.posture.report_json import to_json

    if as_json:
        print_json(to_json(report))
    else:
        _print_report(report)
    if sarif is not None:
        from zerolane.posture.sarif import to_sarif

        try:
            sarif.write_text(json.dumps(to_sarif(report), indent=2) + "\n", encoding="utf-8")
        except OSError as err:
            raise InvalidInput(
                "posture.output", f"cannot write {sarif}: {err.strerror or err}"
            ) from None


@app.command("scan")
def scan(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files and folders to scan for secrets \\[default: the current folder].",
            show_default=False,
        ),
    ] = None,
    sarif: Annotated[
        Path | None, typer.Option("--sarif", help="Also write SARIF 2.1.0 here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Find long-lived secrets in files, each with its file, line, the secret masked,
    its OWASP NHI ids and what replaces it in zerolane.

    Folders are walked without following links, skipping .git, node_modules, .venv and
    caches; a file named on the command line is always read (not a binary one). Exit 1
    when something was found, 0 when nothing was.
    """
    sources: list[Source] = [secrets_source(paths or [Path(".")])]
    report = run_sources(sources)
    write_reports(report, as_json=as_json, sarif=sarif)
    if report.failed:
        raise typer.Exit(1)
