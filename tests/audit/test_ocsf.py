"""Audit events as OCSF 1.4: every kind maps to its class with what the class requires.

``REQUIRED`` below is taken from the OCSF 1.4.0 schema (schema.ocsf.io, the ocsf-schema
repository's ``events/`` and ``objects/``): the attributes each class requires, with its
parent's (``base_event``: activity_id, category_uid, class_uid, metadata, severity_id,
time, type_uid), its constraints (Authentication: at least one of service and
dst_endpoint; Authorize Session: just one of privileges and group) and the activities
it defines. Every kind's sample, the events of the real code paths, and the variants of
a decision are checked against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.audit.test_masking import JWT, is_masked
from tests.tasks.conftest import ADMIN, AGENT, PEER, World, build_world
from zerolane.audit.chain import seal
from zerolane.audit.events import SYSTEM, Actor, Event
from zerolane.audit.ocsf import (
    FALLBACK,
    OCSF_VERSION,
    RULES,
    epoch_ms,
    rule_of,
    to_ocsf,
)
from zerolane.audit.schema import EVENT_FIELDS
from zerolane.store.ports import GENESIS_HASH
from zerolane.store.records import AuditRecord
from zerolane.types import Outcome

NOW = 1_800_000_000.0
BASE = ("activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time", "type_uid")
#: class_uid -> (required attributes, at least one of, just one of, its activity ids)
REQUIRED: dict[int, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], set[int]]] = {
    0: ((), (), (), {0, 99}),  # Base Event
    2004: (("finding_info",), (), (), {0, 1, 2, 3, 99}),  # Detection Finding
    3001: (("user",), (), (), {0, *range(1, 13), 99}),  # Account Change
    3002: (("user",), ("service", "dst_endpoint"), (), {0, *range(1, 7), 99}),  # Authentication
    3003: (("user",), (), ("privileges", "group"), {0, 1, 2, 99}),  # Authorize Session
    3004: (("entity",), (), (), {0, *range(1, 14), 99}),  # Entity Management
    6003: (("actor", "api", "src_endpoint"), (), (), {0, 1, 2, 3, 4, 99}),  # API Activity
}


def names(text: str) -> set[str]:
    return set(text.split())


#: the attributes each class has in OCSF 1.4 (besides the base event's): an event holds
#: no other at its top level (Detection Finding and Base Event have no ``actor``)
BASE_ATTRIBUTES = names(
    "activity_id activity_name category_name category_uid class_name class_uid count duration"
    " end_time enrichments message metadata observables raw_data severity severity_id"
    " start_time status status_code status_detail status_id time timezone_offset type_name"
    " type_uid unmapped"
)
SECURITY_CONTROL = names(  # the profile's attributes (metadata.profiles)
    "action action_id attacks authorizations confidence confidence_id confidence_score"
    " disposition disposition_id firewall_rule is_alert malware policy risk_details risk_level"
    " risk_level_id risk_score"
)
IAM = names("actor http_request http_response src_endpoint")
ATTRIBUTES: dict[int, set[str]] = {
    0: set(),
    2004: names(
        "comment confidence confidence_id confidence_score device finding_info vendor_attributes"
        " evidences impact impact_id impact_score is_alert remediation resources risk_details"
        " risk_level risk_level_id risk_score vulnerabilities"
    ),
    3001: IAM | names("policies policy user user_result"),
    3002: IAM
    | names(
        "auth_factors auth_protocol auth_protocol_id certificate dst_endpoint is_cleartext"
        " is_mfa is_new_logon is_remote logon_process logon_type logon_type_id service session"
        " user"
    ),
    3003: IAM | names("dst_endpoint group privileges session user"),
    3004: IAM | names("access_list access_mask comment entity entity_result"),
    6003: names("actor api dst_endpoint http_request http_response resources src_endpoint"),
}
SEVERITY_IDS = {0, 1, 2, 3, 4, 5, 6, 99}
STATUS_IDS = {0, 1, 2, 99}
FINDING_STATUS_IDS = {0, 1, 2, 3, 4, 5, 99}
#: objects' requirements: a member each needs, or one of several
USER_ONE_OF = ("account", "name", "uid")
ACTOR_ONE_OF = ("process", "user", "invoked_by", "session", "app_name", "app_uid")
ENDPOINT_ONE_OF = ("ip", "uid", "name", "hostname", "svc_name", "instance_uid", "domain")


def record_of(event: Event, seq: int = 1, prev: str = GENESIS_HASH) -> AuditRecord:
    return seal(event.unsealed(), seq, prev)


def event(
    kind: str,
    details: Mapping[str, object] | None = None,
    *,
    actor: Actor = Actor("workload", AGENT),
    subject: str = "tsk_sample",
    outcome: Outcome = Outcome.SUCCESS,
) -> Event:
    reason = "ok" if outcome is Outcome.SUCCESS else "sample.refused"
    return Event(kind, actor, subject, outcome, reason, NOW, dict(details or {}))


def sample_details(kind: str) -> dict[str, object]:
    """A value for each member ``kind`` declares (clear ones plausible, all strings)."""
    values: dict[str, object] = {
        "scope": json.dumps({"actions": ["read", "write"], "resources": ["wiki/**"]}),
        "expires_at": NOW + 300,
        "exp": int(NOW) + 300,
        "evidence": [{"seq": 3, "event_id": "e" * 32}],
        "severity": "high",
        "detector": "replay",
        "requested": {"authorization_details": [{"type": "task", "actions": ["read"]}]},
        "version": 3,
        "policies": ["task.request"],
        "decision": "allow",
        "method": "GET",
        "url": "https://wiki.example.org/wiki/page",
        "read_only": True,
        "destructive": False,
    }
    fields = EVENT_FIELDS.get(kind)
    if fields is None:  # mapped ahead of its declaration: the sample values themselves
        return dict(values)
    declared = {p.split(".")[1] for p in fields.clear | fields.free}
    return {name: values.get(name, f"{name}-value") for name in sorted(declared)}


def all_samples() -> Iterator[tuple[str, AuditRecord]]:
    for n, kind in enumerate(sorted(set(EVENT_FIELDS) | set(RULES)), start=1):
        for outcome in (Outcome.SUCCESS, Outcome.DENIED):
            yield kind, record_of(event(kind, sample_details(kind), outcome=outcome), n)


def check_required(ocsf: dict[str, Any], record: AuditRecord) -> None:
    """What OCSF 1.4 requires of ``ocsf``'s class, and consistent ids."""
    cls = ocsf["class_uid"]
    required, one_of, just_one, activities = REQUIRED[cls]
    for name in (*BASE, *required):
        assert name in ocsf, (record.kind, name)
    profiles = ocsf["metadata"].get("profiles", [])
    allowed = BASE_ATTRIBUTES | ATTRIBUTES[cls]
    allowed |= SECURITY_CONTROL if "security_control" in profiles else set()
    assert set(ocsf) - allowed == set(), (record.kind, "not attributes of the class")
    if one_of:
        assert any(name in ocsf for name in one_of), (record.kind, one_of)
    if just_one:
        assert sum(name in ocsf for name in just_one) == 1, (record.kind, just_one)
    assert ocsf["activity_id"] in activities, record.kind
    assert ocsf["type_uid"] == cls * 100 + ocsf["activity_id"]
    assert ocsf["category_uid"] == cls // 1000
    assert ocsf["severity_id"] in SEVERITY_IDS
    statuses = FINDING_STATUS_IDS if cls == 2004 else STATUS_IDS
    assert ocsf.get("status_id", 0) in statuses
    assert isinstance(ocsf["time"], int)
    assert ocsf["time"] == epoch_ms(record.time)
    metadata = ocsf["metadata"]
    assert metadata["version"] == OCSF_VERSION
    assert metadata["version"].startswith("1.")
    assert metadata["product"]["name"] == "zerolane"
    assert metadata["product"]["vendor_name"]
    assert metadata["uid"] == record.event_id
    assert metadata["sequence"] == record.seq
    assert metadata["event_code"] == record.kind
    if cls in (0, 2004):  # no actor in these classes: it is in unmapped
        assert "actor" not in ocsf
        assert ocsf["unmapped"]["actor_id"]
    else:
        assert any(name in ocsf["actor"] for name in ACTOR_ONE_OF)
    for user in [ocsf.get("user"), ocsf.get("actor", {}).get("user")]:
        assert user is None or any(user.get(n) for n in USER_ONE_OF), record.kind
    for endpoint in [ocsf.get("src_endpoint"), ocsf.get("dst_endpoint")]:
        assert endpoint is None or any(endpoint.get(n) for n in ENDPOINT_ONE_OF)
    if cls == 6003:
        assert ocsf["api"]["operation"]
        assert "request" not in ocsf["api"] or ocsf["api"]["request"]["uid"]
    if cls == 3004:
        assert ocsf["entity"].get("uid") or ocsf["entity"].get("name")
    if cls == 2004:
        assert ocsf["finding_info"]["uid"]
        assert ocsf["finding_info"]["analytic"]["type_id"] in {0, 1, 2, 3, 99}
    assert ocsf["unmapped"]["hash"] == record.hash
    assert ocsf["unmapped"]["prev_hash"] == json.loads(record.body)["prev_hash"]
    json.dumps(ocsf, allow_nan=False)  # plain JSON


