"""The token endpoints' refusals are audited (issue 13): ``POST /v1/tasks``,
``POST /v1/token`` and ``POST /oauth/token`` record every refusal the core did not as
one ``token.refused`` event, with its reason, the client's address and what was sent
or verified, never a credential; each refusal has its twin that goes through and is
audited as a success; a flood writes a burst and counts the rest; the OCSF export and
the replay detector read the events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from tests.audit.test_ocsf_schema import problems
from tests.server.conftest import AGENT, serving
from tests.server.oauth_fixtures import REDIRECT, oauth_home
from tests.server.task_fixtures import (
    BASE,
    INTENT,
    OTHER_AGENT,
    PLAYBOOK,
    TASKS_URL,
    TaskApi,
    dpop,
    playbook,
)
from tests.server.test_oauth_routes import RESOURCE, Flow
from tests.server.test_token_routes import TEAM, delegation, opened, post_token
from tests.server.test_token_routes import TOKEN_URL as EXCHANGE_URL
from zerolane.audit.ocsf import to_ocsf
from zerolane.detection.replay import ReplayDetector
from zerolane.detection.seen import Seen
from zerolane.server.app import create_app
from zerolane.server.deployment import Deployment
from zerolane.server.token_refusals import KIND, MAX_TEXT, token_refused
from zerolane.settings.detection import ReplaySettings
from zerolane.store.records import AuditRecord
from zerolane.tokens.rfc9449 import make_proof

#: ``[audit] refusals_burst`` of a new home
BURST = 20


class HeldClock:
    """The wall clock, or a moment the test holds it at (the refusals' buckets refill
    with time: held, a flood's count does not depend on how fast the test runs)."""

    def __init__(self) -> None:
        self.held: float | None = None

    def now(self) -> float:
        return self.held if self.held is not None else time.time()


@pytest.fixture
def clock() -> HeldClock:
    return HeldClock()


@pytest.fixture
def tapi(tmp_path: Path, clock: HeldClock) -> Iterator[TaskApi]:
    with serving(tmp_path / "home", clock) as api:
        tapi = TaskApi(api)
        tapi.apply_playbook(playbook(name=TEAM, delegable=True, max_depth=2))
        yield tapi


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    deployment = oauth_home(tmp_path / "home", public_url=BASE, resource=RESOURCE, bearer=False)
    with TestClient(create_app(deployment), base_url=BASE) as client:
        yield Flow(client, deployment)
    deployment.close()


def records(deployment: Deployment) -> list[AuditRecord]:
    deployment.refusals.flush(10)
    return list(deployment.stores.read_events(0, 100_000))


def events(deployment: Deployment, kind: str) -> list[dict[str, Any]]:
    bodies = [json.loads(r.body) for r in records(deployment)]
    return [b for b in bodies if b["kind"] == kind]


def reason_of(reply: Any) -> str:
    return str(reply.json()["reason"])


def assert_no_secret(deployment: Deployment, *secrets: str) -> None:
    text = "\n".join(r.body for r in records(deployment))
    for secret in secrets:
        assert secret not in text
        if secret.count(".") == 2:  # a JWT: not even its signature
            assert secret.split(".")[2] not in text


# ---- POST /v1/tasks ----------------------------------------------------------------------


def test_task_open_refusals_are_audited_and_the_twin_is_opened(tapi: TaskApi) -> None:
    agent = tapi.attest()
    body = {"playbook": PLAYBOOK["name"], "intent": INTENT}
    proof = make_proof(agent.key, method="POST", url=TASKS_URL, access_token=agent.svid)
    garbage = {"Authorization": "DPoP not.a.token", "DPoP": proof}
    headers = dpop(agent.key, agent.svid, "POST", TASKS_URL)
    replies = [
        tapi.client.post("/v1/tasks", json=body),  # no credentials
        tapi.client.post("/v1/tasks", json=body, headers=garbage),  # not an SVID
        tapi.client.post(
            "/v1/tasks", content=b"{", headers={**headers, "Content-Type": "application/json"}
        ),  # refused before the route: malformed JSON
    ]
    twin = tapi.client.post("/v1/tasks", json=body, headers=headers)  # the twin
    assert twin.status_code == 201, twin.text
    replies.append(tapi.client.post("/v1/tasks", json=body, headers=headers))  # its proof again
    assert [r.status_code for r in replies] == [401, 401, 400, 401]
    refused = events(tapi.deployment, KIND)
    assert [e["reason"] for e in refused] == [reason_of(r) for r in replies]
    assert refused[-1]["reason"] == "dpop.replayed"
    for event, reply in zip(refused, replies, strict=True):
        assert event["outcome"] == "denied"
        assert event["actor"] == {"type": "workload", "id": "unauthenticated"}
        assert event["subject"] == "unknown"
        details = event["details"]
        assert (details["listener"], details["method"], details["path"]) == (
            "token",
            "POST",
            "/v1/tasks",
        )
        assert (details["client"], details["status"]) == ("testclient", reply.status_code)
    assert_no_secret(tapi.deployment, agent.svid, proof, headers["DPoP"])
    [opened_event] = events(tapi.deployment, "task.opened")
    assert opened_event["subject"] == twin.json()["task_id"]


def test_a_refusal_the_core_audits_is_not_recorded_twice(tapi: TaskApi) -> None:
    agent = tapi.attest()
    reply = tapi.open(agent, {"playbook": "no-such-playbook", "intent": "x"})
    assert reply.status_code == 404, reply.text
    [denied] = events(tapi.deployment, "task.open")
    assert (denied["reason"], denied["actor"]["id"]) == (reason_of(reply), AGENT)
    assert events(tapi.deployment, KIND) == []


# ---- POST /v1/token ----------------------------------------------------------------------


def test_exchange_refusals_are_audited_with_what_verified(tapi: TaskApi) -> None:
    holder, helper = tapi.attest(), tapi.attest(OTHER_AGENT)
    parent = opened(tapi, holder, max_calls=10)
    form = delegation(parent, helper)
    thief = ec.generate_private_key(ec.SECP256R1())

    def proof_by(key: ec.EllipticCurvePrivateKey) -> str:
        return make_proof(key, method="POST", url=EXCHANGE_URL, access_token=parent.token)

    good = proof_by(holder.key)
    replies = [
        tapi.client.post("/v1/token", json=form),  # not a form
        post_token(tapi, {**form, "grant_type": "password"}, proof=proof_by(holder.key)),
        post_token(tapi, {**form, "subject_token": "e30.e30.sig"}, proof=proof_by(holder.key)),
        post_token(tapi, form, proof=proof_by(thief)),  # a stolen parent token
    ]
    twin = post_token(tapi, form, proof=good)
    assert twin.status_code == 200, twin.text
    replies.append(post_token(tapi, form, proof=good))  # the twin's proof again
    assert [r.status_code for r in replies] == [400, 400, 401, 401, 401]
    refused = events(tapi.deployment, KIND)
    assert [e["reason"] for e in refused] == [reason_of(r) for r in replies]
    assert [e["reason"] for e in refused][-2:] == ["dpop.key_mismatch", "dpop.replayed"]
    assert "subject_token_type" not in refused[0]["details"]  # nothing was parsed
    assert refused[2]["details"]["subject_token_type"] == form["subject_token_type"]
    assert refused[2]["subject"] == "unknown"  # the token did not verify
    stolen = refused[3]  # it did: its task, workload, token id and both keys are named
    assert (stolen["subject"], stolen["actor"]["id"]) == (parent.task_id, AGENT)
    details = stolen["details"]
    assert details["task_id"] == parent.task_id
    assert details["token_id"]
    assert details["expected_jkt"] != details["proof_jkt"]
    assert refused[4]["details"]["proof_jkt"] == refused[4]["details"]["expected_jkt"]
    assert {e["details"]["path"] for e in refused} == {"/v1/token"}
    assert_no_secret(tapi.deployment, parent.token, helper.svid, good)
    # the twin's success, and a refusal of the authenticated holder: the core's events
    granted = events(tapi.deployment, "task.delegate")
    assert [e["outcome"] for e in granted] == ["success"]
    wider = post_token(tapi, {**form, "max_calls": "99"}, proof=proof_by(holder.key))
    assert wider.status_code == 403, wider.text
    assert [e["reason"] for e in events(tapi.deployment, "task.delegate")][1:] == [reason_of(wider)]
    assert len(events(tapi.deployment, KIND)) == len(replies)  # not recorded twice


def test_the_export_and_the_replay_detector_read_them(tapi: TaskApi) -> None:
    holder, helper = tapi.attest(), tapi.attest(OTHER_AGENT)
    parent = opened(tapi, holder, max_calls=10)
    form = delegation(parent, helper)
    proof = make_proof(holder.key, method="POST", url=EXCHANGE_URL, access_token=parent.token)
    assert post_token(tapi, form, proof=proof).status_code == 200
    assert reason_of(post_token(tapi, form, proof=proof)) == "dpop.replayed"
    [record] = [r for r in records(tapi.deployment) if r.kind == KIND]
    ocsf = to_ocsf(record)
    assert problems(ocsf) == []
    assert (ocsf["class_uid"], ocsf["activity_id"]) == (3002, 3)
    assert ocsf["status_detail"] == "dpop.replayed"
    assert ocsf["actor"]["session"]["uid"] == parent.task_id
    assert ocsf["session"]["credential_uid"] == json.loads(record.body)["details"]["token_id"]
    assert ocsf["http_request"] == {"http_method": "POST", "url": {"path": "/v1/token"}}
    detector = ReplayDetector(ReplaySettings())
    found = [d for r in records(tapi.deployment) for d in detector.observe(Seen.of(r))]
    [detection] = found
    assert detection.task_id == parent.task_id
    assert [e.event_id for e in detection.evidence] == [record.event_id]


def test_a_flood_writes_a_burst_then_counts_what_it_does_not_write(
    tapi: TaskApi, clock: HeldClock
) -> None:
    holder, helper = tapi.attest(), tapi.attest(OTHER_AGENT)
    parent = opened(tapi, holder, max_calls=10)
    form = {**delegation(parent, helper), "subject_token": "e30.e30.sig"}
    before = tapi.deployment.refusals.suppressed
    clock.held = time.time()
    for _ in range(BURST + 15):
        assert post_token(tapi, form).status_code == 401
    assert len(events(tapi.deployment, KIND)) == BURST
    assert tapi.deployment.refusals.suppressed == before + 15
    clock.held += 1.0  # one more event's worth: it carries the count
    assert post_token(tapi, form).status_code == 401
    refused = events(tapi.deployment, KIND)
    assert len(refused) == BURST + 1
    assert [e["details"]["suppressed"] for e in refused[-2:]] == [0, 15]
    # the legitimate twin still goes through, audited as a success
    clock.held = None
    good = make_proof(holder.key, method="POST", url=EXCHANGE_URL, access_token=parent.token)
    twin = post_token(tapi, delegation(parent, helper), proof=good)
    assert twin.status_code == 200, twin.text
    assert [e["outcome"] for e in events(tapi.deployment, "task.delegate")] == ["success"]


def test_a_long_client_id_is_bounded_and_a_bug_never_reaches_the_request(
    tapi: TaskApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope: dict[str, Any] = {"method": "POST", "path": "/oauth/token", "client": ("10.0.0.9", 1)}
    token_refused(tapi.deployment, scope, reason="oauth.client", status=401, client_id="c" * 1000)
    [event] = events(tapi.deployment, KIND)
    assert event["details"]["client_id"] == "c" * MAX_TEXT + "..."
    assert event["details"]["client"] == "10.0.0.9"
    [record] = [r for r in records(tapi.deployment) if r.kind == KIND]
    ocsf = to_ocsf(record)  # the address is the source; no token verified: no session
    assert problems(ocsf) == []
    assert ocsf["src_endpoint"] == {"ip": "10.0.0.9"}
    assert "session" not in ocsf
    assert ocsf["user"]["uid"] == "unauthenticated"
    assert ocsf["unmapped"]["client_id"] == event["details"]["client_id"]

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(tapi.deployment.audit, "event", broken)
    token_refused(tapi.deployment, scope, reason="oauth.client", status=401)  # no raise


# ---- POST /oauth/token -------------------------------------------------------------------


def _code_form(client_id: str, code: str, verifier: str, **change: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "resource": RESOURCE,
    } | change


def test_oauth_token_refusals_are_audited_and_the_twin_is_issued(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    key, thief = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    form = _code_form(client_id, code, verifier)
    replies = [  # none of these uses the code up
        flow.client.post("/oauth/token", json=form),  # not a form
        flow.token(form | {"client_id": "nobody"}, key),
        flow.token(form),  # no proof
        flow.token(form | {"grant_type": "password"}, key),
    ]
    twin = flow.token(form, key)
    assert twin.status_code == 200, twin.text
    refresh = {"grant_type": "refresh_token", "client_id": client_id}
    refresh_token = twin.json()["refresh_token"]
    replies.append(flow.token(refresh | {"refresh_token": refresh_token}, thief))
    renewed = flow.token(refresh | {"refresh_token": refresh_token}, key)  # its twin
    assert renewed.status_code == 200, renewed.text
    replies.append(flow.token(form, key))  # the code again: what it gave is revoked
    other, _ = flow.code(client_id)
    replies.append(flow.token(_code_form(client_id, other, "x" * 43), key))  # PKCE
    assert [r.status_code for r in replies] == [400, 401, 400, 400, 400, 400, 400]
    refused = events(flow.deployment, KIND)
    assert [e["reason"] for e in refused] == [reason_of(r) for r in replies]
    assert [e["reason"] for e in refused][-3:] == ["dpop.key", "oauth.code_reused", "oauth.pkce"]
    assert "client_id" not in refused[0]["details"]  # no form was read
    assert refused[1]["details"]["client_id"] == "nobody"
    assert {e["details"]["client_id"] for e in refused[2:]} == {client_id}
    assert refused[3]["details"]["grant_type"] == "password"
    assert refused[4]["details"]["grant_type"] == "refresh_token"
    assert {(e["details"]["listener"], e["details"]["path"]) for e in refused} == {
        ("token", "/oauth/token")
    }
    assert_no_secret(
        flow.deployment,
        code,
        verifier,
        refresh_token,
        *(r.json()["access_token"] for r in (twin, renewed)),
    )
    # the twins' successes: the task opened, its token renewed
    assert [e["outcome"] for e in events(flow.deployment, "task.opened")] == ["success"]
    assert [e["outcome"] for e in events(flow.deployment, "task.token_renewed")] == ["success"]


def test_oauth_refusals_audited_elsewhere_are_not_recorded_twice(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    key = ec.generate_private_key(ec.SECP256R1())
    first = flow.token(_code_form(client_id, code, verifier), key).json()
    refresh = {"grant_type": "refresh_token", "client_id": client_id}
    second = flow.token(refresh | {"refresh_token": first["refresh_token"]}, key)
    assert second.status_code == 200, second.text
    reused = flow.token(refresh | {"refresh_token": first["refresh_token"]}, key)
    assert reason_of(reused) == "oauth.refresh_reused"
    assert [e["reason"] for e in events(flow.deployment, "oauth.refresh_reused")] == [
        "oauth.refresh_reused"
    ]
    document = flow.token({"client_id": "https://10.0.0.1/client.json"}, key)
    assert reason_of(document) == "oauth.client_metadata_address"
    assert events(flow.deployment, KIND) == []
