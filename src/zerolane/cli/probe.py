"""``zerolane probe``: attack a running deployment the way an adversary would (replay,
reuse, delegate, forge, confuse the path) and report what held (docs/probe.md).

Exit codes: 0 when no attack went through, 1 when one did (a ``fail``), 2 for bad
input (an unreadable probe file, an unknown scenario).
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zerolane.cli.common import HomeOption, JsonOption, console, print_json
from zerolane.errors import InvalidInput

if TYPE_CHECKING:
    from zerolane.probe.credentials import CredentialSource
    from zerolane.probe.model import Result, Scenario
    from zerolane.probe.profile import Call, TargetProfile
    from zerolane.probe.report import Report
    from zerolane.probe.runner import Progress
    from zerolane.server.deployment import Deployment
    from zerolane.settings.probe import ProbeFile, TargetFile

#: the most of a probe file read, in bytes
MAX_FILE = 256 * 1024
#: where the probe serves the key material its jku / x5u forgeries name by default
DEFAULT_CALLBACK = "http://127.0.0.1:0"
#: the label ``zerolane up`` records its control plane under (cli/serve.py)
CONTROL_PLANE = "the control plane"
_OUTCOME_STYLE = {
    "pass": "green",
    "fail": "bold red",
    "inconclusive": "yellow",
    "not_applicable": "dim",
}


def read_probe_file(path: Path) -> ProbeFile:
    """The probe file at ``path``, checked whole (every problem at once)."""
    from zerolane.settings.probe import ProbeFile
    from zerolane.settings.validate import validate

    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE + 1)
    except OSError as err:
        raise InvalidInput("probe.file", f"cannot read {path}: {err.strerror or err}") from None
    if len(raw) > MAX_FILE:
        raise InvalidInput("probe.file", f"{path}: more than {MAX_FILE} bytes")
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InvalidInput("probe.syntax", f"{path}: {err}") from None
    return validate(ProbeFile, doc, source=str(path), scheme="probe")


def _secret(base: Path, file: str | None, env: str | None, what: str) -> str:
    """A secret from its file (relative to the probe file) or environment variable."""
    from zerolane.probe.credentials import read_secret_file

    if file is not None:
        path = base / file
        try:  # a regular file of at most 64 KiB (a FIFO would hang a scheduled probe)
            value = read_secret_file(path)
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidInput("probe.secret", f"cannot read {what} from {path}: {err}") from None
    else:
        assert env is not None  # the file's checks ask for one of the two
        value = os.environ.get(env, "").strip()
        if not value:
            raise InvalidInput("probe.secret", f"{what}: ${env} is not set")
    if not value:
        raise InvalidInput("probe.secret", f"{what} is empty")
    return value


def _call(text: str | None) -> Call | None:
    from zerolane.probe.profile import Call

    if text is None:
        return None
    method, _, path = text.partition(" ")
    return Call(method, path)


def _echoes(given: str | tuple[str, ...] | None) -> tuple[Call, ...] | None:
    if given is None:
        return None
    calls = [_call(text) for text in ((given,) if isinstance(given, str) else given)]
    return tuple(call for call in calls if call is not None) or None


def build_profile(target: TargetFile, url: str | None) -> TargetProfile:
    """The target's profile: ``url`` (``--target``) or the file's ``[target] url``."""
    from zerolane.probe.profile import McpProfile, TargetProfile

    base = url or target.url
    if base is None:
        raise InvalidInput("probe.target", "give --target URL (or [target] url in the file)")
    allowed = _call(target.allowed)
    assert allowed is not None
    mcp = None
    if target.mcp is not None:
        mcp = McpProfile(
            target.mcp.path,
            target.mcp.allowed_tool,
            target.mcp.forbidden_tool,
            dict(target.mcp.allowed_arguments),
            dict(target.mcp.forbidden_arguments),
        )
    try:
        return TargetProfile(
            base,
            allowed,
            _call(target.forbidden),
            mcp,
            echo=_echoes(target.echo),
            forbidden_path=_call(target.forbidden_path),
        )
    except ValueError as err:
        raise InvalidInput("probe.target", str(err)) from None


def _control_plane(given: str | None, home: Path) -> str:
    from zerolane.cli.pidfile import read_listeners, server_pid

    if given:
        return given
    pid = server_pid(home)
    url = read_listeners(home, pid).get(CONTROL_PLANE) if pid is not None else None
    if url is None:
        raise InvalidInput(
            "probe.control_plane",
            f"no zerolane up serves {home}: give --control-plane URL (or control_plane in "
            "the probe file)",
        )
    return url


@contextmanager
def credential_source(
    probe_file: ProbeFile,
    base: Path,
    home: Path | None,
    control_plane: str | None,
    deployment: Deployment | None = None,
) -> Iterator[CredentialSource]:
    """The source the probe file's ``[credentials]`` names, closed after the run
    (``deployment``: the home's, already open, as in ``zerolane up``)."""
    from zerolane.probe.credentials import StaticBearer
    from zerolane.settings.probe import StaticFile, ZerolaneCredentials

    given = probe_file.credentials
    if isinstance(given, StaticFile):
        yield StaticBearer(_secret(base, given.token_file, given.token_env, "token"))
        return
    if isinstance(given, ZerolaneCredentials):
        from zerolane.cli.probe_home import HomeSource
        from zerolane.home import resolve_home
        from zerolane.server.deployment import Deployment

        opened = None
        if deployment is None:
            folder = resolve_home(Path(given.home) if given.home else home)
            url = _control_plane(control_plane or given.control_plane, folder)
            deployment = opened = Deployment.open(folder)
        else:
            url = control_plane or given.control_plane or ""
        source = HomeSource(
            deployment,
            url,
            given.playbook,
            audience=given.audience or None,
            authorization_details=given.authorization_details or None,
            workload=given.workload,
        )
        try:
            yield source
        finally:
            source.close()
            if opened is not None:
                opened.close()
        return
    from zerolane.probe.oauth import ClientCredentials, ClientSecret, TokenExchange
    from zerolane.settings.probe import ClientCredentialsFile

    common: dict[str, Any] = {
        "scope": given.scope,
        "resource": given.resource,
        "other_audience": given.other_resource,
        "dpop": given.dpop,
        "revocation_endpoint": given.revocation_url,
        "jwks_uri": given.jwks_url,
        "issuer": given.issuer,
        "timeout": float(probe_file.timeout),
    }
    oauth: ClientCredentials | TokenExchange
    try:
        if isinstance(given, ClientCredentialsFile):
            secret = _secret(
                base, given.client_secret_file, given.client_secret_env, "client_secret"
            )
            client = ClientSecret(given.client_id, secret, given.client_auth)
            oauth = ClientCredentials(
                given.token_url, client=client, exchange=given.exchange, **common
            )
        else:
            client = None
            if given.client_id is not None:
                secret = _secret(
                    base, given.client_secret_file, given.client_secret_env, "client_secret"
                )
                client = ClientSecret(given.client_id, secret)
            subject_file = base / given.subject_token_file if given.subject_token_file else None
            oauth = TokenExchange(
                given.token_url,
                subject_token_file=subject_file,
                subject_token_env=given.subject_token_env,
                subject_token_type=given.subject_token_type,
                client=client,
                **common,
            )
    except ValueError as err:
        raise InvalidInput("probe.credentials", str(err)) from None
    try:
        yield oauth
    finally:
        oauth.close()


def chosen_scenarios(only: Sequence[str]) -> list[Scenario]:
    """The catalog, or the scenarios ``only`` names (an id, or a family: ``proof``)."""
    from zerolane.probe.scenarios import CATALOG

    if not only:
        return list(CATALOG)
    chosen = []
    for scenario in CATALOG:
        family = scenario.id.split(".", 1)[0]
        if scenario.id in only or family in only:
            chosen.append(scenario)
    known = {s.id for s in CATALOG} | {s.id.split(".", 1)[0] for s in CATALOG}
    unknown = sorted(set(only) - known)
    if unknown:
        raise InvalidInput(
            "probe.scenario",
            f"no scenario {', '.join(unknown)} (zerolane probe --list shows them)",
        )
    return chosen


def _print_list(as_json: bool) -> None:
    from rich.table import Table

    from zerolane.probe.scenarios import CATALOG

    if as_json:
        print_json(
            [
                {
                    "id": s.id,
                    "title": s.title,
                    "surface": s.surface,
                    "attack": s.attack,
                    "expect": s.expect,
                    "needs": sorted(s.needs),
                }
                for s in CATALOG
            ]
        )
        return
    table = Table("SCENARIO", "SURFACE", "ATTACK", "NEEDS")
    table.columns[0].no_wrap = True
    for scenario in CATALOG:
        needs = ", ".join(sorted(scenario.needs)) or "-"
        table.add_row(scenario.id, scenario.surface, scenario.attack, needs)
    console.print(table)


def _print_report(report: Report) -> None:
    from rich.table import Table
    from rich.text import Text

    from zerolane.cli.common import printable

    table = Table("SCENARIO", "OUTCOME", "WHY")
    for result in report.results:
        style = _OUTCOME_STYLE[result.outcome.value]
        # the reason may quote the target: plain text, never read as rich markup
        table.add_row(
            result.scenario, f"[{style}]{result.outcome.value}[/]", Text(printable(result.reason))
        )
    console.print(table)
    counts = report.counts()
    console.print(", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n))


def probe_with_file(
    path: Path,
    *,
    only: Sequence[str] = (),
    target: str | None = None,
    home: Path | None = None,
    control_plane: str | None = None,
    deployment: Deployment | None = None,
    progress: Progress | None = None,
    callback_url: str | None = None,
) -> Report:
    """Run the probe the file at ``path`` describes (the scenarios ``only`` names);
    ``callback_url`` (``--callback-url``) overrides the file's."""
    from zerolane.probe.callback import Callback
    from zerolane.probe.context import ProbeContext
    from zerolane.probe.runner import run
    from zerolane.probe.wire import Wire

    scenarios = chosen_scenarios(only)
    probe_file = read_probe_file(path)
    profile = build_profile(probe_file.target, target)
    try:
        callback = Callback(callback_url or probe_file.callback_url or DEFAULT_CALLBACK)
    except ValueError as err:
        raise InvalidInput("probe.callback_url", str(err)) from None
    base = path.resolve().parent
    with ExitStack() as stack:
        source = stack.enter_context(
            credential_source(probe_file, base, home, control_plane, deployment)
        )
        wire = Wire(timeout=float(probe_file.timeout))
        stack.callback(wire.close)
        stack.callback(callback.close)
        context = ProbeContext(profile, source, wire, callback=callback)
        return run(scenarios, context, progress=progress)
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def _progress(total: int, *, quiet: bool) -> Iterator[Progress | None]:
    """A progress bar on a terminal (none with --json or when stderr is not one)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress as Bar

    with Bar(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("probing", total=total)

        def step(scenario: Scenario, result: Result) -> None:
            bar.update(task, advance=1, description=scenario.id)

        yield step


def register(app: typer.Typer) -> None:
    @app.command("probe")
    def probe(
        target: Annotated[
            str | None,
            typer.Option(
                "--target",
                help="The target's base URL \\[default: the file's].",
                show_default=False,
            ),
        ] = None,
        control_plane: Annotated[
            str | None,
            typer.Option(
                "--control-plane",
                help="A zerolane control plane's URL (credentials of kind zerolane) "
                "\\[default: the file's, else the running zerolane up's].",
                show_default=False,
            ),
        ] = None,
        credentials: Annotated[
            Path | None,
            typer.Option(
                "--credentials",
                help="The probe file: how to get a legitimate credential, and what the "
                "target is (docs/probe.md).",
                show_default=False,
            ),
        ] = None,
        callback_url: Annotated[
            str | None,
            typer.Option(
                "--callback-url",
                help="Where the target reaches the probe's own listener, which serves "
                "the key its jku and x5u forgeries name: http://HOST\\[:PORT] (a remote "
                "target needs an address of this machine it can reach) \\[default: the "
                "file's, else http://127.0.0.1 on a free port].",
                show_default=False,
            ),
        ] = None,
        only: Annotated[
            list[str] | None,
            typer.Option("--only", help="Run only this scenario or family (repeatable)."),
        ] = None,
        sarif: Annotated[
            Path | None, typer.Option("--sarif", help="Also write SARIF 2.1.0 here.")
        ] = None,
        html_report: Annotated[
            Path | None, typer.Option("--report", help="Also write an HTML report here.")
        ] = None,
        list_scenarios: Annotated[
            bool, typer.Option("--list", help="List the scenarios and exit.")
        ] = False,
        home: HomeOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Attack a running target the way an adversary would and report what held.

        Each scenario sends its legitimate twin first (refused: inconclusive), then the
        attack: refused is a pass, accepted a fail. Exit 1 when any attack went through.
        """
        if list_scenarios:
            _print_list(as_json)
            return
        if credentials is None:
            raise InvalidInput("probe.credentials", "give --credentials FILE (docs/probe.md)")
        count = len(chosen_scenarios(only or []))
        with _progress(count, quiet=as_json) as step:
            report = probe_with_file(
                credentials,
                only=only or (),
                target=target,
                home=home,
                control_plane=control_plane,
                progress=step,
                callback_url=callback_url,
            )
        write_reports(report, as_json=as_json, sarif=sarif, html_report=html_report)
        if report.failed:
            raise typer.Exit(1)


def write_reports(
    report: Report, *, as_json: bool, sarif: Path | None, html_report: Path | None
) -> None:
    """Print the report (a table, or JSON) and write the files asked for."""
    from zerolane.probe.report_json import to_json

    if as_json:
        print_json(to_json(report))
    else:
        _print_report(report)
    if sarif is not None:
        from zerolane.probe.sarif import to_sarif

        _write(sarif, to_sarif(report))
    if html_report is not None:
        from zerolane.probe.html import render

        _write(html_report, render(report))


def _write(path: Path, content: object) -> None:
    import json

    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise InvalidInput("probe.output", f"cannot write {path}: {err.strerror or err}") from None