# ---- the table --------------------------------------------------------------------------


def test_every_declared_kind_has_its_own_mapping() -> None:
    """A new kind of event must be mapped on purpose (or it exports as a Base Event):
    add its row to ``zerolane.audit.ocsf.RULES`` and to docs/audit-export.md."""
    assert set(EVENT_FIELDS) - set(RULES) == set()


@pytest.mark.parametrize(("kind", "record"), list(all_samples()))
def test_every_kind_maps_to_a_class_with_its_required_attributes(
    kind: str, record: AuditRecord
) -> None:
    ocsf = to_ocsf(record)
    assert ocsf["class_uid"] == RULES[kind].cls.uid
    assert ocsf["class_uid"] != 0  # none of them falls back
    check_required(ocsf, record)
    success = record.outcome == "success"
    status = (1, "Success") if success else (2, "Failure")
    findings = {"detection": (1, "New"), "response": (2, "In Progress")}  # a finding's status
    assert (ocsf["status_id"], ocsf["status"]) == findings.get(kind, status)
    assert ocsf["status_detail"] == json.loads(record.body)["reason"]


def test_the_classes_fit_the_kinds() -> None:
    classes = {kind: rule.cls.uid for kind, rule in RULES.items()}
    assert classes["decision"] == 6003
    assert {classes[k] for k in ("attestation", "svid.issued", "mcp.refused")} == {3002}
    assert {classes[k] for k in ("task.opened", "task.delegate", "grant.issue")} == {3003}
    assert classes["detection"] == classes["response"] == 2004
    assert classes["gateway.refused"] == 6003
    assert {classes[f"workload.{s}"] for s in ("registered", "enabled", "disabled")} == {3001}
    assert {classes[f"task.{s}"] for s in ("revoked", "suspended", "resumed")} == {3004}


