"""The privilege-reuse detector: a token used far above its baseline, from a new key or
certificate, or one grant seen for two tasks fire; a steady rate, a young token, the
same key, one task do not."""

from __future__ import annotations

import json

from tests.detection.recorded import Recorder, run, seqs
from zerolane.detection.privilege_reuse import PrivilegeReuseDetector
from zerolane.settings.detection import PrivilegeReuseSettings
from zerolane.types import Outcome

SETTINGS = PrivilegeReuseSettings(window_seconds=60, factor=5.0, min_uses=10, learning_windows=3)


def use(
    log: Recorder,
    at: float,
    *,
    token: str = "jti_1",  # noqa: S107 (a token id, not a token)
    task: str = "tsk_1",
    **details: object,
) -> None:
    members: dict[str, object] = {"action": "http:GET", "token_id": token} | details
    if not token:
        del members["token_id"]
    log.add("decision", at, subject=task, outcome=Outcome.SUCCESS, details=members)


def steady(log: Recorder, minutes: int, per_minute: int = 2, **kw: object) -> None:
    for m in range(minutes):
        for n in range(per_minute):
            use(log, m * 60 + n, **kw)  # type: ignore[arg-type]


def test_a_burst_far_above_its_baseline_fires_once_per_window() -> None:
    log = Recorder()
    steady(log, 5)  # ten uses over five minutes
    for n in range(15):  # then fifteen in one minute
        use(log, 300 + n)
    (found,) = run(PrivilegeReuseDetector(SETTINGS), log.records)
    assert found.detector == "privilege_reuse"
    details = found.details()
    assert details["pattern"] == "rate"
    assert details["credential"] == "token:jti_1"
    assert details["count"] == 10
    assert seqs(found) == list(range(11, 21))  # the window's uses so far


def test_the_near_miss_a_steady_rate_a_young_token_or_few_uses_do_not_fire() -> None:
    log = Recorder()
    steady(log, 10, per_minute=12)  # busy, but its own rate
    for n in range(30):  # a new token's first minute: no baseline yet
        use(log, 700 + n, token="jti_2")
    steady(log, 4, token="jti_3")
    for n in range(9):  # under min_uses
        use(log, 300 + n, token="jti_3")
    assert run(PrivilegeReuseDetector(SETTINGS), log.records) == []


def test_a_decision_without_a_token_id_counts_its_task() -> None:
    log = Recorder()
    steady(log, 4, token="")
    for n in range(10):
        use(log, 600 + n, token="")
    (found,) = run(PrivilegeReuseDetector(SETTINGS), log.records)
    assert found.details()["credential"] == "task:tsk_1"


def test_a_token_used_with_a_new_key_fires_and_with_its_own_does_not() -> None:
    log = Recorder()
    log.add(
        "task.opened",
        0,
        subject="tsk_1",
        outcome=Outcome.SUCCESS,
        details={"token_id": "jti_1", "jkt": "key-A"},
    )
    use(log, 1, jkt="key-A", presented_x5t="cert-1")
    use(log, 2, jkt="key-A", presented_x5t="cert-1")
    use(log, 3, proof_jkt="key-B")  # the key of another holder
    use(log, 4, proof_jkt="key-B")  # known now
    use(log, 5, jkt="key-A", client_address="10.0.0.1")  # a first address: no baseline
    (found,) = run(PrivilegeReuseDetector(SETTINGS), log.records)
    assert found.details()["pattern"] == "source"
    assert found.details()["sources"] == ["key=key-B"]
    assert seqs(found) == [1, 4]


