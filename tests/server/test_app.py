"""The control-plane API: happy paths, and every bad input a 4xx with a reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.gateway.access_lines import access_lines
from tests.server.conftest import AGENT, Api
from tests.server.task_fixtures import FINANCE, READ, TaskApi
from zerolane.tokens.rfc9449 import make_proof


def test_attest_with_join_token(api: Api) -> None:
    reply = api.client.post("/v1/attest", json={"join_token": api.join_token(), "ttl": 60})
    assert reply.status_code == 200
    body = reply.json()
    assert body["spiffe_id"] == AGENT
    assert body["expires_in"] == 60
    assert body["audience"] == ["spiffe://example.org"]
    assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ('{"join_token": ', 400, "request.malformed_json"),
        ("[1, 2]", 400, "request.invalid"),
        ('{"join_token": 5}', 400, "request.invalid"),
        ('{"join_token": "zljt_x", "surprise": 1}', 400, "request.unknown_field"),
        ('{"join_token": "zljt_x", "ttl": "60"}', 400, "request.invalid"),
        ('{"join_token": "zljt_x", "ttl": -1}', 400, "request.invalid"),
        ('{"join_token": "zljt_x", "public_jwk": "abc"}', 400, "request.invalid"),
        ("{}", 400, "attest.evidence"),
        ('{"join_token": "zljt_unknown"}', 401, "join_token.unknown"),
        ('{"join_token": "nope"}', 401, "join_token.malformed"),
    ],
)
def test_bad_attest_input_is_a_4xx_with_a_reason(
    api: Api, body: str, status: int, reason: str
) -> None:
    reply = api.client.post(
        "/v1/attest", content=body, headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == status, reply.text
    assert reply.json()["reason"] == reason
    # and the legitimate twin still goes through
    assert api.client.post("/v1/attest", json={"join_token": api.join_token()}).status_code == 200


def test_bodies_over_64_kib_are_refused(api: Api) -> None:
    big = json.dumps({"join_token": "zljt_" + "a" * 70_000})
    reply = api.client.post("/v1/attest", content=big, headers={"Content-Type": "application/json"})
    assert reply.status_code == 413
    assert reply.json()["reason"] == "request.too_large"
    assert api.client.post("/v1/attest", json={"join_token": api.join_token()}).status_code == 200


def test_chunked_body_over_the_limit_is_refused(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"join_token": "zljt_'
        for _ in range(80):
            yield b"a" * 1024
        yield b'"}'

    reply = api.client.post(
        "/v1/attest", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 413


def test_public_jwk_with_private_member_is_refused(api: Api) -> None:
    jwk = {"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "secret"}
    reply = api.client.post("/v1/attest", json={"join_token": api.join_token(), "public_jwk": jwk})
    assert reply.status_code == 400
    assert reply.json()["reason"] == "public_jwk.private_member"


def test_key_sets_publish_only_public_members(api: Api) -> None:
    jwks = api.client.get("/.well-known/jwks.json").json()
    bundle = api.client.get("/.well-known/spiffe-bundle").json()
    for key in jwks["keys"] + bundle["keys"]:
        assert set(key) <= {"kty", "crv", "x", "y", "kid", "alg", "use", "x5c"}
    assert {k["use"] for k in bundle["keys"]} == {"jwt-svid", "x509-svid"}  # + the X.509 CA
    assert bundle["spiffe_sequence"] == 1


def test_rotation_keeps_the_old_key_published(api: Api) -> None:
    old = api.client.get("/.well-known/jwks.json").json()["keys"][0]["kid"]
    new = api.client.post("/v1/admin/keys/rotate", headers=api.auth).json()["kid"]
    kids = [k["kid"] for k in api.client.get("/.well-known/jwks.json").json()["keys"]]
    assert old in kids
    assert new in kids
    assert api.client.get("/.well-known/spiffe-bundle").json()["spiffe_sequence"] == 2


@pytest.mark.parametrize(
    "header", [None, "Bearer zla_wrong", "Bearer ", "Basic abc", "zla_nobearer"]
)
def test_admin_endpoints_need_the_admin_credential(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    reply = api.client.get("/v1/admin/workloads", headers=headers)
    assert reply.status_code == 401
    assert reply.json()["reason"] == "admin.credential"
    assert "WWW-Authenticate" in reply.headers
    assert api.client.get("/v1/admin/workloads", headers=api.auth).status_code == 200


def test_admin_registers_disables_and_mints(api: Api) -> None:
    new = "spiffe://example.org/jobs/nightly"
    reply = api.client.post(
        "/v1/admin/workloads",
        json={"spiffe_id": new, "selectors": ["k8s:ns:batch"], "owner": "ops"},
        headers=api.auth,
    )
    assert reply.status_code == 201
    assert reply.json()["selectors"] == ["k8s:ns:batch"]
    shown = api.client.get("/v1/admin/workload", params={"spiffe_id": new}, headers=api.auth)
    assert shown.json()["status"] == "enabled"
    minted = api.client.post(
        "/v1/admin/join-tokens", json={"spiffe_id": new, "ttl": 60}, headers=api.auth
    )
    assert minted.status_code == 201
    token = minted.json()["join_token"]
    api.client.post("/v1/admin/workloads/disable", json={"spiffe_id": new}, headers=api.auth)
    refused = api.client.post("/v1/attest", json={"join_token": token})
    assert refused.status_code == 403
    assert refused.json()["reason"] == "workload.disabled"


def test_admin_register_refuses_bad_ids_with_the_rule(api: Api) -> None:
    reply = api.client.post(
        "/v1/admin/workloads", json={"spiffe_id": "spiffe://example.org/a/"}, headers=api.auth
    )
    assert reply.status_code == 400
    assert reply.json()["reason"] == "spiffe_id.trailing_slash"
    dup = api.client.post("/v1/admin/workloads", json={"spiffe_id": AGENT}, headers=api.auth)
    assert dup.status_code == 409
    assert dup.json()["reason"] == "workload.exists"


def test_unknown_routes_and_methods_have_reasons(api: Api) -> None:
    assert api.client.get("/nope").json()["reason"] == "request.not_found"
    reply = api.client.get("/v1/attest")
    assert reply.status_code == 405
    assert reply.json()["reason"] == "request.method_not_allowed"


def test_audit_failure_fails_closed(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    token = api.join_token()

    def broken(*_: object, **__: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(api.deployment.stores, "append_events", broken)
    reply = api.client.post("/v1/attest", json={"join_token": token})
    assert reply.status_code == 503
    assert reply.json()["reason"] == "audit.write"
    assert "svid" not in reply.json()


def test_ops_endpoints(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").status_code == 200
    api.client.post("/v1/attest", json={"join_token": api.join_token()})
    metrics = api.client.get("/metrics").text
    assert 'zerolane_attestations_total{outcome="success",reason="ok"} 1.0' in metrics
    spec = api.client.get("/openapi.json").json()
    assert "/v1/attest" in spec["paths"]


def test_audit_endpoint_lists_masked_events(api: Api) -> None:
    token = api.join_token()
    api.client.post("/v1/attest", json={"join_token": token})
    events = api.client.get("/v1/admin/audit", headers=api.auth).json()["events"]
    assert [e["kind"] for e in events][-2:] == ["attestation", "svid.issued"]
    assert token not in json.dumps(events)


@pytest.mark.parametrize(
    "params",
    [
        {"after": str(2**63)},  # one past SQLite's largest integer
        {"after": str(10**40)},
        {"after": "-1"},
        {"after": "1.5"},
        {"limit": str(2**63)},
        {"limit": "0"},
        {"limit": "-5"},
    ],
)
def test_audit_query_out_of_range_is_a_400(api: Api, params: dict[str, str]) -> None:
    reply = api.client.get("/v1/admin/audit", params=params, headers=api.auth)
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["reason"] == "request.invalid"
    assert (body["error"], body["message"]) == ("invalid_request", "the request is invalid")
    assert [d["field"] for d in body["details"]] == list(params)


def test_audit_query_at_the_edges_of_the_range_is_answered(api: Api) -> None:
    api.client.post("/v1/attest", json={"join_token": api.join_token()})
    for after, limit in ((str(2**63 - 1), "1000"), ("0", "1")):
        reply = api.client.get(
            "/v1/admin/audit", params={"after": after, "limit": limit}, headers=api.auth
        )
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["events"]) == (0 if after != "0" else 1)


def test_access_lines_for_decide_allow_deny_and_errors(api: Api) -> None:
    tapi = TaskApi(api)
    task = tapi.opened()
    url = f"{FINANCE}/reports/q3"
    with access_lines() as lines:
        proof = make_proof(task.holder.key, method="GET", url=url, access_token=task.token)
        body: dict[str, Any] = {
            "token": task.token,
            "dpop": proof,
            "request": {"method": "GET", "url": url, **READ},
        }
        allowed = tapi.client.post("/v1/decide?point=secret-q", json=body, headers=tapi.point)
        assert allowed.json()["decision"] == "allow"
        # the twin: the same task, an action outside its scope
        proof2 = make_proof(task.holder.key, method="GET", url=url, access_token=task.token)
        other = {**body, "dpop": proof2, "request": {**body["request"], "action": "delete"}}
        denied = tapi.client.post("/v1/decide", json=other, headers=tapi.point)
        assert denied.json()["decision"] == "deny"
        unknown = tapi.client.post("/v1/decide", json=body)  # no enforcement point
        assert unknown.status_code == 401
        assert tapi.client.get("/nowhere").status_code == 404
    allow, deny, refused, missing = lines.fields()
    assert {k: allow[k] for k in ("listener", "method", "path", "status", "decision")} == {
        "listener": "api",
        "method": "POST",
        "path": "/v1/decide",
        "status": 200,
        "decision": "allow",
    }
    assert (allow["task"], allow["reason"]) == (task.task_id, None)
    assert (deny["status"], deny["decision"], deny["task"], deny["reason"]) == (
        200,
        "deny",
        task.task_id,
        denied.json()["reasons"][0],
    )
    assert (refused["status"], refused["decision"], refused["reason"]) == (
        401,
        "none",
        "enforcement_point.credential",
    )
    assert (missing["status"], missing["reason"]) == (404, "request.not_found")
    credential = tapi.point["Authorization"].split()[-1]
    for line in lines.rendered():
        assert not any(s in line for s in (task.token, proof, proof2, credential, "secret-q"))


def test_an_oversized_body_has_its_reason_in_the_access_line(api: Api) -> None:
    with access_lines() as lines:
        big = api.client.post("/v1/attest", content=b"x" * (64 * 1024 + 1))
        assert big.status_code == 413
        small = api.client.post("/v1/attest", json={"join_token": api.join_token()})
        assert small.status_code == 200  # the twin
    refused, attested = lines.fields()
    assert (refused["status"], refused["reason"]) == (413, "request.too_large")
    assert (attested["status"], attested["reason"]) == (200, None)