def test_a_kind_not_in_the_table_is_a_base_event_named_after_it() -> None:
    record = record_of(event("future.kind", {"n": 1}))
    ocsf = to_ocsf(record)
    assert rule_of("future.kind") is FALLBACK
    assert (ocsf["class_uid"], ocsf["activity_id"], ocsf["type_uid"]) == (0, 99, 99)
    assert ocsf["activity_name"] == "future.kind"
    assert ocsf["unmapped"]["n"] == 1
    check_required(ocsf, record)


def test_times_are_milliseconds_since_the_epoch() -> None:
    assert epoch_ms("1970-01-01T00:00:01.234Z") == 1234
    assert epoch_ms("2027-01-15T08:00:00.000Z") == 1_800_000_000_000
    assert epoch_ms("2027-01-15T08:00:00.000") == 1_800_000_000_000  # naive: UTC
    with pytest.raises(ValueError, match="yesterday"):
        epoch_ms("yesterday")


# ---- decisions ---------------------------------------------------------------------------


def decision(details: Mapping[str, object], **kwargs: Any) -> dict[str, Any]:
    record = record_of(event("decision", details, **kwargs))
    ocsf = to_ocsf(record)
    check_required(ocsf, record)
    return ocsf


def test_an_allowed_request_is_api_activity_allowed_with_its_policies() -> None:
    ocsf = decision(
        {
            "decision_id": "d1",
            "decision": "allow",
            "reasons": [],
            "policies": ["task.request", "default.read"],
            "method": "GET",
            "url": "https://finance.example.org/finance/q3",
            "action": "read",
            "resource": "finance/q3",
            "destination": "finance.example.org",
            "sensitivity": "internal",
        }
    )
    assert (ocsf["activity_id"], ocsf["activity_name"]) == (2, "Read")
    assert (ocsf["disposition_id"], ocsf["action_id"], ocsf["status_id"]) == (1, 1, 1)
    assert ocsf["metadata"]["profiles"] == ["security_control"]
    assert ocsf["api"] == {"operation": "read", "request": {"uid": "d1"}}
    assert ocsf["actor"] == {
        "user": {"uid": AGENT, "name": AGENT, "type_id": 99, "type": "Workload"},
        "session": {"uid": "tsk_sample"},
    }
    assert ocsf["src_endpoint"] == {"svc_name": AGENT}
    assert ocsf["dst_endpoint"] == {"hostname": "finance.example.org"}
    assert ocsf["http_request"]["url"] == {
        "url_string": "https://finance.example.org/finance/q3",
        "scheme": "https",
        "hostname": "finance.example.org",
        "path": "/finance/q3",
    }
    assert ocsf["resources"] == [{"uid": "finance/q3", "name": "finance/q3"}]
    assert [a["policy"]["uid"] for a in ocsf["authorizations"]] == [
        "task.request",
        "default.read",
    ]
    assert ocsf["unmapped"]["sensitivity"] == "internal"  # kept, under its own name
    assert "action" not in ocsf["unmapped"]  # mapped, not repeated


