"""Fast start: ``zerolane --help`` and ``zerolane version`` import none of the heavy
dependencies (servers, the MCP SDK, the policy engine); the commands that use them
import them when they run. Timing is measured by bench/cli_start.py, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zerolane.server.deployment import init_home

HEAVY = ("mcp", "uvicorn", "fastapi", "starlette", "aiohttp", "cedarpy")
#: runs ``python -m zerolane ARGS`` and, at exit, prints the heavy modules it imported
PROBE = f"""
import atexit, json, runpy, sys
def report():
    loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r}))
    sys.__stderr__.write("LOADED=" + json.dumps(loaded) + "\\n")
atexit.register(report)
sys.argv = ["zerolane", *sys.argv[1:]]
runpy.run_module("zerolane", run_name="__main__")
"""


def _loaded(*args: str) -> tuple[int, list[str]]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=60
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED="))
    return done.returncode, json.loads(line.removeprefix("LOADED="))


@pytest.mark.parametrize("args", [["version"], ["--help"], ["task", "--help"]], ids=" ".join)
def test_help_and_version_import_no_heavy_dependency(args: list[str]) -> None:
    code, loaded = _loaded(*args)
    assert code == 0
    assert loaded == []


def test_a_command_that_needs_one_still_imports_it(tmp_path: Path) -> None:
    """The probe's twin: ``policy check`` loads cedarpy when it runs (the probe sees it)."""
    init_home(tmp_path / "home", "imports.example")[0].close()
    code, loaded = _loaded("policy", "check", str(tmp_path / "home" / "policies"))
    assert code == 0
    assert "cedarpy" in loaded


def test_task_list_imports_no_heavy_dependency(tmp_path: Path) -> None:
    """Listing, showing and drawing tasks read the home's stores alone: neither the
    server stack nor the policy engine (no deployment is built)."""
    init_home(tmp_path / "home", "imports.example")[0].close()
    for args in (["task", "list"], ["task", "list", "--state", "active", "--json"]):
        code, loaded = _loaded(*args, "--home", str(tmp_path / "home"))
        assert code == 0
        assert loaded == []


#: runs ``python -m zerolane ARGS`` and, at exit, prints the CLI modules it imported
CLI_PROBE = """
import atexit, json, runpy, sys
def report():
    loaded = sorted(name for name in sys.modules if name.startswith("zerolane.cli."))
    sys.__stderr__.write("CLI=" + json.dumps(loaded) + "\\n")
atexit.register(report)
sys.argv = ["zerolane", *sys.argv[1:]]
runpy.run_module("zerolane", run_name="__main__")
"""


def _cli_modules(*args: str) -> set[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    argv = [sys.executable, "-c", CLI_PROBE, *args]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("CLI="))
    return set(json.loads(line.removeprefix("CLI=")))


def test_a_command_imports_its_own_group_only(tmp_path: Path) -> None:
    """The command groups load when used: ``version`` imports none of them, ``task list``
    the task group alone; ``--help`` lists them all (so it loads them), as before."""
    groups = {"zerolane.cli.audit", "zerolane.cli.task", "zerolane.cli.grant"}
    assert not _cli_modules("version") & groups
    init_home(tmp_path / "home", "imports.example")[0].close()
    listed = _cli_modules("task", "list", "--home", str(tmp_path / "home"))
    assert "zerolane.cli.task" in listed
    assert not listed & (groups - {"zerolane.cli.task"})
    assert groups <= _cli_modules("--help")
