"""The extras are honest: pyproject.toml's core dependencies are the agent side, each
extra brings the modules zerolane.cli.extras says it does, every module zerolane imports
comes with the core or an extra, and a command run without its extra says which to
install in one line (exit 1), not a traceback."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.blocked_imports import EXTRAS_MODULES, run_without
from zerolane.cli.extras import MODULES, extra_of, missing_extra
from zerolane.server.deployment import init_home

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: runs ``zerolane ARGS`` as the console script does
CLI = (
    "import runpy, sys; sys.argv[0] = 'zerolane'; runpy.run_module('zerolane', run_name='__main__')"
)


def modules_of(distribution: str) -> set[str]:
    """The public top-level modules an installed distribution provides."""
    wanted = canonicalize_name(distribution)
    return {
        module
        for module, names in metadata.packages_distributions().items()
        if wanted in {canonicalize_name(name) for name in names} and not module.startswith("_")
    }


def closure(requirements: Iterable[str]) -> set[str]:
    """The distributions these requirements install, with theirs (markers evaluated)."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        for wanted in requirement.extras or {""}:
            key = f"{name}[{wanted}]"
            if key in seen:
                continue
            seen.add(key)
            todo += [(Requirement(r), wanted) for r in metadata.requires(name) or ()]
    return {key.partition("[")[0] for key in seen}


def third_party_imports() -> Iterator[tuple[str, str]]:
    """``(module, file)`` for every non-stdlib top-level module src/zerolane imports."""
    for path in sorted((ROOT / "src" / "zerolane").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top not in ("zerolane", "__future__"):
                    yield top, str(path.relative_to(ROOT))


def test_the_extras_are_server_mcp_postgres_and_all() -> None:
    extras = PROJECT["optional-dependencies"]
    assert set(extras) == {*MODULES, "all"}
    assert extras["all"] == [f"zerolane[{','.join(MODULES)}]"]


@pytest.mark.parametrize("extra", sorted(MODULES))
def test_each_extra_brings_the_modules_the_cli_names(extra: str) -> None:
    for requirement in PROJECT["optional-dependencies"][extra]:
        provided = modules_of(Requirement(requirement).name)
        assert provided, f"{requirement} is not installed here (make install: all extras)"
        assert provided <= MODULES[extra], f"{requirement}: {provided - MODULES[extra]}"


def test_the_core_installs_no_extra() -> None:
    """``pip install zerolane`` (the agent side) pulls none of the extras' distributions."""
    core = closure(PROJECT["dependencies"])
    for extra in MODULES:
        own = {
            canonicalize_name(Requirement(r).name) for r in PROJECT["optional-dependencies"][extra]
        }
        assert not own & core, f"the core installs {extra}'s {own & core}"
    assert not {"fastapi", "uvicorn", "cedarpy", "psycopg", "mcp", "starlette"} & core


def test_every_module_zerolane_imports_comes_with_the_core_or_an_extra() -> None:
    installed = {module for name in closure(PROJECT["dependencies"]) for module in modules_of(name)}
    strays = sorted(
        {
            f"{module} ({where})"
            for module, where in third_party_imports()
            if module not in installed and extra_of(module) is None
        }
    )
    assert strays == [], "imported, but neither the core nor an extra installs it"


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("fastapi", "server"),
        ("yaml.constructor", "server"),
        ("cedarpy", "server"),
        ("mcp.client.session", "mcp"),
        ("psycopg", "postgres"),
        ("httpx", None),  # the core's: a broken install, not an extra
        ("zerolane.sdk", None),
        (None, None),
    ],
)
def test_the_extra_of_a_missing_module(module: str | None, extra: str | None) -> None:
    assert extra_of(module) == extra


def test_a_missing_module_of_no_extra_is_no_extra_error() -> None:
    assert missing_extra(ModuleNotFoundError("No module named 'x'", name="x")) is None


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr  # one line, no traceback
    return lines[0]


def test_policy_check_without_the_server_extra_says_which_to_install(tmp_path: Path) -> None:
    init_home(tmp_path / "home", "extras.example")[0].close()
    policies = str(tmp_path / "home" / "policies")
    done = run_without({"cedarpy"}, CLI, "policy", "check", policies)
    assert done.returncode == 1
    line = error_line(done.stderr)
    assert line.startswith("error cli.extra_missing: this command needs cedarpy")
    assert "pip install 'zerolane[server]'" in line
    # the twin: with the extra installed the same command passes
    assert run_without(set(), CLI, "policy", "check", policies).returncode == 0


def test_up_without_the_server_extra_says_which_to_install(tmp_path: Path) -> None:
    init_home(tmp_path / "home", "extras.example")[0].close()
    done = run_without({"fastapi"}, CLI, "up", "--home", str(tmp_path / "home"), "--port", "0")
    assert done.returncode == 1
    assert re.fullmatch(
        r"error cli\.extra_missing: this command needs fastapi, which the 'server' extra "
        r"installs: pip install 'zerolane\[server\]' \(or 'zerolane\[all\]'\)",
        error_line(done.stderr),
    )


def test_version_and_help_need_no_extra() -> None:
    for args in (["version"], ["--help"]):
        done = run_without(EXTRAS_MODULES, CLI, *args)
        assert done.returncode == 0, done.stderr