def test_a_refusal_before_any_decision_is_api_activity_blocked() -> None:
    ocsf = decision(
        {
            "decision_id": "d2",
            "decision": "deny",
            "reasons": ["route.unmapped"],
            "policies": [],
            "method": "BREW",
            "url": "https://x.example.org/",
            "enforcement_point": "forward-auth",
        },
        actor=Actor("workload", "unauthenticated"),
        subject="unknown",
        outcome=Outcome.DENIED,
    )
    assert (ocsf["disposition_id"], ocsf["disposition"]) == (2, "Blocked")
    assert (ocsf["action_id"], ocsf["status_id"], ocsf["severity_id"]) == (2, 2, 2)
    assert (ocsf["activity_id"], ocsf["activity_name"]) == (99, "Other")
    assert ocsf["api"]["operation"] == "BREW"
    assert ocsf["authorizations"] == [{"decision": "deny"}]
    assert "session" not in ocsf["actor"]
    assert "resources" not in ocsf
    assert ocsf["unmapped"]["reasons"] == ["route.unmapped"]


def test_a_refused_proof_names_the_task_its_verified_token_was_for() -> None:
    ocsf = decision(
        {"decision": "deny", "task_id": "tsk_seen", "token_id": "jti"},
        subject="unknown",
        outcome=Outcome.DENIED,
    )
    assert ocsf["actor"]["session"] == {"uid": "tsk_seen"}
    assert ocsf["unmapped"]["token_id"] == "jti"


