"""The official MCP conformance suite (``@modelcontextprotocol/conformance`` 0.1.12) run
against a server URL, its results read back per scenario and per check.

The suite is fetched with ``npx`` and runs in a subprocess; with ``--output-dir`` it
saves each scenario's checks as ``server-<scenario>-<timestamp>/checks.json`` (a list
of ``{id, name, description, status, errorMessage?, details?}``) and prints a summary
on stdout (``✓ name: 3 passed, 0 failed``), checked against them. A scenario passes
when none of its checks is a ``FAILURE`` (the suite's own rule: a ``WARNING`` or
``INFO`` check does not fail it). The suite waits as long as a scenario does (a request
the server never answers: 60 s), and one that hangs would stop the rest, so a scenario
making no progress for a while is stopped and failed, and the ones after it run one by
one. A scenario with no saved checks fails as one check saying why. What is missing
(node, npx, the reference server) raises: never a skip.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SUITE = "@modelcontextprotocol/conformance@0.1.12"
#: the suite's reference "everything" server (see its README next to it)
REFERENCE_SERVER = (
    Path(__file__).resolve().parents[3] / ".." / "shared" / "mcp-conformance"
).resolve() / "everything-server.mjs"
SUCCESS, FAILURE = "SUCCESS", "FAILURE"
_SUMMARY = re.compile(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed$")
_RESULT_DIR = re.compile(r"^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


class ConformanceError(RuntimeError):
    """The suite could not be run (a tool or file missing, no results)."""


@dataclass(frozen=True)
class Check:
    """One check of a scenario, as the suite reported it."""

    id: str
    status: str  # SUCCESS, FAILURE, WARNING, INFO, ...
    message: str  # its errorMessage, else its description

    @property
    def passed(self) -> bool:
        return self.status == SUCCESS


@dataclass(frozen=True)
class Scenario:
    name: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return not any(check.status == FAILURE for check in self.checks)

    def check(self, check_id: str) -> Check | None:
        return next((check for check in self.checks if check.id == check_id), None)


@dataclass(frozen=True)
class SuiteRun:
    """One run of the suite against ``url``: its scenarios by name, and its output."""

    url: str
    scenarios: dict[str, Scenario]
    stdout: str
    stderr: str
    #: the scenarios stopped for making no progress
    stalled: tuple[str, ...]

    def passed(self) -> set[str]:
        return {name for name, scenario in self.scenarios.items() if scenario.passed}


def require_tools() -> tuple[str, str]:
    """``node`` and ``npx``, or a clear error naming what is missing."""
    node, npx = shutil.which("node"), shutil.which("npx")
    if node is None or npx is None:
        missing = " and ".join(n for n, p in (("node", node), ("npx", npx)) if p is None)
        raise ConformanceError(f"{missing} not found on PATH: Node 20 or later is needed")
    if not REFERENCE_SERVER.is_file():
        raise ConformanceError(f"the conformance reference server is missing: {REFERENCE_SERVER}")
    return node, npx


@dataclass(frozen=True)
class Suite:
    """The suite, fetched into npx's cache: ``argv`` runs it (node and its entry point,
    not npx each time: a second a run saved, and no race between runs for the cache)."""

    argv: tuple[str, ...]

    def scenarios(self, cwd: Path) -> list[str]:
        """Its server scenarios, in its order (``list --server``)."""
        done = _output([*self.argv, "list", "--server"], cwd)
        return re.findall(r"^  - (\S+)$", done, re.MULTILINE)


def install_suite(cwd: Path, timeout: float = 300) -> Suite:
    """Fetch the suite with npx (once; later calls find it in the cache) and check it."""
    node, npx = require_tools()
    found = _output([npx, "-y", "-p", SUITE, "-c", "command -v conformance"], cwd, timeout)
    suite = Suite((node, str(Path(found.strip()).resolve())))
    version = _output([*suite.argv, "--version"], cwd).strip()
    if version != SUITE.rsplit("@", 1)[1]:
        raise ConformanceError(f"{SUITE} is version {version!r} in npx's cache ({suite.argv})")
    return suite


def _output(argv: list[str], cwd: Path, timeout: float = 60) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not done.stdout.strip():
        raise ConformanceError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def run_suite(
    suite: Suite, url: str, workdir: Path, scenarios: list[str], stall: float
) -> SuiteRun:
    """Every scenario of the suite (``--suite all``, ``scenarios`` in its order) against
    ``url``. A scenario that prints nothing for ``stall`` seconds is stopped and failed
    (``stalled``); the ones after it then run one by one (``--scenario``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "results"
    common = ["--url", url, "--output-dir", str(out)]
    outputs: list[tuple[str, str]] = []
    stalled: list[str] = []
    stuck = _run([*suite.argv, "server", *common, "--suite", "all"], workdir, stall, outputs)
    if stuck is not None:
        stalled.append(stuck)
        done = set(_saved(out)) | {stuck}
        for name in [n for n in scenarios if n not in done]:
            argv = [*suite.argv, "server", *common, "--scenario", name]
            if _run(argv, workdir, stall, outputs) is not None:
                stalled.append(name)
    stdout = "".join(o for o, _ in outputs)
    stderr = "".join(e for _, e in outputs)
    found = read_results(out, stdout, stderr)
    for name in scenarios:
        if name in stalled:
            message = f"stopped: no progress in {stall:g} s"
            found[name] = Scenario(name, (Check(name, FAILURE, message),))
        elif name not in found:
            message = _failure_of(name, stderr) or f"the suite gave no result:\n{stderr[-2000:]}"
            found[name] = Scenario(name, (Check(name, FAILURE, message),))
    return SuiteRun(url, found, stdout, stderr, tuple(stalled))


def _run(
    argv: list[str], workdir: Path, stall: float, outputs: list[tuple[str, str]]
) -> str | None:
    """Run the suite until it ends (None) or prints nothing for ``stall`` seconds: then
    stop it and return the scenario it was running."""
    errors = workdir / f"suite-{len(outputs)}.stderr"
    with (
        errors.open("w") as sink,
        subprocess.Popen(
            argv,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
            start_new_session=True,  # its own process group, to stop all it started
        ) as process,
    ):
        assert process.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True)
        reader.start()
        seen: list[str] = []
        stuck = _watch(lines, stall, seen, current=argv[-1])
        if stuck is not None:
            os.killpg(process.pid, signal.SIGKILL)
        reader.join(timeout=30)
    outputs.append(("".join(seen), errors.read_text()))
    return stuck