def test_one_grant_seen_for_two_tasks_fires() -> None:
    log = Recorder()
    grant = {"task_id": "tsk_1", "broker": "pg", "handle": "role_7"}
    log.add("grant.issue", 0, subject="lse_1", outcome=Outcome.SUCCESS, details=grant)
    log.add(
        "grant.issue",
        1,
        subject="lse_2",
        outcome=Outcome.SUCCESS,
        details=grant | {"task_id": "tsk_2"},
    )
    log.add("grant.revoke", 2, subject="lse_9", outcome=Outcome.SUCCESS)  # no task named
    use(log, 2, task="tsk_1", token="", lease_id="lse_9")  # its first task
    use(log, 2, task="tsk_1", token="", lease_id="lse_1")
    use(log, 3, task="tsk_3", token="", lease_id="lse_1")
    use(log, 4, task="tsk_3", token="", lease_id="lse_1")  # once per other task
    found = run(PrivilegeReuseDetector(SETTINGS), log.records)
    assert [(d.details()["credential"], seqs(d)) for d in found] == [
        ("handle:pg/role_7", [1, 2]),
        ("lease:lse_1", [1, 6]),
    ]
    assert found[1].details()["tasks"] == ["tsk_1", "tsk_3"]


def test_the_near_miss_one_grant_for_one_task_and_refusals_do_not_fire() -> None:
    log = Recorder()
    grant = {"task_id": "tsk_1", "broker": "pg", "handle": "role_7"}
    log.add("grant.issue", 0, subject="lse_1", outcome=Outcome.SUCCESS, details=grant)
    log.add("grant.revoke", 9, subject="lse_1", outcome=Outcome.SUCCESS, details=grant)
    log.add("grant.issue", 1, subject="tsk_2", outcome=Outcome.DENIED, details={"task_id": "tsk_2"})
    log.add(
        "grant.issue", 2, subject="lse_3", outcome=Outcome.SUCCESS, details={"task_id": "tsk_2"}
    )
    use(log, 3, task="tsk_1", lease_id="lse_1")
    log.add("task.opened", 4, subject="tsk_4", outcome=Outcome.SUCCESS, details={})
    log.add("decision", 5, subject="unknown", actor="unauthenticated", outcome=Outcome.DENIED)
    assert run(PrivilegeReuseDetector(SETTINGS), log.records) == []


def test_its_credentials_are_bounded_and_survive_a_restart() -> None:
    log = Recorder()
    steady(log, 5)
    first = PrivilegeReuseDetector(SETTINGS)
    assert run(first, log.records) == []
    second = PrivilegeReuseDetector(SETTINGS)
    second.restore(first.state())
    for n in range(10):
        use(log, 300 + n)
    assert len(run(second, log.records[10:])) == 1
    small = PrivilegeReuseDetector(PrivilegeReuseSettings(max_credentials=1, max_sources=1))
    use(log, 400, token="jti_2", jkt="a")
    use(log, 401, token="jti_2", jkt="b")
    use(log, 402, token="jti_2", jkt="c", task="tsk_2")
    use(log, 403, token="jti_2", jkt="d", task="tsk_3")  # max_sources other tasks: quiet
    found = run(small, log.records[-4:])
    assert [d.details()["pattern"] for d in found] == ["source", "tasks", "source", "source"]
    state = small.state()["credentials"]
    assert list(state) == ["token:jti_2"]
    assert list(state["token:jti_2"][4]) == ["key=d"]
    empty = PrivilegeReuseDetector(SETTINGS)
    empty.restore({})
    assert empty.state() == {"credentials": {}}


def as_json(state: object) -> object:
    return json.loads(json.dumps(state))


def test_its_state_text_is_its_state_encoding_again_only_what_was_used() -> None:
    log = Recorder()
    steady(log, 3)
    use(log, 500, token="jti_2", task="tsk_2")
    detector = PrivilegeReuseDetector(PrivilegeReuseSettings(max_credentials=2))
    run(detector, log.records)
    assert json.loads(detector.state_text()) == as_json(detector.state())
    use(log, 501, token="jti_3", task="tsk_3")  # a third credential: the oldest forgotten
    use(log, 502, token="jti_2", task="tsk_2")  # one used again: its text is made anew
    run(detector, log.records[-2:])
    text = detector.state_text()
    assert json.loads(text) == as_json(detector.state())
    assert list(json.loads(text)["credentials"]) == ["token:jti_3", "token:jti_2"]
    assert detector.state_text() == text  # nothing used since: the same text
    restored = PrivilegeReuseDetector(PrivilegeReuseSettings(max_credentials=2))
    restored.restore(json.loads(text))
    assert restored.state_text() == text
