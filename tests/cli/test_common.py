"""What the CLI prints of data it does not control (agents' intents, audit subjects,
error messages): text, never rich markup, and no terminal control sequence."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from zerolane.audit.events import Actor
from zerolane.cli.common import printable
from zerolane.cli.main import app
from zerolane.server.deployment import Deployment, init_home
from zerolane.types import Outcome

runner = CliRunner()
HOSTILE = "evil[/y][bold]\x1b]0;pwned\x07\x1b[2J\u202etxt"


def test_printable_shows_control_characters_and_keeps_text() -> None:
    assert printable("plain é☃ [/y] text") == "plain é☃ [/y] text"
    shown = printable(HOSTILE)
    assert "\x1b" not in shown
    assert "\u202e" not in shown
    assert "\x07" not in shown
    assert shown == "evil[/y][bold]\\x1b]0;pwned\\x07\\x1b[2J\\u202etxt"


def test_audit_tail_prints_a_hostile_subject_as_text(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home, "common.example")[0].close()
    deployment = Deployment.open(home)
    try:
        deployment.audit.record(
            "decision", actor=Actor("workload", "x"), subject=HOSTILE, outcome=Outcome.DENIED
        )
    finally:
        deployment.close()
    result = runner.invoke(app, ["audit", "tail", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "subject=evil[/y][bold]\\x1b]0;pwned\\x07\\x1b[2J\\u202etxt" in result.output
    assert "\x1b" not in result.output


def test_an_error_message_is_printed_as_text(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home, "common.example")[0].close()
    result = runner.invoke(app, ["task", "show", f"tsk_{HOSTILE}", "--home", str(home)])
    assert result.exit_code == 2
    assert result.output.startswith("error task.unknown: no task tsk_evil[/y][bold]\\x1b]0;")
    assert "\x1b" not in result.output