def _watch(
    lines: queue.Queue[str | None], stall: float, seen: list[str], current: str
) -> str | None:
    """Collect the suite's lines into ``seen`` until it ends (None) or none comes for
    ``stall`` seconds: then the scenario it was running (``current`` before it names one)."""
    while True:
        try:
            line = lines.get(timeout=stall)
        except queue.Empty:
            return current
        if line is None:
            return None
        seen.append(line)
        if started := re.match(r"=== Running scenario: (\S+) ===", line):
            current = started.group(1)


def _lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _saved(out: Path) -> dict[str, Path]:
    """The scenarios whose checks the suite saved in ``out``, and where."""
    saved: dict[str, Path] = {}
    for path in sorted(out.rglob("checks.json")) if out.exists() else []:
        match = _RESULT_DIR.match(path.parent.relative_to(out).as_posix())
        if match is None:
            raise ConformanceError(f"unexpected result directory: {path.parent}")
        saved[match.group(1)] = path
    return saved


def read_results(out: Path, stdout: str, stderr: str) -> dict[str, Scenario]:
    """The scenarios whose checks are saved in ``out``, checked against the summary."""
    found = {
        name: Scenario(name, tuple(_check(c) for c in json.loads(path.read_text())))
        for name, path in _saved(out).items()
    }
    for line in stdout.splitlines():
        summary = _SUMMARY.match(line.strip())
        if summary is None or summary.group(2) not in found:
            continue
        name, failed = summary.group(2), int(summary.group(4))
        if failed != sum(c.status == FAILURE for c in found[name].checks):
            raise ConformanceError(f"{name}: the summary and checks.json disagree:\n{stdout}")
    return found


def _check(raw: dict[str, Any]) -> Check:
    message = raw.get("errorMessage") or raw.get("description") or ""
    return Check(str(raw["id"]), str(raw["status"]), str(message))


def _failure_of(name: str, stderr: str) -> str | None:
    found = re.search(rf"Failed to run scenario {re.escape(name)}: (.*)", stderr)
    return found.group(1) if found else None


def describe(run: SuiteRun, names: set[str]) -> str:
    """Each of ``names`` with its checks that are not a success, for a failure message."""
    lines: list[str] = []
    for name in sorted(names):
        scenario = run.scenarios.get(name)
        if scenario is None:
            lines.append(f"  {name}: not run")
            continue
        lines.append(f"  {name}:")
        lines.extend(
            f"    {check.status} {check.id}: {check.message}"
            for check in scenario.checks
            if check.status not in (SUCCESS, "INFO")
        )
    return "\n".join(lines)
