"""LeaseManager: every grant is a lease of a task, revoked when the task ends, retried
when revoking fails, never forgotten."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Sequence

import pytest

from tests.identity.attestors.cases import FixedClock
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import Conflict, NotFound, Unavailable
from zerolane.grants.broker import GrantSecret, GrantTemplate
from zerolane.grants.leases import STALE_REVOKING, GrantSweeper, LeaseManager
from zerolane.store.memory import MemoryStores
from zerolane.store.ports import Sealer
from zerolane.store.records import (
    AuditRecord,
    LeaseRecord,
    LeaseState,
    RevocationEvent,
    RevocationKind,
    TaskRecord,
)
from zerolane.types import TaskState

AGENT = Actor("workload", "spiffe://example.org/agents/a1")
ADMIN = Actor("admin", "t")
SECRET = "s3cr3t-value-never-stored"
TEMPLATE = GrantTemplate(broker="fake")


class FakeBroker:
    name = "fake"
    legacy = False

    def __init__(self) -> None:
        self.created: set[str] = set()
        self.revoked: list[str] = []
        self.fail_issue: Exception | None = None
        self.fail_revoke: list[Exception] = []  # raised in order, one per revoke
        self.during_issue: Callable[[], object] | None = None
        self.counter = 0
        self.lock = threading.Lock()

    def new_handle(self, task: TaskRecord) -> str:
        with self.lock:
            self.counter += 1
            return f"fake_{self.counter}"

    def issue(
        self, handle: str, task: TaskRecord, template: GrantTemplate, expires_at: float
    ) -> GrantSecret:
        if self.fail_issue is not None:
            raise self.fail_issue
        if self.during_issue is not None:
            self.during_issue()
        self.created.add(handle)
        return GrantSecret({"password": SECRET, "user": handle})

    def revoke(self, handle: str) -> None:
        with self.lock:
            if self.fail_revoke:
                raise self.fail_revoke.pop(0)
            self.revoked.append(handle)
            self.created.discard(handle)


class AuditFailingStores(MemoryStores):
    def __init__(self) -> None:
        super().__init__()
        self.audit_down = False

    def append_events(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        if self.audit_down:
            raise OSError("disk full")
        return super().append_events(events, seal)


@dataclasses.dataclass
class Env:
    stores: AuditFailingStores
    clock: FixedClock
    broker: FakeBroker
    manager: LeaseManager

    def task(self, task_id: str = "tsk_1", *, ttl: float = 600) -> TaskRecord:
        now = self.clock.now()
        task = TaskRecord(
            task_id=task_id,
            owner=AGENT.id,
            playbook="reports",
            playbook_version=1,
            intent="test",
            scope="{}",
            authorization_details="[]",
            jkt="jkt",
            audience=(),
            state=TaskState.ACTIVE,
            created_at=now,
            expires_at=now + ttl,
            max_calls=10,
            calls_used=0,
            touched=-1,
            token_jti="jti",
        )
        self.stores.add_task(task)
        return task

    def end(self, task_id: str, state: TaskState = TaskState.COMPLETED) -> TaskRecord:
        ended = self.stores.end_task(task_id, state, self.clock.now(), state.value)
        assert ended is not None
        return ended

    def lease(self, lease_id: str) -> LeaseRecord:
        lease = self.stores.get_lease(lease_id)
        assert lease is not None
        return lease

    def events(self, kind: str) -> list[dict[str, object]]:
        bodies = [json.loads(r.body) for r in self.stores.read_events(0, 10_000)]
        return [b for b in bodies if b["kind"] == kind]


def make_env() -> Env:
    stores = AuditFailingStores()
    clock = FixedClock()
    broker = FakeBroker()
    manager = LeaseManager(
        leases=stores,
        tasks=stores,
        brokers={"fake": broker},
        audit=AuditLog(stores, clock),
        clock=clock,
    )
    return Env(stores, clock, broker, manager)


@pytest.fixture
def env() -> Env:
    return make_env()


def test_issue_stores_an_active_lease_and_audits_without_the_secret(env: Env) -> None:
    task = env.task()
    issued = env.manager.issue(task, TEMPLATE, actor=AGENT)
    assert issued.secret.values["password"] == SECRET
    assert SECRET not in repr(issued)
    lease = env.lease(issued.lease.lease_id)
    assert (lease.task_id, lease.broker, lease.state) == ("tsk_1", "fake", LeaseState.ACTIVE)
    assert lease.handle in env.broker.created
    assert lease.expires_at == task.expires_at
    [event] = env.events("grant.issue")
    assert event["outcome"] == "success"
    assert event["details"]["handle"] == lease.handle  # type: ignore[index]
    every_body = "".join(r.body for r in env.stores.read_events(0, 10_000))
    assert SECRET not in every_body


@pytest.mark.parametrize("how", ["completed", "expired"])
def test_no_grant_for_a_task_that_is_not_active(env: Env, how: str) -> None:
    task = env.task(ttl=60)
    if how == "completed":
        task = env.end(task.task_id)
    else:
        env.clock.t += 60
    with pytest.raises(Conflict) as caught:
        env.manager.issue(task, TEMPLATE, actor=AGENT)
    assert caught.value.reason == "task.ended"
    assert env.stores.list_leases() == []
    assert env.broker.created == set()


def test_an_unconfigured_broker_is_refused(env: Env) -> None:
    with pytest.raises(NotFound) as caught:
        env.manager.issue(env.task(), GrantTemplate(broker="postgres"), actor=AGENT)
    assert caught.value.reason == "grant.broker_unknown"


def test_a_failed_issue_closes_its_lease_and_is_audited(env: Env) -> None:
    env.broker.fail_issue = Unavailable("grant.postgres", "creating role failed")
    with pytest.raises(Unavailable):
        env.manager.issue(env.task(), TEMPLATE, actor=AGENT)
    [lease] = env.stores.list_leases()
    assert lease.state is LeaseState.REVOKED
    assert lease.end_reason == "grant.issue_failed"
    [event] = env.events("grant.issue")
    assert (event["outcome"], event["reason"]) == ("failure", "grant.postgres")


def test_an_unexpected_issue_error_is_unavailable_and_names_only_its_type(env: Env) -> None:
    env.broker.fail_issue = RuntimeError(f"driver said {SECRET}")
    with pytest.raises(Unavailable) as caught:
        env.manager.issue(env.task(), TEMPLATE, actor=AGENT)
    assert caught.value.reason == "grant.issue_failed"
    [event] = env.events("grant.issue")
    assert event["details"]["error"] == "unexpected RuntimeError"  # type: ignore[index]


def test_a_task_ending_while_its_grant_is_issued_gets_it_revoked(env: Env) -> None:
    task = env.task()
    env.broker.during_issue = lambda: env.end(task.task_id)
    with pytest.raises(Conflict) as caught:
        env.manager.issue(task, TEMPLATE, actor=AGENT)
    assert caught.value.reason == "task.ended"
    [lease] = env.stores.list_leases()
    assert lease.state is LeaseState.REVOKED
    assert env.broker.created == set()  # created, then revoked


def test_a_revocation_that_ran_before_the_credential_existed_is_redone(env: Env) -> None:
    task = env.task()

    def ended_meanwhile() -> None:  # the on_ended hook runs while the broker works
        env.manager.on_ended([env.end(task.task_id)])

    env.broker.during_issue = ended_meanwhile
    with pytest.raises(Conflict):
        env.manager.issue(task, TEMPLATE, actor=AGENT)
    [lease] = env.stores.list_leases()
    assert lease.state is LeaseState.REVOKED
    assert env.broker.created == set()
    assert env.broker.revoked.count(lease.handle) == 2


def test_an_issue_that_cannot_be_audited_is_revoked_and_refused(env: Env) -> None:
    task = env.task()
    original = env.broker.issue

    def issue_then_break_audit(
        handle: str, task: TaskRecord, template: GrantTemplate, expires_at: float
    ) -> GrantSecret:
        secret = original(handle, task, template, expires_at)
        env.stores.audit_down = True
        return secret

    env.broker.issue = issue_then_break_audit  # type: ignore[method-assign]
    with pytest.raises(Unavailable) as caught:
        env.manager.issue(task, TEMPLATE, actor=AGENT)
    assert caught.value.reason == "audit.write"
    [lease] = env.stores.list_leases()
    assert env.broker.created == set()  # the credential is revoked at once
    # but the lease is only recorded revoked with its event: until the audit log takes
    # it, the lease stays revoking, and the sweeper takes it over once it is stale
    assert lease.state is LeaseState.REVOKING
    assert env.events("grant.revoke") == []
    env.stores.audit_down = False
    env.clock.t += STALE_REVOKING
    assert [x.lease_id for x in env.manager.sweep().revoked] == [lease.lease_id]
    assert env.lease(lease.lease_id).state is LeaseState.REVOKED
    [event] = env.events("grant.revoke")
    assert event["subject"] == lease.lease_id


def test_a_failed_revocation_that_cannot_be_audited_is_retried_by_the_sweeper(
    env: Env,
) -> None:
    """A lease is never ``failed`` without its ``grant.revoke_failed`` event (nor
    ``revoked`` without its ``grant.revoke``): one write holds both."""
    lease = env.manager.issue(env.task(), TEMPLATE, actor=AGENT).lease
    env.broker.fail_revoke = [Unavailable("broker.down", "the database is down")]
    env.stores.audit_down = True
    env.manager.revoke(lease.lease_id, actor=AGENT)
    assert env.lease(lease.lease_id).state is LeaseState.REVOKING
    env.stores.audit_down = False
    env.clock.t += STALE_REVOKING
    env.manager.sweep()
    assert env.lease(lease.lease_id).state is LeaseState.REVOKED  # the broker is back
    assert len(env.events("grant.revoke")) == 1
    assert env.events("grant.revoke_failed") == []  # its failure was never recorded


def test_ending_a_task_revokes_all_its_leases_and_no_others(env: Env) -> None:
    mine, other = env.task("tsk_1"), env.task("tsk_2")
    first = env.manager.issue(mine, TEMPLATE, actor=AGENT).lease
    second = env.manager.issue(mine, TEMPLATE, actor=AGENT).lease
    kept = env.manager.issue(other, TEMPLATE, actor=AGENT).lease
    env.manager.on_ended([env.end("tsk_1")])
    assert env.lease(first.lease_id).state is LeaseState.REVOKED
    assert env.lease(second.lease_id).state is LeaseState.REVOKED
    assert env.lease(first.lease_id).end_reason == "task.completed"
    assert env.lease(kept.lease_id).state is LeaseState.ACTIVE  # the twin
    assert sorted(env.broker.revoked) == sorted([first.handle, second.handle])
    assert {e["subject"] for e in env.events("grant.revoke")} == {
        first.lease_id,
        second.lease_id,
    }


def test_a_bus_event_revokes_ended_and_suspended_tasks_but_not_on_resume(env: Env) -> None:
    lease = env.manager.issue(env.task(), TEMPLATE, actor=AGENT).lease
    env.manager.on_revocation(RevocationEvent(("tsk_1",), RevocationKind.RESUMED, "r", 0.0, 1))
    assert env.lease(lease.lease_id).state is LeaseState.ACTIVE
    env.manager.on_revocation(RevocationEvent(("tsk_1",), RevocationKind.SUSPENDED, "r", 0.0, 2))
    assert env.lease(lease.lease_id).state is LeaseState.REVOKED
    assert env.lease(lease.lease_id).end_reason == "task.suspended"


def test_a_failed_revocation_stays_visible_with_its_error_and_next_attempt(env: Env) -> None:
    lease = env.manager.issue(env.task(), TEMPLATE, actor=AGENT).lease
    env.broker.fail_revoke = [Unavailable("grant.postgres", "connection refused")]
    env.manager.on_ended([env.end("tsk_1")])
    failed = env.lease(lease.lease_id)
    assert failed.state is LeaseState.FAILED
    assert failed.attempts == 1
    assert failed.last_error == "grant.postgres: connection refused"
    assert failed.next_attempt_at == env.clock.now() + 5
    assert env.manager.list(state=LeaseState.FAILED) == [failed]
    [event] = env.events("grant.revoke_failed")
    assert (event["outcome"], event["reason"]) == ("failure", "grant.postgres")


def test_failed_revocations_are_retried_with_backoff_until_they_succeed(env: Env) -> None:
    lease = env.manager.issue(env.task(), TEMPLATE, actor=AGENT).lease
    boom = Unavailable("grant.postgres", "down")
    env.broker.fail_revoke = [boom, boom, boom]
    env.manager.on_ended([env.end("tsk_1")])  # attempt 1 fails: retry in 5 s
    assert env.manager.retry_failed().failed == ()  # not due yet: nothing tried
    assert env.lease(lease.lease_id).attempts == 1
    env.clock.t += 5
    result = env.manager.retry_failed()  # attempt 2 fails: retry in 10 s
    assert [x.lease_id for x in result.failed] == [lease.lease_id]
    assert env.lease(lease.lease_id).next_attempt_at == env.clock.now() + 10
    result = env.manager.retry_failed(force=True)  # attempt 3, ignoring the backoff
    assert env.lease(lease.lease_id).next_attempt_at == env.clock.now() + 20
    env.clock.t += 20
    result = env.manager.retry_failed()  # attempt 4 works
    assert [x.lease_id for x in result.revoked] == [lease.lease_id]
    done = env.lease(lease.lease_id)
    assert (done.state, done.attempts, done.next_attempt_at) == (LeaseState.REVOKED, 4, None)
    assert done.end_reason == "task.completed"
    assert len(env.events("grant.revoke_failed")) == 3
    assert len(env.events("grant.revoke")) == 1


def test_the_backoff_is_capped(env: Env) -> None:
    lease = env.manager.issue(env.task(), TEMPLATE, actor=AGENT).lease
    env.broker.fail_revoke = [Unavailable("grant.postgres", "down")] * 12
    env.manager.on_ended([env.end("tsk_1")])
    for _ in range(10):
        env.manager.retry_failed(force=True)
    assert env.lease(lease.lease_id).next_attempt_at == env.clock.now() + 300


def test_a_lease_whose_broker_is_gone_fails_visibly(env: Env) -> None:
    lease = env.manager.issue(env.task(), TEMPLATE, actor=AGENT).lease
    env.manager.brokers.clear()  # the broker was removed from the configuration
    env.manager.on_ended([env.end("tsk_1")])
    failed = env.lease(lease.lease_id)
    assert failed.state is LeaseState.FAILED
    assert failed.last_error is not None
    assert failed.last_error.startswith("grant.broker_unknown")


def test_sweep_revokes_leases_of_expired_or_vanished_tasks(env: Env) -> None:
    short = env.manager.issue(env.task("tsk_1", ttl=60), TEMPLATE, actor=AGENT).lease
    long = env.manager.issue(env.task("tsk_2", ttl=600), TEMPLATE, actor=AGENT).lease
    ended = env.manager.issue(env.task("tsk_3"), TEMPLATE, actor=AGENT).lease
    env.end("tsk_3", TaskState.REVOKED)  # the hook never ran (a crash, a store outage)
    env.clock.t += 60
    result = env.manager.sweep()
    assert {x.lease_id for x in result.revoked} == {short.lease_id, ended.lease_id}
    assert env.lease(short.lease_id).end_reason == "task.expired"
    assert env.lease(ended.lease_id).end_reason == "task.revoked"
    assert env.lease(long.lease_id).state is LeaseState.ACTIVE  # the twin


def test_sweep_reaches_old_leases_behind_a_full_batch_of_live_ones(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More active leases than one batch: the oldest (the likeliest to have expired, or
    whose task ended without its hook) are still revoked, as are failures due."""
    monkeypatch.setattr("zerolane.grants.leases.SWEEP_BATCH", 3)
    expired = env.manager.issue(env.task("tsk_old", ttl=60), TEMPLATE, actor=AGENT).lease
    ended = env.manager.issue(env.task("tsk_ended"), TEMPLATE, actor=AGENT).lease
    env.end("tsk_ended", TaskState.REVOKED)  # the hook never ran
    env.broker.fail_revoke = [Unavailable("grant.test", "down")]
    failing = env.manager.issue(env.task("tsk_failing"), TEMPLATE, actor=AGENT).lease
    env.manager.revoke_task("tsk_failing", reason="task.completed")
    assert env.lease(failing.lease_id).state is LeaseState.FAILED
    for n in range(4):  # newer and live: a full batch and more
        env.clock.t += 1
        env.manager.issue(env.task(f"tsk_live_{n}"), TEMPLATE, actor=AGENT)
    env.clock.t += 60
    result = env.manager.sweep()
    assert {x.lease_id for x in result.revoked} == {
        expired.lease_id,
        ended.lease_id,
        failing.lease_id,
    }
    live = env.stores.list_leases(state=LeaseState.ACTIVE, limit=100)
    assert len(live) == 4  # the twins


