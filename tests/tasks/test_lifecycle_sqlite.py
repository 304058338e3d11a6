"""The task lifecycle over SQLite, across crashes and restarts: a task is never stored
without its ``task.opened`` event (even when the process is killed mid-open), and an
expiry once recorded holds in a new process whose clock is earlier."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.identity.attestors.cases import FixedClock
from tests.tasks.conftest import ADMIN, AGENT, World, build_world
from zerolane.audit.chain import verify
from zerolane.config import CONFIG_NAME, AuditConfig, load_config, render_config
from zerolane.fsutil import write_private
from zerolane.server.deployment import Deployment
from zerolane.store.sqlite import SqliteStores
from zerolane.types import TaskState

ROOT = Path(__file__).resolve().parents[2]
STORE_URL = "sqlite:///zerolane.db"

#: a process that opens tasks on a new SQLite home in a loop, printing each task's id;
#: with ``die-mid-open`` it kills itself (SIGKILL) while sealing the ``task.opened``
#: event of its fourth task, after the task row was built and before the event is stored
CHILD = """
import os, signal, sys
from pathlib import Path

import zerolane.audit.chain as chain

sealing = chain.seal
armed = []


def seal(unsealed, seq, prev_hash):
    if armed and unsealed["kind"] == "task.opened":
        os.kill(os.getpid(), signal.SIGKILL)
    return sealing(unsealed, seq, prev_hash)


chain.seal = seal  # before any module imports it by name

from tests.tasks.conftest import AGENT, build_world

world = build_world(Path(sys.argv[1]), "sqlite:///zerolane.db")
agent = world.agent(AGENT)
print("ready", flush=True)
for n in range(100_000):
    if sys.argv[2] == "die-mid-open" and n == 3:
        armed.append(True)
    print(world.open(agent).task.task_id, flush=True)
"""


def run_child(home: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])},
    )


def check_home(home: Path) -> tuple[set[str], set[str]]:
    """The tasks stored in ``home`` and the subjects of its ``task.opened`` events,
    after checking the audit chain."""
    stores = SqliteStores(home / "zerolane.db")
    try:
        tasks = {t.task_id for t in stores.list_tasks(limit=100_000)}
        records = stores.read_events(0, 100_000)
        count, broken = verify(records)
        assert broken is None, broken
        assert count == len(records)
        opened = {json.loads(r.body)["subject"] for r in records if r.kind == "task.opened"}
        return tasks, opened
    finally:
        stores.close()


def test_a_process_killed_while_recording_an_open_leaves_no_task_without_its_event(
    tmp_path: Path,
) -> None:
    """Regression: the task row was committed before its event, so a kill -9 between
    the two writes left an active task nobody could find in the audit log."""
    home = tmp_path / "home"
    child = run_child(home, "die-mid-open")
    out, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err
    printed = out.split()
    assert printed[0] == "ready"
    tasks, opened = check_home(home)
    assert tasks == opened == set(printed[1:])  # the three opened before the kill
    assert len(tasks) == 3


def test_killing_a_process_opening_tasks_in_a_loop_leaves_every_task_with_its_event(
    tmp_path: Path,
) -> None:
    """``kill -9`` at random moments of a loop of opens: every stored task has its
    ``task.opened`` event, and the chain verifies."""
    rounds = random.Random(os.getpid())
    for n in range(3):
        home = tmp_path / f"home{n}"
        child = run_child(home, "loop")
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            for _ in range(3):  # let it get into its stride
                assert child.stdout.readline().startswith("tsk_")
            time.sleep(rounds.uniform(0, 0.05))
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=60)
        tasks, opened = check_home(home)
        assert len(tasks) >= 3
        assert tasks <= opened, f"tasks without their event: {tasks - opened}"


# time only moves forward, across processes --------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "home", STORE_URL)
    yield built
    built.deployment.close()


def test_a_recorded_expiry_holds_in_a_new_process_whose_clock_is_earlier(
    world: World, tmp_path: Path
) -> None:
    agent = world.agent(AGENT)
    seen = world.open(agent, ttl=60)
    unseen = world.open(agent, ttl=60)  # the twin: same window, never seen expired
    assert world.ask(agent, seen.token).allowed
    world.clock.t = seen.task.expires_at + 1
    assert world.deployment.lifecycle.get(seen.task.task_id).state is TaskState.EXPIRED
    world.deployment.close()

    # a new process on the same home, its clock a few seconds behind
    clock = FixedClock(seen.task.expires_at - 5)
    reopened = World(Deployment.open(tmp_path / "home", clock), clock)
    try:
        again = reopened.ask(agent, seen.token)
        assert not again.allowed
        assert again.reasons == ("task.expired",)
        assert reopened.ask(agent, unseen.token).allowed  # nothing recorded for the twin
        expired = reopened.events("task.expired")
        assert [e["subject"] for e in expired] == [seen.task.task_id]
    finally:
        reopened.deployment.close()
        world.deployment = Deployment.open(tmp_path / "home", clock)  # for the fixture


def test_in_the_async_audit_mode_a_task_is_still_stored_with_its_event(
    world: World, tmp_path: Path
) -> None:
    """The async mode queues decision events only: an opened task and its end are
    stored with their events in one write before the call returns, as in sync mode."""
    home = tmp_path / "home"
    world.deployment.close()
    config = load_config(home)
    write_private(
        home / CONFIG_NAME,
        render_config(dataclasses.replace(config, audit=AuditConfig(mode="async"))).encode(),
    )
    world.deployment = Deployment.open(home, world.clock)
    assert world.deployment.audit.mode == "async"
    agent = world.agent(AGENT)
    opened = world.open(agent, ttl=60)
    tasks, events = check_home(home)  # another connection: what is durable now
    assert opened.task.task_id in tasks
    assert opened.task.task_id in events
    world.deployment.lifecycle.revoke(opened.task.task_id, actor=ADMIN)
    stores = SqliteStores(home / "zerolane.db")
    try:
        kinds = [r.kind for r in stores.read_events(0, 100_000)]
        revoked = stores.get_task(opened.task.task_id)
    finally:
        stores.close()
    assert revoked is not None
    assert revoked.state is TaskState.REVOKED
    assert kinds[-1] == "task.revoked"
