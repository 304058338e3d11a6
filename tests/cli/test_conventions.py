"""What users of SPIRE, Vault and OPA expect: ``--version``, shell completion, ``--json``
on the commands that print results (and errors as JSON under it), ``policy test -v``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.cli.test_gateway_cli import _example
from zerolane import __version__
from zerolane.cli.main import app
from zerolane.policy.defaults import install_defaults
from zerolane.server.deployment import init_home

runner = CliRunner()
TD = "conventions.example"
AGENT = f"spiffe://{TD}/agents/a"
FAILING = (
    "cases:\n  - name: deny expected\n    open: {}\n    expect: deny\n"
    "  - name: fine\n    open: {}\n    expect: allow\n"
)


def _run(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    init_home(tmp_path / "home", TD)[0].close()
    return tmp_path / "home"


def test_version_option_and_json() -> None:
    assert _run("--version").output.strip() == __version__
    assert _run("version").output.strip() == __version__
    assert json.loads(_run("version", "--json").output) == {"version": __version__}


def test_shell_completion_is_offered() -> None:
    assert "--install-completion" in _run("--help").output
    script = _run("--show-completion", "bash")
    assert script.exit_code == 0, script.output
    assert "_ZEROLANE_COMPLETE" in script.output


def test_an_error_under_json_is_json(tmp_path: Path) -> None:
    result = _run("task", "list", "--json", "--home", str(tmp_path / "none"))
    assert result.exit_code == 2
    error = json.loads(result.stderr)
    assert error["reason"] == "home.missing"
    assert "no zerolane home" in error["message"]
    plain = _run("task", "list", "--home", str(tmp_path / "none"))  # the twin, as text
    assert plain.stderr.startswith("error home.missing: ")


def test_a_usage_error_under_json_is_json() -> None:
    result = _run("audit", "tail", "--json", "-n", "0")
    assert result.exit_code == 2
    assert json.loads(result.stderr)["reason"] == "cli.usage"


def test_policy_check_json(home: Path) -> None:
    result = _run("policy", "check", "--json", str(home / "policies"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True
    assert len(data["policies"]) == 19  # risk.high among them
    (home / "policies" / "zz.cedar").write_text("permit (principal")
    refused = _run("policy", "check", "--json", str(home / "policies"))
    assert refused.exit_code == 2
    assert json.loads(refused.stderr.splitlines()[0])["reason"] == "policy.invalid"


def test_policy_test_prints_a_summary_and_every_case_with_v(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    install_defaults(policies)
    cases = tmp_path / "cases.yaml"
    cases.write_text(FAILING)
    args = ("policy", "test", str(cases), "--policies", str(policies))
    summary = _run(*args)
    assert summary.exit_code == 1
    assert "1 passed, 1 failed" in summary.stdout
    assert "fine" not in summary.output  # a passing case is not listed by default
    assert "FAIL" in summary.stderr
    verbose = _run(*args, "-v")
    assert verbose.exit_code == 1
    assert "fine" in verbose.stdout
    assert "pass" in verbose.stdout
    as_json = _run(*args, "--json")
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert (data["passed"], data["failed"]) == (1, 1)
    assert [case["passed"] for case in data["cases"]] == [False, True]
    assert data["cases"][0]["detail"].startswith("expected deny, got allow")


def test_audit_verify_json(home: Path) -> None:
    result = _run("audit", "verify", "--json", "--home", str(home))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["intact"] is True
    assert data["broken"] is None
    assert data["verified"] >= 1


def test_join_token_json(home: Path) -> None:
    assert _run("workload", "register", AGENT, "--home", str(home)).exit_code == 0
    result = _run("attest", "join-token", AGENT, "--ttl", "5m", "--json", "--home", str(home))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["spiffe_id"], data["ttl"]) == (AGENT, 300)
    assert data["token"]


def test_gateway_check_json(tmp_path: Path) -> None:
    result = _run("gateway", "check", "--json", "--config", str(_example(tmp_path)))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True
    injects = {u["prefix"]: u["injects"] for u in data["upstreams"]}
    assert injects["/finance"] == "X-Api-Key"


def test_the_commands_that_change_state_print_json(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = _run("init", "--trust-domain", TD, "--home", str(home), "--json")
    assert created.exit_code == 0, created.output
    data = json.loads(created.stdout)
    assert (data["trust_domain"], data["home"]) == (TD, str(home))
    assert data["admin_credential"]
    rotated = json.loads(_run("keys", "rotate", "--json", "--home", str(home)).stdout)
    assert rotated["kid"] != data["signing_key"]
    assert _run("workload", "register", AGENT, "--home", str(home)).exit_code == 0
    disabled = _run("workload", "disable", AGENT, "--json", "--home", str(home))
    assert json.loads(disabled.stdout)["status"] == "disabled"
    retried = _run("grant", "retry", "--json", "--home", str(home))
    assert json.loads(retried.stdout) == {"revoked": [], "failed": []}
    reloaded = json.loads(_run("policy", "reload", "--json", "--home", str(home)).stdout)
    assert (reloaded["ok"], reloaded["signalled_pid"]) == (True, None)
    unknown = _run("task", "revoke", "tsk_nope", "--json", "--home", str(home))
    assert unknown.exit_code == 2
    assert json.loads(unknown.stderr)["reason"] == "task.unknown"
