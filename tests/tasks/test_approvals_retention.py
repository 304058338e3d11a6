"""Approvals are deleted ``[approvals] retention`` seconds after they expired, by the
running deployment on a write (at most once a minute per process), with an
``approval.pruned`` event; a fresher approval, or one still in use, is kept."""

from __future__ import annotations

import pytest

from tests.tasks.conftest import ADMIN, Agent, World
from tests.tasks.test_approvals import APPROVER, approvals, asking, write
from zerolane.tasks.approvals import PRUNE_EVERY, Approvals, ApprovalSettings

__all__ = ["asking"]  # the fixture, imported


def keeping(world: World, retention: float) -> Approvals:
    deployment = world.deployment
    settings = ApprovalSettings(ttl=60, max_pending=16, retention=retention)
    swapped = Approvals(deployment.stores, deployment.audit, world.clock, settings)
    deployment.decider._approvals = swapped
    deployment.approvals = swapped
    return swapped


def test_approvals_past_their_retention_are_pruned_on_a_write(asking: World, agent: Agent) -> None:
    kept = keeping(asking, retention=100)
    token = asking.open(agent).token
    old = write(asking, agent, token).approval_id
    assert old is not None
    kept.approve(old, approver=APPROVER, actor=ADMIN)
    assert write(asking, agent, token).allowed  # used: settled
    asking.clock.t += 60 + 100 + 1  # past its expiry and the retention
    fresh = write(asking, agent, token, b"{}").approval_id  # a write: prunes first
    assert [a.approval_id for a in approvals(asking).list()] == [fresh]
    [pruned] = asking.events("approval.pruned")
    assert pruned["details"]["count"] == 1
    assert pruned["actor"] == {"type": "system", "id": "approvals"}
    # the history stays in the audit log
    assert [e["details"]["approval_id"] for e in asking.events("approval.used")] == [old]


def test_an_approval_within_its_retention_is_kept_and_prunes_are_spaced(
    asking: World, agent: Agent
) -> None:
    kept = keeping(asking, retention=100)
    token = asking.open(agent).token
    first = write(asking, agent, token).approval_id
    asking.clock.t += 60 + 99  # expired, within the retention
    second = write(asking, agent, token).approval_id  # prunes nothing
    assert {a.approval_id for a in kept.list()} == {first, second}
    asking.clock.t += 2  # past the retention, but pruned less than a minute ago
    kept.deny(str(second), approver=APPROVER, actor=ADMIN)
    assert len(kept.list()) == 2
    asking.clock.t += PRUNE_EVERY
    assert kept.prune_due() == 1
    assert [a.approval_id for a in kept.list()] == [second]
    assert asking.events("approval.pruned")[-1]["details"]["count"] == 1


def test_a_prune_that_fails_is_logged_and_the_request_still_decided(
    asking: World, agent: Agent, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    kept = keeping(asking, retention=100)

    def broken() -> int:
        raise OSError("disk full")

    monkeypatch.setattr(kept, "prune", broken)
    token = asking.open(agent).token
    asked = write(asking, agent, token)
    assert asked.reasons == ("approval.required",)
    assert "pruning old approvals failed" in caplog.text
