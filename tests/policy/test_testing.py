"""The policy test-case runner: good files pass, failing cases are reported, bad files refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zerolane.errors import InvalidInput
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.defaults import DEFAULT_POLICY_DIR
from zerolane.policy.testing import case_files, load_case_file, run_path

TASK = """
    task:
      actions: [read]
      resources: ["finance/**"]
      destinations: [db.example.org]
"""


def _write(tmp_path: Path, text: str, name: str = "cases.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_cases_all_pass(default_engine: CedarEngine) -> None:
    results = run_path(default_engine, DEFAULT_POLICY_DIR)
    assert len(results) >= 20
    assert [r.case.name for r in results if not r.passed] == []
    reasons = {i for r in results for i in r.result.policy_ids}
    assert set(default_engine.snapshot.policy_ids) <= reasons  # every default rule exercised


def test_failing_case_is_reported(default_engine: CedarEngine, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f"""
cases:
  - name: wrong expectation
{TASK}
    request: {{action: delete, resource: finance/x, destination: db.example.org}}
    expect: allow
  - name: right decision, wrong reason
{TASK}
    request: {{action: delete, resource: finance/x, destination: db.example.org}}
    expect: deny
    reasons: [scope.resource]
  - name: passes
{TASK}
    request: {{action: read, resource: finance/x, destination: db.example.org}}
    expect: allow
    reasons: [task.request]
""",
    )
    results = run_path(default_engine, path)
    assert [r.passed for r in results] == [False, False, True]
    assert results[0].detail == "expected allow, got deny; policies ['scope.action']"
    assert "reasons expected ['scope.resource']" in results[1].detail
    assert results[2].detail == ""
    assert (results[1].case.file, results[1].case.index) == (str(path), 1)


def test_json_file_and_defaults(default_engine: CedarEngine, tmp_path: Path) -> None:
    doc = {
        "principal": "spiffe://corp.example/agent",
        "internal_destinations": ["*.corp.example"],
        "now": 1_704_110_400,
        "cases": [
            {
                "name": "egress after confidential",
                "task": {
                    "actions": ["read"],
                    "resources": ["x/*"],
                    "destinations": ["out.net", "db.corp.example"],
                    "ceiling": "restricted",
                    "touched": "confidential",
                },
                "request": {"action": "read", "resource": "x/y", "destination": "out.net"},
                "expect": "deny",
                "reasons": ["flow.egress_after_sensitive_read"],
            },
            {
                "name": "internal by pattern",
                "task": {
                    "actions": ["read"],
                    "resources": ["x/*"],
                    "destinations": ["db.corp.example"],
                    "touched": "restricted",
                },
                "request": {"action": "read", "resource": "x/y", "destination": "db.corp.example"},
                "expect": "allow",
            },
            {"name": "grant", "open": {}, "expect": "allow", "reasons": ["grant.opener"]},
        ],
    }
    path = _write(tmp_path, json.dumps(doc), "cases.json")
    cases = load_case_file(path)
    assert cases[0].request.principal == "spiffe://corp.example/agent"
    assert cases[0].request.context["now"] == 1_704_110_400
    opened = cases[2].request.context["workload"]
    assert opened == {"trust_domain": "corp.example", "selectors": [], "owner": ""}
    assert all(r.passed for r in run_path(default_engine, path))


MALFORMED = [
    ("[1, 2]", "must be a mapping"),
    ("cases: []", "cases: needs at least one case"),
    ("cases: {}", "cases: must be a list"),
    ("{}", "cases: required"),
    ("casez: []", "unknown key(s) casez"),
    ("cases: [{expect: allow}]", "cases[0]: name: required"),
    ("cases: [[]]", "cases[0]: must be a mapping"),
    (
        "cases: [{name: x, open: {}, expect: maybe}]",
        "cases[0] (x): expect: must be 'allow' or 'deny'",
    ),
    ("cases: [{name: x, task: {}, expect: deny}]", "cases[0] (x): request: required"),
    (
        "cases: [{name: x, open: {}, request: {}, expect: deny}]",
        "cases[0] (x): open: a case has either",
    ),
    (
        "cases: [{name: x, task: {ceiling: top}, request: {action: a, resource: r, destination: d},"
        " expect: deny}]",
        "cases[0] (x): task.ceiling: unknown sensitivity 'top'",
    ),
    (
        "cases: [{name: x, task: {state: paused}, request: {action: a, resource: r,"
        " destination: d}, expect: deny}]",
        "cases[0] (x): task.state: must be one of active",
    ),
    (
        "cases: [{name: x, task: {max_calls: many}, request: {action: a, resource: r,"
        " destination: d}, expect: deny}]",
        "task.max_calls: must be an integer, not str",
    ),
    (
        "cases: [{name: x, task: {actions: read}, request: {action: a, resource: r,"
        " destination: d}, expect: deny}]",
        "task.actions: must be a list of strings",
    ),
    (
        "cases: [{name: x, task: {}, request: {action: a, resource: r}, expect: deny}]",
        "request.destination: required",
    ),
    (
        "cases: [{name: x, task: {}, request: {action: a, resource: r, destination: d,"
        " destination_internal: 1}, expect: deny}]",
        "request.destination_internal: must be true or false",
    ),
    (
        "cases: [{name: x, open: {playbook: {ceilng: internal}}, expect: deny}]",
        "open.playbook: unknown key(s) ceilng",
    ),
    (
        "cases: [{name: x, task: {}, request: {action: a, resource: r, destination: d},"
        " risk: {task: 101}, expect: deny}]",
        "cases[0] (x): risk.task: must be 0 to 100",
    ),
    (
        "cases: [{name: x, task: {}, request: {action: a, resource: r, destination: d},"
        " risk: {workload: -1}, expect: deny}]",
        "cases[0] (x): risk.workload: must be 0 to 100",
    ),
    (
        "cases: [{name: x, task: {}, request: {action: a, resource: r, destination: d},"
        " risk: {tsk: 1}, expect: deny}]",
        "risk: unknown key(s) tsk",
    ),
    ("cases: [{name: x, open: {}, risk: {}, expect: deny}]", "cases[0] (x): open: a case has"),
    ("cases: [{name: ok, open: {}, expect: allow}, {name: y}]", "cases[1] (y): expect: required"),
    ("cases: [\n  - name: x\n   bad: indent", "cannot read"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InvalidInput) as caught:
        load_case_file(path)
    assert caught.value.reason == "policy_test.invalid"
    assert str(path) in caught.value.message
    assert message in caught.value.message


def test_case_files_in_a_folder(tmp_path: Path) -> None:
    _write(tmp_path, "cases: []", "b.yaml")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub", "{}", "a.json")
    _write(tmp_path, "x", "notes.txt")
    assert case_files(tmp_path) == [tmp_path / "b.yaml", tmp_path / "sub" / "a.json"]
    with pytest.raises(InvalidInput) as caught:
        case_files(tmp_path / "absent")
    assert caught.value.reason == "policy_test.not_found"


def test_a_folder_without_cases(default_engine: CedarEngine, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        run_path(default_engine, tmp_path)
    assert caught.value.reason == "policy_test.none"
