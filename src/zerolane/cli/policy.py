"""``zerolane policy check|test|reload``: validate, test and reload Cedar policies;
``zerolane policy schema upgrade``: bring a home's copied schema up to the shipped one.

Exit codes fit for CI: 0 ok, 1 a test case failed (or the server could not be
signalled), 2 invalid input (a refused policy set or a malformed case file).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from zerolane.cli.common import HomeOption, JsonOption, console, print_json, printable, report
from zerolane.cli.pidfile import server_pid
from zerolane.errors import InvalidInput, ZerolaneError
from zerolane.policy.engine import PolicyLoadError

if TYPE_CHECKING:
    from zerolane.policy.loader import Snapshot
    from zerolane.policy.testing import CaseResult

app = typer.Typer(help="Check, test and reload Cedar policies.", no_args_is_help=True)

POLICIES = "policies"

DirArg = Annotated[
    Path, typer.Argument(help="Folder with schema.cedarschema and *.cedar", show_default=False)
]


def _refuse(err: ZerolaneError) -> typer.Exit:
    """Print every error line of ``err`` on its own line (stderr); exit code 2."""
    lines = err.errors if isinstance(err, PolicyLoadError) else (err.message,)
    for line in lines:
        report(err.reason, line)
    return typer.Exit(2)


def _unreadable(path: Path, err: OSError) -> typer.Exit:
    """A path the system refuses to look at (a name too long, no permission...): exit 2."""
    return _refuse(InvalidInput("policy.path", f"cannot read {path}: {err.strerror or err}"))


def _load(directory: Path) -> Snapshot:
    from zerolane.policy.loader import load_snapshot

    try:
        return load_snapshot(directory)
    except PolicyLoadError as err:
        raise _refuse(err) from None
    except OSError as err:
        raise _unreadable(directory, err) from None


def _summary(snapshot: Snapshot) -> str:
    from zerolane.policy.loader import SCHEMA_NAME

    return (
        f"{len(snapshot.policy_ids)} policies in {len(snapshot.files)} files valid "
        f"against {SCHEMA_NAME} (version {snapshot.version[:12]})"
    )


@app.command("check")
def check(directory: DirArg, as_json: JsonOption = False) -> None:
    """Validate a policy folder strictly against its schema (exit 2 on any error)."""
    snapshot = _load(directory)
    if as_json:
        print_json(
            {
                "ok": True,
                "policies": list(snapshot.policy_ids),
                "files": list(snapshot.files),
                "version": snapshot.version,
            }
        )
        return
    typer.echo(f"ok: {_summary(snapshot)}")


def _case_json(r: CaseResult) -> dict[str, object]:
    return {
        "file": r.case.file,
        "index": r.case.index,
        "name": r.case.name,
        "expect": "allow" if r.case.expect_allow else "deny",
        "got": r.actual,
        "passed": r.passed,
        "policies": list(r.result.policy_ids),
        "detail": None if r.passed else r.detail,
    }


def _policy_dir(target: Path) -> Path | None:
    """The folder holding a schema at or above ``target``."""
    from zerolane.policy.loader import SCHEMA_NAME

    start = target if target.is_dir() else target.parent
    for folder in (start, *start.parents):
        if (folder / SCHEMA_NAME).is_file():
            return folder
    return None


@app.command("test")
def run_tests(
    target: Annotated[
        Path, typer.Argument(help="A case file, or a folder searched for *.yaml/*.json cases")
    ],
    policies: Annotated[
        Path | None,
        typer.Option(help="Policy folder [default: the folder with a schema at or above TARGET]"),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print every case, not only failures.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run policy test cases; exit 1 if any case fails, 2 on invalid input.

    Prints the failed cases and a summary; -v prints every case.
    """
    from zerolane.policy.cedar import CedarEngine
    from zerolane.policy.loader import SCHEMA_NAME
    from zerolane.policy.testing import run_path

    try:
        folder = policies or _policy_dir(target)
    except OSError as err:
        raise _unreadable(target, err) from None
    if folder is None:
        report("policy_test.no_policies", f"no {SCHEMA_NAME} at or above {target}")
        raise typer.Exit(2)
    try:
        engine = CedarEngine(folder)
        results = run_path(engine, target)
    except ZerolaneError as err:
        raise _refuse(err) from None
    except OSError as err:
        raise _unreadable(target, err) from None
    failed = [r for r in results if not r.passed]
    if as_json:
        cases = [_case_json(r) for r in results]
        print_json({"passed": len(results) - len(failed), "failed": len(failed), "cases": cases})
        raise typer.Exit(1 if failed else 0)
    if verbose:
        table = Table("", "case", "expect", "got", "policies")
        for r in results:
            mark = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
            expected = "allow" if r.case.expect_allow else "deny"
            table.add_row(
                mark,
                escape(printable(r.case.name)),
                expected,
                r.actual,
                escape(" ".join(r.result.policy_ids)),
            )
        console.print(table)
    for r in failed:
        where = f"{r.case.file} cases[{r.case.index}] {r.case.name}"
        typer.echo(printable(f"FAIL {where}: {r.detail}"), err=True)
    typer.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


def home_policies(root: Path) -> Path:
    """``<home>/policies``, or the ``policy_dir`` the home's config names."""
    from zerolane.config import CONFIG_NAME, load_config

    if not (root / CONFIG_NAME).is_file():
        return root / POLICIES
    try:
        return root / load_config(root).policy_dir
    except ZerolaneError as err:
        raise _refuse(err) from None


@app.command("reload")
def reload(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Validate <home>/policies, then ask the running server to load them (SIGHUP).

    Exit 2 (nothing signalled) when the policies are refused.
    """
    from zerolane.server.deployment import resolve_home

    root = resolve_home(home)
    snapshot = _load(home_policies(root))
    pid = server_pid(root)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as err:
            report("policy.signal", f"cannot signal pid {pid}: {err}")
            raise typer.Exit(1) from None
    if as_json:
        print_json({"ok": True, "version": snapshot.version, "signalled_pid": pid})
    elif pid is None:
        typer.echo(f"ok: {_summary(snapshot)}; no running server, they load at next start")
    else:
        typer.echo(f"ok: {_summary(snapshot)}; sent SIGHUP to the server (pid {pid})")


schema_app = typer.Typer(help="The home's Cedar schema.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")


@schema_app.command("upgrade")
def upgrade_schema(
    home: HomeOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a schema that was edited too (it is kept beside)"),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Replace <home>/policies/schema.cedarschema with the one this zerolane ships, when
    the home's is one an earlier zerolane shipped (it is kept as
    schema.cedarschema.bak-<time>). Exit 2, nothing changed, when it was edited (unless
    --force) or the policies do not load over the new one. A running server loads it
    when it sees the file change."""
    import datetime as dt

    from zerolane.policy.schema_upgrade import SchemaState
    from zerolane.policy.schema_upgrade import upgrade_schema as upgrade
    from zerolane.server.deployment import resolve_home

    folder = home_policies(resolve_home(home))
    try:
        done = upgrade(folder, force=force, now=dt.datetime.now(dt.UTC))
    except ZerolaneError as err:
        raise _refuse(err) from None
    except OSError as err:
        raise _unreadable(folder, err) from None
    if as_json:
        print_json(
            {
                "schema": str(done.path),
                "was": done.before.value,
                "upgraded": done.backup is not None,
                "backup": str(done.backup) if done.backup else None,
            }
        )
    elif done.before is SchemaState.CURRENT:
        typer.echo(f"ok: {done.path} is already the shipped schema")
    else:
        typer.echo(f"ok: {done.path} is now the shipped schema (the old one: {done.backup})")