@pytest.mark.parametrize(
    ("method", "activity"), [("POST", 1), ("get", 2), ("PUT", 3), ("PATCH", 3), ("DELETE", 4)]
)
def test_an_http_request_is_created_read_updated_or_deleted_by_its_method(
    method: str, activity: int
) -> None:
    assert decision({"decision": "allow", "method": method})["activity_id"] == activity


@pytest.mark.parametrize(
    ("read_only", "destructive", "activity"),
    [(True, False, 2), (False, True, 4), (False, False, 99)],
)
def test_an_mcp_tool_call_is_read_deleted_or_other_by_its_annotations(
    read_only: bool, destructive: bool, activity: int
) -> None:
    ocsf = decision(
        {
            "decision": "allow",
            "method": "POST",
            "tool": "files.read",
            "server": "files",
            "read_only": read_only,
            "destructive": destructive,
        }
    )
    assert ocsf["activity_id"] == activity
    assert ocsf["api"] == {"operation": "files.read", "service": {"name": "files"}}
    assert ocsf["dst_endpoint"] == {"svc_name": "files"}


def test_a_decision_without_any_detail_still_has_what_api_activity_requires() -> None:
    ocsf = decision({})
    assert ocsf["api"] == {"operation": "unknown"}
    assert ocsf["disposition_id"] == 2  # not said to be allowed: blocked


# ---- detections --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "severity_id"),
    [("low", 2), ("medium", 3), ("high", 4), ("critical", 5), ("?", 99)],
)
def test_a_detection_is_a_finding_at_its_severity_naming_its_evidence(
    severity: str, severity_id: int
) -> None:
    evidence = [{"seq": 7, "event_id": "a" * 32}, {"seq": 9, "event_id": "b" * 32}]
    record = record_of(
        event(
            "detection",
            {
                "detector": "scope_probing",
                "severity": severity,
                "summary": "12 distinct denied actions in 60 s",
                "task_id": "tsk_x",
                "workload": AGENT,
                "evidence": [*evidence, "not an evidence"],
                "evidence_total": 2,
            },
            actor=Actor("detector", "scope_probing"),
            subject="tsk_x",
            outcome=Outcome.FAILURE,
        )
    )
    ocsf = to_ocsf(record)
    check_required(ocsf, record)
    assert (ocsf["class_uid"], ocsf["activity_id"], ocsf["type_uid"]) == (2004, 1, 200401)
    assert ocsf["severity_id"] == severity_id
    assert (ocsf["status_id"], ocsf["is_alert"]) == (1, True)  # a new finding
    info = ocsf["finding_info"]
    assert info["uid"] == record.event_id
    assert info["title"] == "12 distinct denied actions in 60 s"
    assert info["analytic"]["name"] == "scope_probing"
    assert info["related_events"] == [{"uid": "a" * 32}, {"uid": "b" * 32}]
    assert ocsf["resources"] == [
        {"uid": "tsk_x", "type": "task"},
        {"uid": AGENT, "type": "workload"},
    ]
    assert ocsf["unmapped"]["actor_id"] == "scope_probing"  # Detection Finding has no actor
    assert ocsf["unmapped"]["evidence_total"] == 2


def test_a_detection_with_no_evidence_or_summary_is_still_a_finding() -> None:
    record = record_of(event("detection", {"evidence": "?"}, outcome=Outcome.FAILURE))
    ocsf = to_ocsf(record)
    check_required(ocsf, record)
    assert ocsf["finding_info"]["title"] == "unknown detection"
    assert "related_events" not in ocsf["finding_info"]
    assert "resources" not in ocsf


