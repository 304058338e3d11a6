"""Failed sign-ins on the consent page, limited per username typed and per address:
each lock beside the attempt that is heard (the person, after the lock; another
address; a name that exists and one that does not, told apart by nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.clocks import AheadClock
from tests.server.oauth_fixtures import PASSWORD, USER, form_fields, oauth_home, pkce, query_of
from tests.server.test_oauth_routes import BASE, RESOURCE, Flow
from zerolane.audit.log import event_json
from zerolane.server.app import create_app
from zerolane.server.oauth_throttle import MAX_KEYS, MAX_LOCK, WINDOW, SignInThrottle

# the throttle itself


def test_a_key_is_locked_past_its_threshold_with_doubling_backoff() -> None:
    throttle = SignInThrottle(per_user=3, per_address=100, backoff=10)
    for _ in range(2):
        throttle.failed("alice", "a", 0.0)
    assert throttle.retry_after("alice", "a", 0.0) == 0  # under the threshold: heard
    throttle.failed("alice", "a", 0.0)
    assert throttle.retry_after("alice", "a", 0.0) == 10
    assert throttle.retry_after("alice", "b", 0.0) == 10  # the name, from anywhere
    assert throttle.retry_after("bob", "a", 0.0) == 0  # another name, same address
    assert throttle.retry_after(None, "a", 0.0) == 0
    throttle.failed("alice", "a", 10.0)
    assert throttle.retry_after("alice", "a", 10.0) == 20  # doubled
    throttle.failed("alice", "a", 30.0)
    assert throttle.retry_after("alice", "a", 30.0) == 40
    assert throttle.retry_after("alice", "a", 69.5) == 1  # whole seconds, rounded up
    assert throttle.retry_after("alice", "a", 70.0) == 0


def test_the_lock_is_capped_and_forgotten_after_the_window() -> None:
    throttle = SignInThrottle(per_user=1, per_address=100, backoff=600)
    for at in (0.0, 1.0, 2.0):
        throttle.failed("alice", "a", at)
    assert throttle.retry_after("alice", "a", 2.0) == MAX_LOCK  # never more
    later = 2.0 + max(WINDOW, MAX_LOCK) + 1
    assert throttle.retry_after("alice", "a", later) == 0
    throttle.failed("alice", "a", later)  # counted from nothing again: the first lock
    assert throttle.retry_after("alice", "a", later) == 600


def test_an_address_has_its_own_threshold_and_a_success_clears_both() -> None:
    throttle = SignInThrottle(per_user=100, per_address=2, backoff=5)
    throttle.failed("alice", "a", 0.0)
    throttle.failed(None, "a", 0.0)  # an OpenID sign-in refused: the address only
    assert throttle.retry_after("carol", "a", 0.0) == 5
    assert throttle.retry_after(None, "a", 0.0) == 5
    assert throttle.retry_after("carol", "b", 0.0) == 0  # the twin: another address
    throttle.succeeded("alice", "a")
    assert throttle.retry_after("alice", "a", 0.0) == 0
    throttle.failed("alice", "a", 1.0)
    assert throttle.retry_after("alice", "a", 1.0) == 0  # one failure again, not three


def test_the_table_is_bounded() -> None:
    throttle = SignInThrottle(per_user=1, per_address=1, backoff=5)
    throttle.failed("alice", "first", 0.0)
    for index in range(MAX_KEYS):
        throttle.failed(None, f"10.0.{index // 256}.{index % 256}", 0.0)
    assert throttle.retry_after(None, "first", 0.0) == 0  # the oldest key went first
    assert throttle.retry_after("alice", "elsewhere", 0.0) == 5  # another table


# on the consent page


@pytest.fixture
def clock() -> AheadClock:
    return AheadClock()


@pytest.fixture
def flow(tmp_path: Path, clock: AheadClock) -> Iterator[Flow]:
    deployment = oauth_home(
        tmp_path / "home", public_url=BASE, resource=RESOURCE, bearer=False, clock=clock
    )
    with TestClient(create_app(deployment), base_url=BASE) as client:
        yield Flow(client, deployment)
    deployment.close()


def _attempt(flow: Flow, page: Any, username: str, password: str, client: Any = None) -> Any:
    fields = form_fields(page.text)
    return (client or flow.client).post(
        "/oauth/authorize",
        data={
            **fields,
            "username": username,
            "password": password,
            "playbook": "ide-reports",
            "intent": "Summarize the Q3 report",
            "decision": "allow",
        },
        headers={"Cookie": f"zl_oauth_csrf={page.cookies.get('zl_oauth_csrf')}"},
        follow_redirects=False,
    )


def _page(flow: Flow) -> Any:
    client_id = flow.register()["client_id"]
    return flow.person.open_page(flow.authorize_url(client_id, pkce()[1]))


def test_a_guessed_password_is_locked_out_and_the_person_signs_in_after(
    flow: Flow, clock: AheadClock
) -> None:
    page = _page(flow)
    for _ in range(5):
        assert _attempt(flow, page, USER, "a guess, wrong").status_code == 401
    locked = _attempt(flow, page, USER, PASSWORD)  # even the right password, now
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "30"
    assert "oauth.sign_in_throttled" in locked.text
    assert "location" not in locked.headers
    assert locked.headers["x-frame-options"] == "DENY"  # the page, as ever
    clock.ahead += 31  # the lock is over: the person signs in
    right = _attempt(flow, page, USER, PASSWORD)
    assert right.status_code == 303, right.text
    assert "code" in query_of(right.headers["location"])
    flow.deployment.refusals.flush(10)  # refusals are written off the request path
    events = [event_json(r) for r in flow.deployment.audit.iter_records()]
    reasons = [e.get("reason") for e in events if e["kind"] == "oauth.sign_in"]
    assert reasons == ["oauth.sign_in"] * 5 + ["oauth.sign_in_throttled"]


def test_a_name_nobody_has_is_locked_the_same_way(flow: Flow) -> None:
    page = _page(flow)
    answers = [_attempt(flow, page, "mallory", "a guess, wrong") for _ in range(6)]
    known = [_attempt(flow, _page(flow), USER, "a guess, wrong") for _ in range(6)]
    for replies in (answers, known):  # nothing tells the two apart
        assert [r.status_code for r in replies] == [401] * 5 + [429]
        assert replies[-1].headers["retry-after"] == "30"
    assert answers[-1].text.count("try again in 30 s") == 1
    assert known[-1].text.count("try again in 30 s") == 1


def test_one_address_guessing_many_names_is_locked_not_another(flow: Flow) -> None:
    page = _page(flow)
    for index in range(20):
        assert _attempt(flow, page, f"user{index}", "a guess, wrong").status_code == 401
    assert _attempt(flow, page, USER, PASSWORD).status_code == 429
    elsewhere = TestClient(flow.client.app, base_url=BASE, client=("198.51.100.7", 40000))
    other = Flow(elsewhere, flow.deployment)
    right = _attempt(other, _page(other), USER, PASSWORD, elsewhere)
    assert right.status_code == 303, right.text
