"""The grant API: a task's owner asks for a credential its playbook grants; admins list,
revoke and retry leases. Each refusal has its legitimate twin."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import psycopg
import pytest
from psycopg import sql

from tests.grants.pg import SHARED_URL, shared_admin
from tests.server.conftest import Api
from tests.server.task_fixtures import BASE, Opened, TaskApi, dpop, playbook
from zerolane.audit.events import Actor
from zerolane.grants.hmac_keys import HmacKeyBroker, verify_api_key
from zerolane.grants.postgres_role import PostgresRoleBroker
from zerolane.grants.static import StaticSecret, StaticSecretBroker
from zerolane.store.records import LeaseState

KEY = b"g" * 32


@pytest.fixture
def tapi(api: Api) -> TaskApi:
    tapi = TaskApi(api)
    tapi.apply_playbook(playbook(grants={"hmac": {"ttl": 120}, "static": {}}))
    brokers = tapi.deployment.grants.brokers
    brokers["hmac"] = HmacKeyBroker(KEY, clock=tapi.deployment.clock)
    brokers["static"] = StaticSecretBroker(StaticSecret("X-Token", "legacy-value", origin="test"))
    return tapi


def ask(tapi: TaskApi, task: Opened, broker: str, *, task_id: str | None = None) -> httpx2.Response:
    target = task_id or task.task_id
    url = f"{BASE}/v1/tasks/{target}/grants"
    return tapi.client.post(
        f"/v1/tasks/{target}/grants",
        json={"broker": broker},
        headers=dpop(task.holder.key, task.token, "POST", url),
    )


def leases(tapi: TaskApi, **params: Any) -> list[dict[str, Any]]:
    reply = tapi.client.get("/v1/admin/grants", params=params, headers=tapi.admin)
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()
    return found


def test_the_owner_gets_a_task_bound_key_once_and_it_is_leased(tapi: TaskApi) -> None:
    task = tapi.opened()
    reply = ask(tapi, task, "hmac")
    assert reply.status_code == 201, reply.text
    assert reply.headers["cache-control"] == "no-store"
    body = reply.json()
    key = body["credential"]["api_key"]
    assert verify_api_key(KEY, key, time.time()) == task.task_id
    assert body["lease"]["state"] == "active"
    assert body["lease"]["task_id"] == task.task_id
    [listed] = leases(tapi, task_id=task.task_id)
    assert listed["lease_id"] == body["lease"]["lease_id"]
    assert key not in str(tapi.events("grant.issue"))


def test_no_grant_without_the_task_tokens_key(tapi: TaskApi) -> None:
    task = tapi.opened()
    url = f"{BASE}/v1/tasks/{task.task_id}/grants"
    stolen = {"Authorization": f"DPoP {task.token}"}  # the token alone, no proof
    reply = tapi.client.post(url, json={"broker": "hmac"}, headers=stolen)
    assert reply.status_code == 401
    assert leases(tapi) == []


def test_no_grant_for_another_task(tapi: TaskApi) -> None:
    mine, theirs = tapi.opened(), tapi.opened()
    reply = ask(tapi, mine, "hmac", task_id=theirs.task_id)
    assert (reply.status_code, reply.json()["reason"]) == (403, "task.not_yours")
    assert ask(tapi, theirs, "hmac").status_code == 201  # the twin


def test_no_grant_the_playbook_does_not_list(tapi: TaskApi) -> None:
    task = tapi.opened()
    reply = ask(tapi, task, "postgres")
    assert (reply.status_code, reply.json()["reason"]) == (403, "grant.not_in_playbook")
    [event] = tapi.events("grant.issue")
    assert (event["outcome"], event["reason"]) == ("denied", "grant.not_in_playbook")


def test_a_legacy_static_secret_is_never_handed_to_an_agent(tapi: TaskApi) -> None:
    task = tapi.opened()
    reply = ask(tapi, task, "static")
    assert (reply.status_code, reply.json()["reason"]) == (403, "grant.legacy")
    assert "legacy-value" not in reply.text


def test_a_broker_listed_but_not_configured_is_404(tapi: TaskApi) -> None:
    del tapi.deployment.grants.brokers["hmac"]
    reply = ask(tapi, tapi.opened(), "hmac")
    assert (reply.status_code, reply.json()["reason"]) == (404, "grant.broker_unknown")


def test_no_grant_after_completion_and_the_leases_are_revoked(tapi: TaskApi) -> None:
    task = tapi.opened()
    assert ask(tapi, task, "hmac").status_code == 201
    assert tapi.complete(task.task_id, task.token, task.holder.key).status_code == 200
    [lease] = leases(tapi, task_id=task.task_id)
    assert (lease["state"], lease["end_reason"]) == ("revoked", "task.completed")
    reply = ask(tapi, task, "hmac")
    assert reply.status_code in (401, 409)  # the token is dead, or the task has ended
    assert len(leases(tapi, task_id=task.task_id)) == 1


def test_no_grant_while_the_task_is_held_for_approval(tapi: TaskApi) -> None:
    # a held task's every request needs a person's yes: a credential handed out would
    # reach the downstream past the hold (its twin, another task, gets one)
    held, other = tapi.opened(), tapi.opened()
    actor = Actor("system", "response:hold")
    holds = tapi.deployment.holds
    holds.place(held.task_id, rule="hold", detector="scope_probing", detection="d1", actor=actor)
    reply = ask(tapi, held, "hmac")
    assert (reply.status_code, reply.json()["reason"]) == (403, "task.held")
    assert leases(tapi, task_id=held.task_id) == []
    [refused] = tapi.events("grant.issue")
    assert (refused["subject"], refused["reason"]) == (held.task_id, "task.held")
    assert ask(tapi, other, "hmac").status_code == 201
    holds.clear(held.task_id, actor=tapi.admin_actor)
    assert ask(tapi, held, "hmac").status_code == 201  # released: decided as before


def test_a_playbook_changed_since_the_task_opened_grants_nothing(tapi: TaskApi) -> None:
    task = tapi.opened()
    tapi.apply_playbook(playbook(grants={"hmac": {"ttl": 600}}))
    reply = ask(tapi, task, "hmac")
    assert (reply.status_code, reply.json()["reason"]) == (409, "grant.playbook_changed")
    assert ask(tapi, tapi.opened(), "hmac").status_code == 201  # a new task gets it


def test_admins_revoke_and_retry_leases(tapi: TaskApi) -> None:
    task = tapi.opened()
    lease_id = ask(tapi, task, "hmac").json()["lease"]["lease_id"]
    reply = tapi.client.post(f"/v1/admin/grants/{lease_id}/revoke", headers=tapi.admin)
    assert (reply.status_code, reply.json()["state"]) == (200, "revoked")
    reply = tapi.client.post("/v1/admin/grants/retry", headers=tapi.admin)
    assert reply.json() == {"revoked": [], "failed": []}
    assert leases(tapi, state="revoked")[0]["lease_id"] == lease_id
    assert leases(tapi, state="active") == []
    bad = tapi.client.get("/v1/admin/grants", params={"state": "gone"}, headers=tapi.admin)
    assert (bad.status_code, bad.json()["reason"]) == (400, "lease.state")
    anonymous = tapi.client.get("/v1/admin/grants")
    assert anonymous.status_code == 401


# PostgreSQL through the API: the attack-table row and its twin


@pytest.fixture
def reader() -> Iterator[tuple[str, str, str]]:
    """A template role, the table it may read, and a role prefix, on the shared server."""
    admin = shared_admin()
    sfx = secrets.token_hex(4)
    role, table, prefix = f"zt_api_{sfx}", f"zt_api_reports_{sfx}", f"zt{sfx}_"
    admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    admin.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(table)))
    admin.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(*map(sql.Identifier, (table, role))))
    try:
        yield role, table, prefix
    finally:
        for (left,) in admin.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)
        ).fetchall():
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(str(left))))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(str(left))))
        admin.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        admin.close()


def test_postgres_login_works_during_the_task_and_fails_after_completion(
    tapi: TaskApi, reader: tuple[str, str, str]
) -> None:
    role, table, prefix = reader
    tapi.deployment.grants.brokers["postgres"] = PostgresRoleBroker(SHARED_URL, role_prefix=prefix)
    tapi.apply_playbook(playbook(grants={"postgres": {"role": role}}))
    task = tapi.opened()
    reply = ask(tapi, task, "postgres")
    assert reply.status_code == 201, reply.text
    credential = reply.json()["credential"]
    with psycopg.connect(credential["dsn"]) as conn:  # the twin: during the task
        assert conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone() == (0,)
    assert tapi.complete(task.task_id, task.token, task.holder.key).status_code == 200
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(credential["dsn"], connect_timeout=3)
    [lease] = leases(tapi, task_id=task.task_id)
    assert lease["state"] == LeaseState.REVOKED.value
    assert credential["password"] not in str(tapi.events("grant.issue"))
    assert credential["password"] not in str(tapi.events("grant.revoke"))
