"""``zerolane posture scan --home`` and ``zerolane posture inventory`` on a seeded home:
the dormant, ownerless and shared identities and the static secrets are reported (never
a secret's value), the healthy workload is not; what runs in shadow mode is reported, the
same home enforced is not; what is scanned with no PATH; bad input refused."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.conformance.test_spent_proofs import _task as stored_task
from tests.posture.seeded import DAY, Seeded
from tests.tasks.conftest import ADMIN, PLAYBOOK_DOC
from zerolane.cli.main import app
from zerolane.cli.posture_home import MCP_SERVER_DEFAULT
from zerolane.server.deployment import init_home
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tasks.scope import Scope
from zerolane.types import Sensitivity, TaskState

runner = CliRunner()
FILE_SECRET = "file-secret-0123456789abcdefXYZ"
ENV_SECRET = "env-secret-9876543210fedcbaQRS"
ENV_NAME = "ZL_TEST_BILLING_SECRET"
GATEWAY = """
public_url = "https://gw.example.org"

[[upstreams]]
name = "billing"
base_url = "https://billing.internal"
prefix = "/billing"
credential = { type = "static", secret_env = "ZL_TEST_BILLING_SECRET" }

[[upstreams.routes]]
method = "GET"
path = "/invoices/{id}"
action = "read"
resource = "invoices/{id}"

[[upstreams]]
name = "public"
base_url = "https://public.internal"
prefix = "/public"

[[upstreams.routes]]
method = "GET"
path = "/news"
action = "read"
resource = "news"
"""
MCP_GATEWAY = """
public_url = "https://mcp.example.org"
authorization_servers = ["https://zl.example.org"]

[[servers]]
name = "reports"
url = "https://reports.internal/mcp"
destination = "reports.internal"
credential = { type = "static", secret_file = "mcp.secret" }

