"""Entry point: ``zerolane [COMMAND]``."""

from __future__ import annotations

import typer

from zerolane import __version__
from zerolane.cli import (
    audit,
    demo,
    enforcement_point,
    federation,
    forward_auth,
    gateway,
    grant,
    home,
    keys,
    mcp_gateway,
    playbook,
    policy,
    serve,
    task,
    workload,
)
from zerolane.cli.common import err_console, exit_code
from zerolane.errors import ZerolaneError

app = typer.Typer(
    name="zerolane",
    help=(
        "Zero trust for the machine lane: workload identity, just-in-time task "
        "credentials and request-time decisions for agents and automation."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
home.register(app)
serve.register(app)
demo.register(app)
app.add_typer(keys.app, name="keys")
app.add_typer(workload.app, name="workload")
app.add_typer(workload.attest_app, name="attest")
app.add_typer(playbook.app, name="playbook")
app.add_typer(task.app, name="task")
app.add_typer(grant.app, name="grant")
app.add_typer(policy.app, name="policy")
app.add_typer(audit.app, name="audit")
app.add_typer(federation.app, name="federation")
app.add_typer(gateway.app, name="gateway")
app.add_typer(mcp_gateway.app, name="mcp-gateway")
app.add_typer(forward_auth.app, name="forward-auth")
app.add_typer(enforcement_point.app, name="enforcement-point")


@app.command("version")
def version() -> None:
    """Print the zerolane version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except ZerolaneError as err:
        err_console.print(f"error {err.reason}: {err.message}", highlight=False, markup=False)
        raise SystemExit(exit_code(err)) from None
