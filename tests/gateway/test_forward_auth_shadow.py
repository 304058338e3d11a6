"""Forward-auth routes in shadow mode: a request the policies deny is answered 200 (the
proxy forwards it) with ``X-Zerolane-Shadow``, and audited as a would-deny; its twin on
an enforced route is refused 403; what is checked in code is never relaxed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.gateway.task_home import API, ControlPlane, control_plane
from tests.gateway.test_forward_auth import PUBLIC, ROUTES, check, nginx_headers, opened, settings
from zerolane.gateway.forward_auth import create_app
from zerolane.sdk import Task


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("forward-auth-shadow") / "home") as plane:
        yield plane


@pytest.fixture
def task(cp: ControlPlane) -> Iterator[Task]:
    with opened(cp, PUBLIC) as task:
        yield task


#: DELETE /reports/{name} (the playbook has no ``delete``) in shadow mode
SHADOWED: list[dict[str, Any]] = [
    {**rule, "mode": "shadow"} if rule["method"] == "DELETE" else rule for rule in ROUTES
]
DELETE_NAME = f"route:{API} DELETE /reports/{{name}}"


def client(cp: ControlPlane, proxy: str = "nginx", **extra: Any) -> TestClient:
    app = create_app(settings(proxy, **extra), cp.deployment.decider, cp.deployment.audit)
    return TestClient(app)


def test_modes_default_to_enforce_a_route_wins_over_the_config() -> None:
    plain = settings("nginx")
    assert plain.mode == "enforce"
    assert [plain.shadow_of(rule) for rule in plain.routes] == [None] * len(ROUTES)
    one = settings("nginx", routes=SHADOWED)
    assert [one.shadow_of(rule) for rule in one.routes] == [None, DELETE_NAME, None, None]
    enforced_get = [{**ROUTES[0], "mode": "enforce"}, *ROUTES[1:]]
    every = settings("nginx", mode="shadow", routes=enforced_get)
    assert [every.shadow_of(rule) for rule in every.routes] == [
        None,  # its own mode wins
        DELETE_NAME,
        f"route:{API} * /files/{{a}}/{{b}}",
        f"route:{API} GET /",
    ]


def test_a_policy_deny_on_a_shadow_route_answers_200_with_x_zerolane_shadow(
    cp: ControlPlane, task: Task
) -> None:
    with client(cp, routes=SHADOWED) as shadowed:
        reply = check(shadowed, nginx_headers(task, "DELETE", "/reports/q3"))
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-zerolane-shadow"] == "scope.action"
        assert reply.headers["x-zerolane-task"] == task.task_id
        decision = cp.decisions()[-1]
        assert decision["decision_id"] == reply.headers["x-zerolane-decision"]
        assert decision["decision"] == "shadow"
        assert decision["would_deny"] == ["scope.action"]
        assert decision["shadow"] == [DELETE_NAME]
        # an allowed request of the same task: a plain 200, no shadow header
        allowed = check(shadowed, nginx_headers(task, "GET", "/reports/q3"))
        assert allowed.status_code == 200
        assert "x-zerolane-shadow" not in allowed.headers
        assert cp.decisions()[-1]["decision"] == "allow"
    # the same request with the route enforced: refused
    with client(cp) as enforced:
        denied = check(enforced, nginx_headers(task, "DELETE", "/reports/q3"))
        assert (denied.status_code, denied.json()["reason"]) == (403, "scope.action")
        assert "x-zerolane-shadow" not in denied.headers
        assert cp.decisions()[-1]["decision"] == "deny"


def test_shadow_never_relaxes_what_is_checked_in_code(cp: ControlPlane, task: Task) -> None:
    with client(cp, mode="shadow") as shadowed:
        # no token: 401, as enforced
        missing = check(shadowed, {"X-Original-Method": "DELETE", "X-Original-URI": "/reports/q3"})
        assert missing.status_code == 401
        # an unmapped route is refused before any decision
        unmapped = check(shadowed, nginx_headers(task, "GET", "/admin/users"))
        assert (unmapped.status_code, unmapped.json()["reason"]) == (403, "route.unmapped")
        # a replayed proof, on a route in shadow
        headers = nginx_headers(task, "DELETE", "/reports/q3")
        assert check(shadowed, headers).status_code == 200
        replayed = check(shadowed, headers)
        assert (replayed.status_code, replayed.headers["x-zerolane-reason"]) == (
            401,
            "dpop.replayed",
        )
    task.complete()
    with client(cp, mode="shadow") as shadowed:
        ended = check(shadowed, nginx_headers(task, "DELETE", "/reports/q3"))
        assert ended.status_code == 403
        assert ended.json()["reason"].startswith("task.")


def test_traefik_and_envoy_answer_a_shadow_allow_200_too(cp: ControlPlane, task: Task) -> None:
    with client(cp, "envoy", routes=SHADOWED) as envoy:
        url = PUBLIC + "/reports/q3"
        reply = envoy.delete("/forward-auth/reports/q3", headers=task.headers("DELETE", url))
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-zerolane-shadow"] == "scope.action"
