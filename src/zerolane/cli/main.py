"""Entry point: ``zerolane [COMMAND]``."""

from __future__ import annotations

import errno
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from zerolane import __version__
from zerolane.cli import decide, home, probe, serve, status
from zerolane.cli.common import JsonOption, exit_code, json_errors, print_json, report
from zerolane.cli.extras import missing_extra
from zerolane.errors import ZerolaneError

#: exit codes (docs/cli.md): 0 done, 1 a dependency failed or a check found a problem
#: (or zerolane itself crashed), 2 bad input or a refusal (a usage error included)
USAGE = 2
CRASH = 1
#: set to print the traceback of a crash (a bug in zerolane) after its one-line error
DEBUG_ENV = "ZEROLANE_DEBUG"


def _run(group: TyperGroup, args: Sequence[str] | None, **extra: Any) -> int:
    """Run the command line; every failure ends as one line ``error <reason>: <message>``
    on stderr and an exit code, never as a traceback or click's usage panel."""
    words = list(sys.argv[1:] if args is None else args)
    options = words[: words.index("--")] if "--" in words else words
    token = json_errors.set("--json" in options)
    try:
        return _outcome(group, words, **extra)
    finally:
        json_errors.reset(token)


def _outcome(group: TyperGroup, args: list[str], **extra: Any) -> int:
    try:
        result = TyperGroup.main(group, args, standalone_mode=False, **extra)
    except ZerolaneError as err:
        report(err.reason, err.message)
        return exit_code(err)
    except typer.TyperException as err:  # click's usage errors (typer vendors click)
        message = err.format_message()
        if message:  # empty for a group run without a command: its help is printed
            report("cli.usage" if err.exit_code == USAGE else "cli.error", message)
        return err.exit_code
    except typer.Abort:
        report("cli.aborted", "aborted")
        return CRASH
    except UnicodeEncodeError as err:  # an argument of bytes that are not UTF-8 (argv)
        report("cli.encoding", f"an argument is not valid UTF-8 text ({err.reason})")
        return USAGE
    except OSError as err:  # the system refused a file or a socket (a name too long...)
        where = f": {err.filename}" if err.filename else ""
        report(
            f"os.{errno.errorcode.get(err.errno or 0, 'error').lower()}",
            f"{err.strerror or err}{where}",
        )
        return CRASH
    except ModuleNotFoundError as err:  # an extra not installed: say which to install
        missing = missing_extra(err)
        if missing is None:
            return _crashed(err)
        report(*missing)
        return CRASH
    except Exception as err:
        return _crashed(err)
    return result if isinstance(result, int) else 0


def _crashed(err: Exception) -> int:
    """A bug: still one line, the traceback only when asked (``ZEROLANE_DEBUG``)."""
    report("cli.internal", f"{type(err).__name__}: {err}")
    if os.environ.get(DEBUG_ENV):
        raise err
    return CRASH


#: the command groups, each built from its module when it is used (run, completed or
#: listed in the root's help), so a command imports only its own group's module: name ->
#: (module, its typer app), in the order the root's help lists them
GROUPS = {
    "keys": ("zerolane.cli.keys", "app"),
    "workload": ("zerolane.cli.workload", "app"),
    "attest": ("zerolane.cli.workload", "attest_app"),
    "playbook": ("zerolane.cli.playbook", "app"),
    "task": ("zerolane.cli.task", "app"),
    "approval": ("zerolane.cli.approval", "app"),
    "grant": ("zerolane.cli.grant", "app"),
    "policy": ("zerolane.cli.policy", "app"),
    "audit": ("zerolane.cli.audit", "app"),
    "alerts": ("zerolane.cli.alerts", "app"),
    "federation": ("zerolane.cli.federation", "app"),
    "gateway": ("zerolane.cli.gateway", "app"),
    "mcp-gateway": ("zerolane.cli.mcp_gateway", "app"),
    "forward-auth": ("zerolane.cli.forward_auth", "app"),
    "enforcement-point": ("zerolane.cli.enforcement_point", "app"),
    "oauth": ("zerolane.cli.oauth", "app"),
    "report": ("zerolane.cli.report", "app"),
    "posture": ("zerolane.cli.posture", "app"),
}


def group(name: str) -> TyperGroup:
    """The command group ``name`` of :data:`GROUPS`, built from its module."""
    module, attribute = GROUPS[name]
    built = typer.main.get_group(getattr(importlib.import_module(module), attribute))
    built.name = name
    return built


class _Root(TyperGroup):
    """The root command: :func:`_run` reports errors instead of click; the command
    groups are loaded when used (:data:`GROUPS`)."""

    # click's Context and Command are typer's private vendored click: typed Any here
    def list_commands(self, ctx: Any) -> list[str]:
        own = [name for name in super().list_commands(ctx) if name != "version"]
        return [*own, *GROUPS, "version"]  # the groups before version, whatever the order

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in GROUPS and cmd_name not in self.commands:
            self.add_command(group(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(
        self, args: Sequence[str] | None = None, *_: Any, standalone_mode: bool = True, **extra: Any
    ) -> Any:
        code = _run(self, args, **extra)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_Root,
    name="zerolane",
    help=(
        "Zero trust for the machine lane: workload identity, just-in-time task "
        "credentials and request-time decisions for agents and automation."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    pass


home.register(app)
serve.register(app)
status.register(app)
decide.register(app)
probe.register(app)


@app.command("demo")
def demo(
    once: Annotated[
        bool, typer.Option("--once", help="Exit 0 after the story (for make demo and CI).")
    ] = False,
) -> None:
    """Run the end-to-end story in a throwaway home, narrated."""
    # cli.demo imports the SDK, the server and the gateways: only this command needs them
    from zerolane.cli import demo as story

    command = typer.Typer()
    story.register(command)
    code = typer.main.get_command(command).main(
        ["--once"] if once else [], prog_name="zerolane demo", standalone_mode=False
    )
    if code:
        raise typer.Exit(code)


@app.command("version")
def version(as_json: JsonOption = False) -> None:
    """Print the zerolane version."""
    if as_json:
        print_json({"version": __version__})
    else:
        typer.echo(__version__)


def main() -> None:
    app()
