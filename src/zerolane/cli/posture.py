"""``zerolane posture``: what in your files and your home makes non-human identities
weak (docs/posture.md).

``posture scan PATH...`` reports long-lived secrets in files (detect-secrets' patterns
and zerolane's rules for CI files, ``.env`` files, shell scripts, kubeconfigs, cloud
credential files, Docker's ``config.json`` and Terraform state), each with its file and
line, the secret masked, its OWASP NHI ids and the zerolane replacement. With
``--home DIR`` it adds the home's NHI inventory findings (ownerless, dormant, shared,
unrotated identities), its static downstream secrets, what it runs in shadow mode
(the policy set, playbooks, gateway routes) and the shipped safety rules its policies
hold without ``@shadow("never")``; ``posture inventory`` lists
the inventory itself (:mod:`zerolane.cli.posture_home`).

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

from zerolane.cli.common import (
    HomeOption,
    JsonOption,
    WideOption,
    cells,
    console,
    parse_duration,
    print_json,
    print_table,
    printable,
)
from zerolane.errors import InvalidInput

if TYPE_CHECKING:
    from zerolane.posture.report import Part, Report

#: the longest --dormant-after: ten years, as ``[detection.dormant] days``
MAX_DORMANT_AFTER = 3650 * 86400
DormantAfterOption = Annotated[
    str | None,
    typer.Option(
        "--dormant-after",
        help="A workload not seen for this long is dormant (90s, 10m, 2h, 30d) "
        "\\[default: the home's [detection.dormant] days, 30d].",
        show_default=False,
    ),
]

app = typer.Typer(
    help="Posture: long-lived secrets in files and a home's NHI inventory, mapped to "
    "the OWASP NHI Top 10.",
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


def _dormant_after(text: str | None) -> float | None:
    return None if text is None else float(parse_duration(text, MAX_DORMANT_AFTER))


def home_source(home: Path | None, dormant_after: float | None) -> Source:
    """The source of a home's inventory and configuration findings."""

    def run() -> Part:
        from zerolane.cli.posture_home import home_part, home_posture

        return home_part(home_posture(home, dormant_after=dormant_after))

    return run


def scan_sources(
    paths: Sequence[Path] | None, home: Path | None, dormant_after: float | None
) -> list[Source]:
    """What ``posture scan`` looks at: the files of ``paths``; the home of ``--home``;
    with neither, the current folder and the default home when there is one
    ($ZEROLANE_HOME, else ./.zerolane)."""
    from zerolane.cli.posture_home import has_home

    sources: list[Source] = []
    if paths or home is None:
        sources.append(secrets_source(paths or [Path(".")]))
    if home is not None or (not paths and has_home(None)):
        sources.append(home_source(home, dormant_after))
    elif dormant_after is not None:
        raise InvalidInput(
            "posture.dormant_after",
            "--dormant-after is about a home's workloads: give --home DIR "
            "(or scan with no PATH where the default home is)",
        )
    return sources


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
    covered = ", ".join(_counted(n, name) for name, n in report.counts.items())
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
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Also report this zerolane home's NHI inventory findings, static "
            "secrets, what runs in shadow mode and safety rules its policies hold "
            "unmarked (with no PATH: only the home).",
            show_default=False,
        ),
    ] = None,
    dormant_after: DormantAfterOption = None,
) -> None:
    """Find long-lived secrets in files, each with its file, line, the secret masked,
    its OWASP NHI ids and what replaces it in zerolane.

    Folders are walked without following links, skipping .git, node_modules, .venv and
    caches; a file named on the command line is always read (not a binary one). Exit 1
    when something was found, 0 when nothing was.

    With --home DIR, the home's workloads too (no owner, dormant, one identity shared
    by many playbooks, keys or attestation sources, keys not rotated), the static
    secrets its configuration injects (where they are kept, never their value),
    what runs in shadow mode (the policy set, playbooks, gateway routes) and the
    shipped safety rules its policies hold without @shadow("never"). With
    no PATH and no --home: the current folder, and the default home ($ZEROLANE_HOME,
    else ./.zerolane) when there is one.
    """
    sources = scan_sources(paths, home, _dormant_after(dormant_after))
    report = run_sources(sources)
    write_reports(report, as_json=as_json, sarif=sarif)
    if report.failed:
        raise typer.Exit(1)


@app.command("inventory")
def inventory(
    home: HomeOption = None,
    dormant_after: DormantAfterOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List a home's workloads: owner, status, attestation, last seen, tasks opened,
    playbooks used, keys (the most in use at once) and the findings about them
    (exit 0: a listing; 'posture scan --home' is the check that fails)."""
    from zerolane.cli.posture_home import home_posture
    from zerolane.posture.inventory import iso
    from zerolane.posture.inventory_findings import DAY
    from zerolane.posture.report_json import finding_json

    posture = home_posture(home, dormant_after=_dormant_after(dormant_after))
    if as_json:
        print_json(
            {
                **posture.inventory.as_json(),
                "dormant_after_days": posture.rules.dormant_after / DAY,
                "findings": [finding_json(f) for f in posture.findings],
            }
        )
        return
    table = Table(
        "SPIFFE ID", "owner", "status", "attestation", "last seen", "tasks", "playbooks",
        "keys", "key since",
    )  # fmt: skip
    for row in posture.inventory.rows:
        table.add_row(
            *cells(
                row.spiffe_id,
                row.owner or "-",
                row.status.value,
                ", ".join(row.attestation) or "-",
                iso(row.last_seen) or "never",
                row.tasks_opened,
                ", ".join(row.playbooks) or "-",
                f"{row.keys} ({row.concurrent_keys} at once)" if row.keys else "-",
                iso(row.last_key_rotation) or "-",
            )
        )
    print_table(table, empty="no workloads", wide=wide)
    for finding in posture.findings:
        console.print(
            Text.assemble(
                (finding.severity.value, _SEVERITY_STYLE[finding.severity.value]),
                " ",
                (finding.rule, "bold"),
                f" {printable(finding.message)} ({', '.join(finding.nhi)})",
            )
        )
    if not posture.findings:
        console.print("no findings")


def _counted(count: int, plural: str) -> str:
    """``1 file``, ``2 files``: a count and its noun (given in the plural)."""
    return f"{count} {plural[:-1] if count == 1 and plural.endswith('s') else plural}"
