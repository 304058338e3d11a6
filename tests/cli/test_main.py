"""The root command: every failure is one line ``error <reason>: <message>`` and an exit
code (0, 1 or 2), never a traceback or click's usage panel, whatever the arguments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.core import TyperGroup
from typer.testing import CliRunner, Result

from zerolane.cli import servers
from zerolane.cli.main import app
from zerolane.server.deployment import init_home

runner = CliRunner()
TD = "hostile.example"
ROOT = typer.main.get_command(app)


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every runnable command under ``command`` with its path (``("task", "list")``),
    found as click finds them (the root loads its groups when asked for them)."""
    if not isinstance(command, TyperGroup):
        yield path, command
        return
    ctx = typer.Context(command)
    for name in sorted(command.list_commands(ctx)):
        yield from _leaves(command.get_command(ctx, name), (*path, name))


COMMANDS = dict(_leaves(ROOT))
#: commands that serve until stopped: each run here ends with an argument that fails
#: validation (so none may start), and starting a server fails the test anyway
SERVERS = {
    ("up",): ["--port", "65536"],
    ("gateway", "run"): ["--port", "65536"],
    ("forward-auth", "run"): ["--port", "-1"],
    ("mcp-gateway", "run"): ["--log-level", "loud"],
    ("demo",): ["--no-such-option"],
}
#: options that never return (``audit tail --follow``) are not drawn
ENDLESS = {"--follow", "-f"}

HOSTILE = [
    "99999999999999999999",
    "-99999999999999999999",
    "9" * 400,
    "-1",
    "0",
    "65536",
    "1e309",
    "nan",
    "[/y]",
    "[bold]x[/bold]",
    "[/]",
    "",
    " ",
    "x" * 5000,
    "--nope",
    "-z",
    "--",
    "-",
    "--json",
    "--help",
    "é☃𝄞\u202e\u200b",
    "spiffe://hostile.example/[/y]",
    "tsk_[/y]",
    "10m",
    "\udcff[/y]",  # bytes that are not UTF-8 in an argv arrive as lone surrogates
    "99999999999999999999d",
]


def _safe(text: str) -> bool:
    """No path outside the test's folder: tests run as any user (root included), and a
    hostile ``--home`` is where ``zerolane init`` writes. NUL cannot be in an argv."""
    return not text.startswith(("/", "~")) and ".." not in text and "\x00" not in text


def _tokens(command: Any) -> st.SearchStrategy[list[str]]:
    options = sorted(
        {opt for param in command.params for opt in param.opts if opt.startswith("-")} - ENDLESS
    )
    free_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40).filter(_safe)
    drawn = [st.sampled_from(HOSTILE), st.integers().map(str), free_text]
    value = st.one_of(*drawn, *([st.sampled_from(options)] if options else []))
    return st.lists(value, max_size=6)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home to act on; the working folder and ``$ZEROLANE_HOME`` point into a temp dir;
    serving is made to fail loudly (no command here may start a server)."""
    work = tmp_path_factory.mktemp("hostile")
    path = work / "home"
    init_home(path, TD)[0].close()

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a server was started")

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        patch.setattr(uvicorn.Server, "run", refuse)
        patch.setattr(servers, "bind", refuse)
        yield path


def _invoke(args: list[str], home: Path) -> Result:
    env = {"ZEROLANE_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    return runner.invoke(app, args, env=env)


def _assert_handled(result: Result) -> None:
    assert result.exit_code in {0, 1, 2}, (result.exit_code, result.output)
    assert "Traceback" not in result.output, result.output
    assert "cli.internal" not in result.output, result.output  # a crash, shown as one line
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "╭─ Error" not in result.output, result.output  # click's error panel


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_hostile_arguments_end_in_a_handled_exit(path: tuple[str, ...], home: Path) -> None:
    suffix = SERVERS.get(path, [])

    @settings(
        max_examples=10,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(_tokens(COMMANDS[path]))
    def run(tokens: list[str]) -> None:
        result = _invoke([*path, *tokens, *suffix], home)
        _assert_handled(result)
        if suffix and "--help" not in tokens:
            assert result.exit_code == 2, result.output  # refused at parse time

    run()


@pytest.mark.parametrize(
    "args",
    [
        ["up", "--port", "99999"],
        ["up", "--port", "-1"],
        ["up", "--log-level", "loud"],
        ["gateway", "run", "--config", "g.toml", "--port", "99999"],
        ["gateway", "run", "--config", "g.toml", "--log-level", "loud"],
        ["forward-auth", "run", "--config", ".", "--port", "65536"],
        ["forward-auth", "run", "--config", ".", "--log-level", "loud"],
        ["mcp-gateway", "run", "--config", "home/zerolane.toml", "--log-level", "loud"],
        ["audit", "tail", "-n", "99999999999999999999"],
        ["audit", "tail", "-n", "0"],
        ["task", "list", "--limit", "x"],
        ["attest", "join-token", "spiffe://hostile.example/a", "--ttl", "99999999999999999999d"],
        ["no-such-command"],
    ],
    ids=" ".join,
)
def test_a_bad_argument_is_one_usage_line_and_exit_2(args: list[str], home: Path) -> None:
    result = _invoke(args, home)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error cli.usage: "), result.output


def test_a_valid_port_and_log_level_pass_validation(home: Path) -> None:
    """The legitimate twin: in range and a known level reach the command (and here the
    command stops on the missing config file, exit 2, not on the port or level)."""
    result = _invoke(["gateway", "run", "--config", "missing.toml", "--port", "0"], home)
    assert "config.file" in result.output, result.output
    result = _invoke(["up", "--port", "65535", "--log-level", "info", "--help"], home)
    assert result.exit_code == 0, result.output


def test_markup_in_a_message_prints_as_is(home: Path) -> None:
    result = _invoke(["task", "show", "tsk_[/y]"], home)
    assert result.exit_code == 2, result.output
    assert "tsk_[/y]" in result.output
    assert "MarkupError" not in result.output


def test_help_still_prints(home: Path) -> None:
    for args in (["--help"], ["task", "--help"], ["audit", "tail", "--help"]):
        result = _invoke(args, home)
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_no_command_prints_the_help_and_exits_2(home: Path) -> None:
    result = _invoke([], home)
    assert result.exit_code == 2
    assert "Usage" in result.output
    assert "error" not in result.output


def test_a_crash_is_one_line_and_exit_1(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("boom [/y]")

    monkeypatch.setattr("zerolane.cli.task.opened_stores", boom)
    monkeypatch.delenv("ZEROLANE_DEBUG", raising=False)
    result = _invoke(["task", "list"], home)
    assert result.exit_code == 1
    assert result.output.strip() == "error cli.internal: RuntimeError: boom [/y]"
