"""One approval, many identical requests at once, over SQLite and two deciders (two
processes' views of one home): exactly one is allowed, the approval is used once, and
every other is refused ``approval.used`` or asked anew (``approval.required``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tasks.conftest import ADMIN, AGENT, WIKI, Agent, World, build_world
from tests.tasks.test_approvals import ASK_WIKI_WRITES, BODY, approve
from zerolane.decision import body_digest
from zerolane.server.deployment import Deployment
from zerolane.store.records import ApprovalStatus
from zerolane.tasks.decisions import DecideInput, Decision

URL = f"https://{WIKI}/wiki/q3"
WRITE = DecideInput(
    method="POST",
    url=URL,
    action="write",
    resource="wiki/q3",
    destination=WIKI,
    sensitivity="internal",
    digest=body_digest(BODY),
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "home", "sqlite:///zerolane.db")
    folder = built.deployment.home / built.deployment.config.policy_dir
    (folder / "approval.cedar").write_text(ASK_WIKI_WRITES)
    built.deployment.reload_policies(ADMIN)
    yield built
    built.deployment.close()


def test_racing_identical_requests_spend_one_approval_once(world: World) -> None:
    agent: Agent = world.agent(AGENT)
    token = world.open(agent).token
    deciders = [world.deployment.decider]
    other = Deployment.open(world.deployment.home, world.clock)  # another process's view
    deciders.append(other.decider)
    try:
        first = deciders[0].decide(token, world.proof(agent.key, "POST", URL, token), WRITE)
        approve(world, first.approval_id)
        proofs = [world.proof(agent.key, "POST", URL, token) for _ in range(8)]
        start = threading.Barrier(len(proofs))
        answers: list[Decision] = []

        def one(n: int) -> None:
            start.wait()
            answers.append(deciders[n % 2].decide(token, proofs[n], WRITE))

        threads = [threading.Thread(target=one, args=(n,)) for n in range(len(proofs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other.close()
    assert sum(a.allowed for a in answers) == 1
    refused = {a.reasons for a in answers if not a.allowed}
    assert refused <= {("approval.used",), ("approval.required",)}
    stored = world.deployment.approvals.get(str(first.approval_id))
    assert stored.status is ApprovalStatus.USED
    assert len(world.events("approval.used")) == 1