def test_a_response_updates_the_finding_of_its_detection() -> None:
    detection = record_of(
        event("detection", {"detector": "replay", "severity": "high"}, outcome=Outcome.FAILURE)
    )
    record = record_of(
        event(
            "response",
            {
                "rule": "revoke-replays",
                "detection": {"seq": detection.seq, "event_id": detection.event_id},
                "detector": "replay",
                "severity": "high",
                "task_id": "tsk_x",
                "actions": {"revoke": "revoked"},
            },
            actor=Actor("system", "response"),
        ),
        seq=2,
        prev=detection.hash,
    )
    ocsf = to_ocsf(record)
    check_required(ocsf, record)
    assert (ocsf["type_uid"], ocsf["status_id"], ocsf["severity_id"]) == (200402, 2, 4)
    assert ocsf["finding_info"]["uid"] == to_ocsf(detection)["finding_info"]["uid"]
    assert ocsf["finding_info"]["title"] == "response rule revoke-replays"
    assert ocsf["unmapped"]["actions"] == {"revoke": "revoked"}
    unlinked = to_ocsf(record_of(event("response", {"detection": "?"})))
    assert unlinked["finding_info"]["uid"] == unlinked["metadata"]["uid"]


@pytest.mark.parametrize(
    ("client", "ip"), [("192.0.2.7", "192.0.2.7"), ("2001:db8::1", "2001:db8::1"), ("x:1", None)]
)
def test_a_gateway_refusal_is_api_activity_blocked_from_the_client(
    client: str, ip: str | None
) -> None:
    details = {"listener": "http", "method": "GET", "path": "/admin", "client": client}
    record = record_of(
        event(
            "gateway.refused",
            details,
            actor=Actor("workload", "unauthenticated"),
            subject="unknown",
            outcome=Outcome.DENIED,
        )
    )
    ocsf = to_ocsf(record)
    check_required(ocsf, record)
    assert (ocsf["class_uid"], ocsf["activity_id"], ocsf["disposition_id"]) == (6003, 2, 2)
    assert ocsf["http_request"] == {"http_method": "GET", "url": {"path": "/admin"}}
    assert ocsf["dst_endpoint"] == {"svc_name": "http"}
    assert ocsf["src_endpoint"].get("ip") == ip
    assert ocsf["unmapped"]["client"] == client


def test_an_approval_is_an_entity_created_then_updated() -> None:
    requested = to_ocsf(record_of(event("approval.requested", {"approval_id": "apr_1"})))
    granted = to_ocsf(record_of(event("approval.granted", {"approval_id": "apr_1"})))
    assert (requested["type_uid"], granted["type_uid"]) == (300401, 300403)
    assert requested["entity"] == granted["entity"] == {"uid": "apr_1", "type": "approval"}


# ---- identity, tasks ---------------------------------------------------------------------


def test_an_svid_issued_is_an_authentication_ticket_for_the_workload() -> None:
    record = record_of(
        event(
            "svid.issued",
            {"svid_id": "s1", "exp": int(NOW) + 300, "method": "join_token", "kid": "k"},
            actor=SYSTEM,
            subject=AGENT,
        )
    )
    ocsf = to_ocsf(record)
    assert (ocsf["type_uid"], ocsf["user"]["uid"]) == (300203, AGENT)
    assert ocsf["session"] == {"uid": "s1", "expiration_time": int(NOW + 300) * 1000}
    assert (ocsf["auth_protocol"], ocsf["auth_protocol_id"]) == ("join_token", 99)
    assert ocsf["unmapped"]["kid"] == "k"


def test_a_task_opened_assigns_its_scopes_actions_to_its_owner() -> None:
    record = record_of(
        event(
            "task.opened",
            {
                "scope": json.dumps({"actions": ["write", "read"]}),
                "token_id": "jti1",
                "expires_at": NOW + 60,
            },
        )
    )
    ocsf = to_ocsf(record)
    assert (ocsf["type_uid"], ocsf["user"]["uid"]) == (300301, AGENT)
    assert ocsf["privileges"] == ["read", "write"]
    assert ocsf["session"] == {
        "uid": "tsk_sample",
        "credential_uid": "jti1",
        "expiration_time": int((NOW + 60) * 1000),
    }