[[servers]]
name = "plain"
url = "https://plain.internal/mcp"
destination = "plain.internal"
prefix = "plain_"
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home 100 days old: a healthy, a dormant, an ownerless and a shared workload,
    a static grant kept in a file, a gateway injecting one from the environment."""
    monkeypatch.setenv(ENV_NAME, ENV_SECRET)
    monkeypatch.delenv("ZEROLANE_HOME", raising=False)
    path = tmp_path / "home"
    deployment, _ = init_home(path, "example.org")
    now = time.time()
    start = now - 100 * DAY
    try:
        seeded = Seeded(deployment.stores)
        w = seeded.workload("healthy", at=start)
        seeded.attest(w, now - DAY, "k-healthy")
        seeded.task(w, now - DAY + 1, "reports", "k-healthy")
        w = seeded.workload("dormant", at=start)
        seeded.attest(w, start + DAY, "k-dormant")
        w = seeded.workload("ownerless", owner=None, at=start)
        seeded.attest(w, now - DAY, "k-ownerless")
        w = seeded.workload("shared", at=start)
        seeded.attest(w, now - DAY, "k-shared")
        for n in range(7):
            seeded.task(w, now - DAY + n, f"playbook-{n}", "k-shared", f"t{n}")
    finally:
        deployment.close()
    (path / "static.secret").write_text(FILE_SECRET)
    (path / "static.secret").chmod(0o600)
    (path / "gateway.toml").write_text(GATEWAY)
    (path / "mcp.toml").write_text(MCP_GATEWAY)
    with (path / "zerolane.toml").open("a") as config:
        config.write('\n[grants.static]\nsecret_file = "static.secret"\n')
        config.write('\n[[gateways]]\nkind = "http"\nconfig = "gateway.toml"\n')
        config.write('\n[[gateways]]\nkind = "mcp"\nconfig = "mcp.toml"\n')
        # a gateway turned off injects nothing (its file is not even read)
        config.write('\n[[gateways]]\nkind = "http"\nconfig = "off.toml"\nenabled = false\n')
    return path


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def no_secret(*outputs: str) -> None:
    for output in outputs:
        assert FILE_SECRET not in output
        assert ENV_SECRET not in output
        assert FILE_SECRET[:8] not in output  # not even a masked start of it
        assert ENV_SECRET[:8] not in output


EXPECTED = {
    ("inventory.dormant", "spiffe://example.org/dormant"),
    ("inventory.ownerless", "spiffe://example.org/ownerless"),
    ("inventory.shared_identity", "spiffe://example.org/shared"),
}


def test_scan_home_reports_the_inventory_and_static_secrets(home: Path, tmp_path: Path) -> None:
    sarif = tmp_path / "report.sarif"
    result = run("posture", "scan", "--home", str(home), "--json", "--sarif", str(sarif))
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    found = {(f["rule"], f["subject"]) for f in report["findings"]}
    assert found >= EXPECTED
    statics = {f["subject"]: f for f in report["findings"] if f["rule"] == "config.static_grant"}
    assert set(statics) == {
        f"{home / 'zerolane.toml'} [grants.static]",
        f"{home / 'gateway.toml'} upstreams[0] (billing).credential",
        f"{home / 'mcp.toml'} servers[0] (reports).credential",
    }
    mcp = statics[f"{home / 'mcp.toml'} servers[0] (reports).credential"]
    assert mcp["details"]["secret_file"] == str(home / "mcp.secret")
    gateway = statics[f"{home / 'gateway.toml'} upstreams[0] (billing).credential"]
    assert gateway["details"]["secret_env"] == ENV_NAME
    assert gateway["mapping"] == {"owasp-nhi-2025": ["NHI2:2025", "NHI7:2025", "NHI9:2025"]}
    assert statics[f"{home / 'zerolane.toml'} [grants.static]"]["details"]["secret_file"] == str(
        home / "static.secret"
    )
    assert not any("healthy" in (subject or "") for _, subject in found)
    assert report["counts"]["workloads"] == 4
    by_rule = {f["rule"]: f for f in report["findings"]}
    assert by_rule["inventory.dormant"]["mapping"] == {"owasp-nhi-2025": ["NHI1:2025"]}
    no_secret(result.output, sarif.read_text())
    table = run("posture", "scan", "--home", str(home))
    assert table.exit_code == 1
    assert "inventory.shared_identity" in table.output
    no_secret(table.output)


def test_the_inventory_lists_every_workload(home: Path) -> None:
    result = run("posture", "inventory", "--home", str(home), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = {row["spiffe_id"].rpartition("/")[2]: row for row in doc["workloads"]}
    assert set(rows) == {"healthy", "dormant", "ownerless", "shared"}
    assert rows["healthy"]["tasks_opened"] == 1
    assert rows["healthy"]["playbooks"] == ["reports"]
    assert rows["healthy"]["attestation"] == ["join_token"]
    assert rows["shared"]["tasks_opened"] == 7
    assert doc["dormant_after_days"] == 30
    assert {(f["rule"], f["subject"]) for f in doc["findings"]} >= EXPECTED
    no_secret(result.output)
    table = run("posture", "inventory", "--home", str(home), "--wide")
    assert table.exit_code == 0
    assert "spiffe://example.org/healthy" in table.output
    assert "inventory.dormant" in table.output
    no_secret(table.output)


def test_dormant_after_is_a_setting(home: Path) -> None:
    result = run("posture", "inventory", "--home", str(home), "--json", "--dormant-after", "120d")
    doc = json.loads(result.stdout)
    assert doc["dormant_after_days"] == 120
    assert not any(f["rule"] == "inventory.dormant" for f in doc["findings"])


def test_an_empty_home_has_no_inventory_finding(tmp_path: Path) -> None:
    deployment, _ = init_home(tmp_path / "empty", "example.org")
    deployment.close()
    result = run("posture", "inventory", "--home", str(tmp_path / "empty"))
    assert result.exit_code == 0, result.output
    assert "no workloads" in result.output
    assert "no findings" in result.output
    scan = run("posture", "scan", "--home", str(tmp_path / "empty"))
    assert scan.exit_code == 0, scan.output


def test_no_path_scans_the_folder_and_the_default_home(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    files_only = run("posture", "scan", "--json")
    assert json.loads(files_only.stdout)["counts"].get("workloads") is None
    monkeypatch.setenv("ZEROLANE_HOME", str(home))
    both = json.loads(run("posture", "scan", "--json").stdout)
    assert both["counts"]["workloads"] == 4
    assert "files" in both["counts"]
    # a PATH given: only the files, unless --home is given too
    assert (
        json.loads(run("posture", "scan", ".", "--json").stdout)["counts"].get("workloads") is None
    )


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["posture", "scan", ".", "--dormant-after", "30d"], "posture.dormant_after"),
        (["posture", "inventory", "--home", "nowhere"], "home.missing"),
        (["posture", "scan", "--home", "nowhere"], "home.missing"),
    ],
)
def test_bad_input_is_refused(
    args: list[str], reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2
    assert reason in result.output


def test_a_duration_that_is_none_is_refused(home: Path) -> None:
    result = run("posture", "inventory", "--home", str(home), "--dormant-after", "soon")
    assert result.exit_code == 2
    assert "not a duration" in result.output


def test_a_gateway_file_that_does_not_parse_is_refused(home: Path) -> None:
    (home / "gateway.toml").write_text("public_url = 3\n")
    result = run("posture", "scan", "--home", str(home))
    assert result.exit_code == 2
    assert "gateway.toml" in result.output


SHADOW_GATEWAY = """
public_url = "https://gw.example.org"