def test_sweep_takes_over_a_revocation_abandoned_midway(env: Env) -> None:
    lease = env.manager.issue(env.task(), TEMPLATE, actor=AGENT).lease
    env.stores.transition_lease(
        lease.lease_id, expected=(LeaseState.ACTIVE,), state=LeaseState.REVOKING, at=env.clock.now()
    )  # a process claimed it, then died
    assert env.manager.sweep().revoked == ()  # not stale yet
    env.clock.t += 120
    assert [x.lease_id for x in env.manager.sweep().revoked] == [lease.lease_id]


def test_an_admin_revokes_one_lease(env: Env) -> None:
    lease = env.manager.issue(env.task(), TEMPLATE, actor=AGENT).lease
    done = env.manager.revoke(lease.lease_id, actor=ADMIN)
    assert done.state is LeaseState.REVOKED
    assert env.manager.revoke(lease.lease_id, actor=ADMIN) == done  # idempotent
    assert env.broker.revoked == [lease.handle]
    [event] = env.events("grant.revoke")
    assert event["actor"] == {"type": "admin", "id": "t"}
    with pytest.raises(NotFound):
        env.manager.revoke("lse_unknown", actor=ADMIN)


def test_concurrent_revokers_revoke_once(env: Env) -> None:
    lease = env.manager.issue(env.task(), TEMPLATE, actor=AGENT).lease
    ended = [env.end("tsk_1")]
    barrier = threading.Barrier(6)

    def revoke() -> None:
        barrier.wait()
        env.manager.on_ended(ended)

    threads = [threading.Thread(target=revoke) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert env.broker.revoked == [lease.handle]
    assert env.lease(lease.lease_id).attempts == 1


def test_the_sweeper_thread_retries_in_the_background(env: Env) -> None:
    lease = env.manager.issue(env.task(), TEMPLATE, actor=AGENT).lease
    env.broker.fail_revoke = [Unavailable("grant.postgres", "down")]
    env.manager.on_ended([env.end("tsk_1")])
    env.clock.t += 5
    sweeper = GrantSweeper(env.manager, interval=0.01)
    sweeper.start()
    try:
        for _ in range(500):
            if env.lease(lease.lease_id).state is LeaseState.REVOKED:
                break
            threading.Event().wait(0.01)
    finally:
        sweeper.stop()
    assert env.lease(lease.lease_id).state is LeaseState.REVOKED


def test_a_store_failure_after_issuing_kills_the_credential(env: Env) -> None:
    task = env.task()
    original = env.stores.get_task

    def store_down(task_id: str) -> TaskRecord | None:
        raise Unavailable("store.read", "the database could not be read")

    env.broker.during_issue = lambda: setattr(env.stores, "get_task", store_down)
    with pytest.raises(Unavailable):
        env.manager.issue(task, TEMPLATE, actor=AGENT)
    env.stores.get_task = original  # type: ignore[method-assign]
    assert env.broker.created == set()  # revoked at once, though the lease says active
    [lease] = env.stores.list_leases()
    assert lease.state is LeaseState.ACTIVE
    env.end(task.task_id)
    assert [x.lease_id for x in env.manager.sweep().revoked] == [lease.lease_id]  # tidied later
