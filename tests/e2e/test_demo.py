"""``zerolane demo --once`` (what ``make demo`` runs) tells the whole story and exits 0."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from tests.e2e.conftest import run
from zerolane.cli.demo_reasons import REASON_WORDS

pytestmark = pytest.mark.e2e


def test_demo_runs_the_story_and_exits_0() -> None:
    result = run("demo", "--once")
    out = result.stdout
    for line in (
        "read a report with only its SVID: deny token.typ",
        "read the Q3 summary: allow",
        "delete a report (not its intent): deny scope.action",
        "read payroll (restricted): deny scope.sensitivity",
        "then post to Slack (egress): deny flow.egress_after_sensitive_read",
        "deny dpop.replayed",
        "read the Q3 summary again: deny task.completed",
        "a child wider than its parent (delete): refused (scope.action)",
        "the sub-agent reads the Q3 report with the child token: allow",
        "the planner uses the child token with its own key: deny dpop.key_mismatch",
        "the sub-agent's next read: deny task.revoked (its parent ended)",
        "the agent pays invoice 17: deny approval.required (an approval is pending)",
        "the identical payment: allow, once",
        "the same payment again: deny approval.required (a new approval)",
        "another amount: deny approval.required (its own approval)",
        "DELETE /finance/reports/q3: 403 scope.action",
        "tools/list shows only what the task may call: read_report",
        "tools/call delete_report: refused (scope.action)",
        "post it outside: deny flow.egress_after_sensitive_read",
        "stop-exfiltration revoked",
        "its next request, an ordinary read: deny task.revoked",
        "stop-probers suspended the task",
        "its next request, an ordinary read: deny task.suspended",
        "the same read, resumed: allow",
        "chain intact",
    ):
        assert line in out, f"missing from the demo: {line!r}\n{out}"


def test_every_refusal_is_explained_and_the_hints_run_as_printed() -> None:
    out = run("demo", "--once").stdout
    refusals = [line for line in out.splitlines() if line.lstrip().startswith("✘")]
    assert len(refusals) >= 10
    for line in refusals:
        assert " — " in line, f"a refusal without its words: {line!r}"
        assert line.split(" — ", 1)[1] in REASON_WORDS.values()
    hints = [line.split(":", 1)[1].strip() for line in out.splitlines() if "it: " in line]
    assert len(hints) == 2
    for hint in hints:  # each command runs as printed, from anywhere
        done = subprocess.run(shlex.split(hint), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (hint, done.stderr)