@pytest.mark.parametrize("scope", ["not json", json.dumps(["x"]), json.dumps({"actions": 3})])
def test_a_scope_that_cannot_be_read_assigns_no_privileges(scope: str) -> None:
    ocsf = to_ocsf(record_of(event("task.opened", {"scope": scope})))
    assert ocsf["privileges"] == []


def test_a_refused_delegation_names_an_unknown_delegate() -> None:
    record = record_of(event("task.delegate", {"delegate": None}, outcome=Outcome.DENIED))
    ocsf = to_ocsf(record)
    check_required(ocsf, record)
    assert ocsf["user"]["uid"] == "unknown"
    assert ocsf["status_id"] == 2


def test_an_entity_without_a_subject_is_unknown_and_a_version_is_text() -> None:
    ocsf = to_ocsf(record_of(event("policy.reloaded", {"version": "v7"}, subject="")))
    assert ocsf["entity"] == {"uid": "unknown", "type": "policy_set", "version": "v7"}
    ocsf = to_ocsf(record_of(event("policy.reloaded", {"version": ""})))
    assert "version" not in ocsf["entity"]
    assert ocsf["unmapped"]["version"] == ""


# ---- secrets -----------------------------------------------------------------------------


def stored_unmasked(kind: str, details: dict[str, object], subject: str = AGENT) -> AuditRecord:
    """A record whose body was never masked (as an older zerolane could have stored)."""
    body = event(kind, {}, subject=subject).unsealed()
    body["details"] = details
    return seal(body, 1, GENESIS_HASH)


@pytest.mark.parametrize(
    ("kind", "member"),
    [("svid.issued", "token"), ("task.opened", "token"), ("decision", "authorization")],
)
def test_a_declared_secret_never_leaves_the_log_even_if_stored_in_clear(
    kind: str, member: str
) -> None:
    record = stored_unmasked(kind, {member: JWT, "token_id": "jti-kept"}, subject=JWT)
    line = json.dumps(to_ocsf(record))
    assert JWT not in line
    ocsf = to_ocsf(record)
    assert is_masked(ocsf["unmapped"][member])
    assert is_masked(ocsf["unmapped"]["subject"])
    assert "jti-kept" in line  # the legitimate twin: an identifier is kept


def test_a_secret_in_an_actor_id_is_masked() -> None:
    record = record_of(event("oauth.sign_in", actor=Actor("user", JWT)))
    ocsf = to_ocsf(record)
    assert JWT not in json.dumps(ocsf)
    assert is_masked(ocsf["user"]["uid"])


def test_a_body_with_no_actor_or_details_objects_still_maps() -> None:
    body = event("task.revoked").unsealed()
    body["actor"], body["details"] = "admin", ["?"]
    ocsf = to_ocsf(seal(body, 1, GENESIS_HASH))
    assert ocsf["actor"]["user"]["uid"] == "unknown"
    assert ocsf["entity"] == {"uid": "tsk_sample", "type": "task"}


# ---- the real code paths -----------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "home")
    yield built
    built.deployment.close()


def test_the_events_of_the_real_code_paths_carry_what_their_classes_require(
    world: World,
) -> None:
    agent = world.agent(AGENT)
    world.agent(PEER)
    opened = world.open(agent, max_calls=4)
    assert world.ask(agent, opened.token).allowed
    assert not world.ask(agent, opened.token, action="delete").allowed
    deployment = world.deployment
    deployment.lifecycle.complete(opened.task.task_id, AGENT, opened.task.task_id)
    other = world.open(agent)
    deployment.lifecycle.revoke(other.task.task_id, actor=ADMIN)
    deployment.rotate_keys(ADMIN)
    deployment.disable_workload(PEER, ADMIN)
    records = world.any_stores.read_events(0, 10_000)
    classes = set()
    for record in records:
        ocsf = to_ocsf(record)
        check_required(ocsf, record)
        classes.add(ocsf["class_uid"])
        assert opened.token not in json.dumps(ocsf)
    assert {3001, 3002, 3003, 3004, 6003} <= classes
