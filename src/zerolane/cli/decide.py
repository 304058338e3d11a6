"""``zerolane decide``: one ad-hoc question to a home's policies, like ``opa eval``.

The request is written as a policy test case is (docs/policies.md), without ``name``
and ``expect``: ``task:`` + ``request:`` for a request under a task, or ``open:`` for
opening one; unset facts take the same defaults as in test cases. The answer is the
policies' alone (no task store, no token): what the PDP would decide on those facts.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from zerolane.cli.common import HomeOption, JsonOption, print_json
from zerolane.errors import InvalidInput, ZerolaneError

#: keys of a case file's top level (the rest of the input is the case)
_FILE_LEVEL = ("internal_destinations",)
#: the most input read, in bytes
MAX_INPUT = 1 << 20
_NAME = "decide"


def _read(source: str) -> Any:
    import yaml

    try:
        if source == "-":
            text = sys.stdin.read(MAX_INPUT + 1)
        else:
            with Path(source).open(encoding="utf-8") as file:
                text = file.read(MAX_INPUT + 1)
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput("decide.input", f"cannot read {source}: {err}") from None
    if len(text) > MAX_INPUT:
        raise InvalidInput("decide.input", f"{source}: more than {MAX_INPUT} bytes")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidInput("decide.input", f"{source}: not YAML or JSON: {err}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("decide.input", f"{source}: must be a mapping (task + request, or open)")
    return doc


def _case_file(doc: dict[str, Any], folder: Path) -> Path:
    """The input as a one-case test file (``expect`` is required there, unused here)."""
    import yaml

    body = {k: v for k, v in doc.items() if k not in _FILE_LEVEL}
    for reserved in ("name", "expect", "reasons"):
        if reserved in body:
            raise InvalidInput("decide.input", f"{reserved!r} belongs to test cases, not here")
    top = {k: doc[k] for k in _FILE_LEVEL if k in doc}
    path = folder / f"{_NAME}.yaml"
    path.write_text(yaml.safe_dump({**top, "cases": [{"name": _NAME, "expect": "allow", **body}]}))
    return path


def register(app: typer.Typer) -> None:
    @app.command("decide")
    def decide(
        source: Annotated[
            str,
            typer.Argument(
                help="The request (YAML or JSON, a test case without name and expect); - for stdin",
                show_default=False,
            ),
        ],
        home: HomeOption = None,
        policies: Annotated[
            Path | None,
            typer.Option(help="Policy folder [default: the home's policies]"),
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Ask the home's policies one question (like opa eval): prints allow or deny and
        the deciding policies; exit 0 either way, 2 on invalid input."""
        from zerolane.cli.policy import home_policies
        from zerolane.policy.cedar import CedarEngine
        from zerolane.policy.testing import load_case_file
        from zerolane.server.deployment import resolve_home

        folder = policies or home_policies(resolve_home(home))
        doc = _read(source)
        with tempfile.TemporaryDirectory(prefix="zerolane-decide-") as work:
            path = _case_file(doc, Path(work))
            try:
                [case] = load_case_file(path)
            except ZerolaneError as err:
                where = f"{path}: cases[0] ({_NAME})"
                raise type(err)(err.reason, err.message.replace(where, source)) from None
        engine = CedarEngine(folder)
        result = engine.decide(case.request)
        decision = "allow" if result.allowed else "deny"
        if as_json:
            print_json(
                {
                    "decision": decision,
                    "allowed": result.allowed,
                    "policies": list(result.policy_ids),
                    "errors": list(result.errors),
                    "policy_version": engine.version,
                }
            )
            return
        typer.echo(decision)
        typer.echo(f"  policies: {', '.join(result.policy_ids) or '-'}")
        for error in result.errors:
            typer.echo(f"  error: {error}")