[[upstreams]]
name = "billing"
base_url = "https://billing.internal"
prefix = "/billing"
mode = "{mode}"

[[upstreams.routes]]
method = "GET"
path = "/invoices/{{id}}"
action = "read"
resource = "invoices/{{id}}"

[[upstreams.routes]]
method = "DELETE"
path = "/invoices/{{id}}"
action = "delete"
resource = "invoices/{{id}}"
mode = "enforce"
"""
SHADOW_MCP = """
public_url = "https://mcp.example.org"
authorization_servers = ["https://zl.example.org"]

[[servers]]
name = "files"
url = "https://files.internal/mcp"
destination = "files.internal"

[servers.tools.delete]
mode = "{mode}"

[[servers]]
name = "wiki"
url = "https://wiki.internal/mcp"
destination = "wiki.internal"
prefix = "wiki_"
mode = "{mode}"

[servers.prompts.summary]
mode = "{mode}"
"""


def shadow_home(path: Path, mode: str) -> Path:
    """A home whose policy set, playbook ``trial`` (with an active and a suspended task
    opened from it, one that ended and one past its window), HTTP gateway route and MCP
    tool all run in ``mode``."""
    deployment, _ = init_home(path, "example.org")
    try:
        doc = {**PLAYBOOK_DOC, "name": "trial", "mode": mode}
        deployment.playbooks.apply(parse_playbook(doc, "trial.yaml"), ADMIN)
        scope = Scope(("read",), ("finance/*",), ("finance.example.org",), Sensitivity.INTERNAL)
        scope = dataclasses.replace(scope, shadow=mode == "shadow")
        now = time.time()
        tasks = (
            ("t-live", TaskState.ACTIVE, now + 600),
            ("t-held", TaskState.SUSPENDED, now + 600),
            ("t-ended", TaskState.COMPLETED, now + 600),
            ("t-over", TaskState.ACTIVE, now - 1),  # past its window: not live
        )
        for task_id, state, expires_at in tasks:
            task = dataclasses.replace(
                stored_task(task_id),
                playbook="trial",
                scope=scope.to_json(),
                state=state,
                created_at=now - 1200,
                expires_at=expires_at,
            )
            deployment.stores.add_task(task)
    finally:
        deployment.close()
    (path / "gateway.toml").write_text(SHADOW_GATEWAY.format(mode=mode))
    (path / "mcp.toml").write_text(SHADOW_MCP.format(mode=mode))
    config = path / "zerolane.toml"
    config.write_text(f'policy_mode = "{mode}"\n' + config.read_text())
    with config.open("a") as out:
        out.write('\n[[gateways]]\nkind = "http"\nconfig = "gateway.toml"\n')
        out.write('\n[[gateways]]\nkind = "mcp"\nconfig = "mcp.toml"\n')
    return path


def test_scan_home_reports_what_runs_in_shadow(tmp_path: Path) -> None:
    home = shadow_home(tmp_path / "shadow", "shadow")
    result = run("posture", "scan", "--home", str(home), "--json")
    assert result.exit_code == 1, result.output
    found = {f["rule"]: f for f in json.loads(result.stdout)["findings"]}
    policies = found["config.shadow_policies"]
    assert (policies["severity"], policies["subject"]) == (
        "high",
        f"{home}/zerolane.toml policy_mode",
    )
    assert policies["mapping"] == {"owasp-nhi-2025": ["NHI5:2025"]}
    playbook = found["config.shadow_playbook"]
    assert (playbook["severity"], playbook["subject"]) == ("medium", "playbook trial")
    assert playbook["details"]["live_tasks"] == 2  # active and suspended, in their window
    routes = {
        f["subject"]: f
        for f in json.loads(result.stdout)["findings"]
        if f["rule"] == "config.shadow_route"
    }
    http = routes[f"{home}/gateway.toml upstreams[0] (billing)"]
    assert http["details"]["routes"] == ["GET /invoices/{id}"]  # DELETE is enforced
    assert http["details"]["total"] == 2
    assert routes[f"{home}/mcp.toml servers[0] (files)"]["details"]["routes"] == ["tool delete"]
    wiki = routes[f"{home}/mcp.toml servers[1] (wiki)"]["details"]["routes"]
    assert wiki == [MCP_SERVER_DEFAULT, "prompt summary"]
    table = run("posture", "scan", "--home", str(home))
    assert "config.shadow_policies" in table.output

    # the twin: the same home enforced everywhere has no shadow finding and exits 0
    enforced = shadow_home(tmp_path / "enforced", "enforce")
    twin = run("posture", "scan", "--home", str(enforced), "--json")
    assert twin.exit_code == 0, twin.output
    assert json.loads(twin.stdout)["findings"] == []


# -- shipped safety rules a home holds without @shadow("never")

SAFETY_RULES = (
    "flow.egress_after_sensitive_read",
    "risk.high",
    "task.budget_exhausted",
    "task.expired",
    "task.inactive",
)


def unmark(home: Path) -> Path:
    """Make ``home`` one created before the safety rules were marked: its
    requests.cedar holds them without ``@shadow("never")``."""
    requests = home / "policies" / "requests.cedar"
    text = requests.read_text()
    assert text.count('@shadow("never")\n') == len(SAFETY_RULES)
    requests.write_text(text.replace('@shadow("never")\n', ""))
    return requests


def unmarked_finding(home: Path) -> dict[str, object] | None:
    result = run("posture", "scan", "--home", str(home), "--json")
    assert result.exit_code in (0, 1), result.output
    found = [
        f
        for f in json.loads(result.stdout)["findings"]
        if f["rule"] == "config.safety_rule_unmarked"
    ]
    assert len(found) <= 1
    return found[0] if found else None


def test_a_home_with_unmarked_safety_rules_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZEROLANE_HOME", raising=False)
    home = tmp_path / "old"
    init_home(home, "example.org")[0].close()
    requests = unmark(home)
    finding = unmarked_finding(home)
    assert finding is not None
    assert finding["severity"] == "medium"  # nothing runs in shadow here
    assert finding["mapping"] == {"owasp-nhi-2025": ["NHI5:2025"]}
    details = finding["details"]
    assert isinstance(details, dict)
    assert details["policies"] == sorted(SAFETY_RULES)
    assert details["files"] == [str(requests)]
    assert details["shipped"][0].endswith("policy/default/requests.cedar")
    assert '@shadow("never")' in str(finding["remedy"])
    table = run("posture", "scan", "--home", str(home))
    assert table.exit_code == 1
    assert "config.safety_rule_unmarked" in table.output

    # the twin: a fresh home holds them marked, and has no finding
    fresh = tmp_path / "fresh"
    init_home(fresh, "example.org")[0].close()
    assert unmarked_finding(fresh) is None


def test_it_is_high_in_a_home_that_runs_in_shadow(tmp_path: Path) -> None:
    home = shadow_home(tmp_path / "shadow", "shadow")
    unmark(home)
    finding = unmarked_finding(home)
    assert finding is not None
    assert finding["severity"] == "high"
    # the twin: the same home enforced keeps it medium
    enforced = shadow_home(tmp_path / "enforced", "enforce")
    unmark(enforced)
    twin = unmarked_finding(enforced)
    assert twin is not None
    assert twin["severity"] == "medium"


def test_a_removed_safety_rule_is_the_homes_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZEROLANE_HOME", raising=False)
    home = tmp_path / "home"
    init_home(home, "example.org")[0].close()
    requests = home / "policies" / "requests.cedar"
    text = requests.read_text()
    # the flow rule removed entirely (with its mark), the risk rule left unmarked
    start = text.index('@id("flow.egress_after_sensitive_read")')
    end = text.index("\n\n", start) + 2
    text = text[:start] + text[end:]
    requests.write_text(text.replace('@id("risk.high")\n@shadow("never")\n', '@id("risk.high")\n'))
    assert "flow.egress_after_sensitive_read" not in requests.read_text()
    finding = unmarked_finding(home)
    assert finding is not None
    details = finding["details"]
    assert isinstance(details, dict)
    assert details["policies"] == ["risk.high"]  # the removed one is not named


def test_a_policy_set_that_does_not_load_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZEROLANE_HOME", raising=False)
    home = tmp_path / "home"
    init_home(home, "example.org")[0].close()
    (home / "policies" / "broken.cedar").write_text("forbid (principal, action, resource\n")
    result = run("posture", "scan", "--home", str(home))
    assert result.exit_code == 2
    assert "broken.cedar" in result.output
    assert "Traceback" not in result.output
