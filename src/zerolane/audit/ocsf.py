"""Audit events as OCSF 1.4 events, for SIEMs (``zerolane audit export --format ocsf``).

Each kind of event maps to the OCSF class that fits it (:data:`RULES`, documented in
``docs/audit-export.md``):

- API Activity (6003): ``decision`` -- a request an enforcement point decided on,
  allowed or blocked (the ``security_control`` profile: ``disposition_id``,
  ``action_id``, the policies in ``authorizations``);
- Authentication (3002): attestation, SVID issuance, token renewal, sign-in, the MCP
  gateway's refusals of a token before any decision (``mcp.refused``), and the token
  endpoints' refusals (``token.refused``);
- Authorize Session (3003): a task opened (or refused), delegated, a grant issued, an
  OAuth consent: privileges assigned to a workload;
- Account Change (3001): workloads registered, enabled, disabled;
- Entity Management (3004): tasks ended, suspended, resumed; keys, playbooks, policies,
  enforcement points, join tokens, grants revoked;
- Detection Finding (2004): ``detection``, with its evidence as ``related_events``
  (each evidence's ``uid`` is the ``metadata.uid`` of the event it names);
- Base Event (0), activity Other: any kind not in the table (a newer zerolane's).

Every event carries what OCSF requires of its class, ``metadata.uid`` (the event id),
``metadata.sequence`` (its position in the chain), ``metadata.event_code`` (its kind),
and, in ``unmapped``, the zerolane members no OCSF attribute holds, by their own names,
with the chain's ``hash`` and ``prev_hash``. The stored details are masked again on the
way out (:func:`zerolane.audit.masking.mask_details`, idempotent): a credential never
leaves the log, even one stored before a field was declared secret.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import zerolane
from zerolane.audit.masking import mask, mask_details
from zerolane.store.records import AuditRecord

#: the OCSF schema version the events follow
OCSF_VERSION = "1.4.0"
PRODUCT = {"name": "zerolane", "vendor_name": "zerolane", "version": zerolane.__version__}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class OcsfClass:
    uid: int
    name: str
    category_uid: int
    category_name: str
    #: whether the class has an ``actor`` (not Detection Finding nor Base Event: their
    #: actor is in ``unmapped.actor_id``; a finding names its detector as its analytic)
    has_actor: bool = True


BASE_EVENT = OcsfClass(0, "Base Event", 0, "Uncategorized", has_actor=False)
DETECTION_FINDING = OcsfClass(2004, "Detection Finding", 2, "Findings", has_actor=False)
ACCOUNT_CHANGE = OcsfClass(3001, "Account Change", 3, "Identity & Access Management")
AUTHENTICATION = OcsfClass(3002, "Authentication", 3, "Identity & Access Management")
AUTHORIZE_SESSION = OcsfClass(3003, "Authorize Session", 3, "Identity & Access Management")
ENTITY_MANAGEMENT = OcsfClass(3004, "Entity Management", 3, "Identity & Access Management")
API_ACTIVITY = OcsfClass(6003, "API Activity", 6, "Application Activity")

#: severity_id and its caption
_SEVERITIES = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
#: a detection's configured severity -> severity_id (anything else: 99 Other)
_DETECTION_SEVERITY = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
#: an actor's type -> user.type_id (OCSF: 1 User, 2 Admin, 3 System, 99 Other)
_USER_TYPES = {"user": 1, "admin": 2, "system": 3, "detector": 3}
#: an HTTP method -> API Activity's activity_id (1 Create, 2 Read, 3 Update, 4 Delete)
_HTTP_ACTIVITY = {"GET": 2, "HEAD": 2, "OPTIONS": 2, "POST": 1, "PUT": 3, "PATCH": 3, "DELETE": 4}
_API_ACTIVITY_NAMES = {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"}


@dataclass(frozen=True, slots=True)
class Source:
    """One stored audit event, parsed and masked again: what a mapping reads."""

    seq: int
    event_id: str
    time: str
    time_ms: int
    kind: str
    actor_type: str
    actor_id: str
    subject: str
    outcome: str
    reason: str
    details: Mapping[str, object]
    body: Mapping[str, object]

    @classmethod
    def of(cls, record: AuditRecord) -> Source:
        body: dict[str, object] = json.loads(record.body)
        stored = body.get("actor")
        actor: dict[str, object] = stored if isinstance(stored, dict) else {}
        raw = body.get("details")
        masked = mask_details(record.kind, raw if isinstance(raw, dict) else {})
        body["hash"] = record.hash
        return cls(
            seq=record.seq,
            event_id=record.event_id,
            time=record.time,
            time_ms=epoch_ms(record.time),
            kind=record.kind,
            actor_type=str(actor.get("type", "unknown")),
            actor_id=str(mask(str(actor.get("id", "unknown")))),
            subject=str(mask(str(body.get("subject", "")))),
            outcome=record.outcome,
            reason=str(body.get("reason", "")),
            details=masked if isinstance(masked, dict) else {},
            body=body,
        )

    def text(self, key: str) -> str | None:
        value = self.details.get(key)
        return value if isinstance(value, str) and value else None


def epoch_ms(rfc3339: str) -> int:
    """``2027-01-15T08:00:00.000Z`` -> milliseconds since the epoch (OCSF ``timestamp_t``)."""
    moment = dt.datetime.fromisoformat(rfc3339)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - _EPOCH) // _MS


def _ms(value: object) -> int | None:
    """A time in seconds (a detail's ``expires_at``, ``exp``) in milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value * 1000)
    return None


def _compact(members: Mapping[str, object]) -> JSON:
    """``members`` without those that are None (OCSF: an absent value is left out)."""
    return {k: v for k, v in members.items() if v is not None}


def _user(uid: str, actor_type: str = "workload") -> JSON:
    type_id = _USER_TYPES.get(actor_type, 99)
    kind = "Workload" if actor_type == "workload" else actor_type.capitalize()
    return {"uid": uid, "name": uid, "type_id": type_id, "type": kind}


def _actions(value: object) -> list[str]:
    """The actions of a task's scope (canonical JSON) or of authorization_details."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if isinstance(value, dict):
        value = [value]
    found: set[str] = set()
    for item in value if isinstance(value, list) else []:
        actions = item.get("actions") if isinstance(item, dict) else None
        if isinstance(actions, list):
            found.update(a for a in actions if isinstance(a, str))
    return sorted(found)


#: what one kind's mapping adds: class-specific attributes and the details it used
Shaped = tuple[JSON, frozenset[str]]
Shape = Callable[[Source], Shaped]


@dataclass(frozen=True, slots=True)
class Rule:
    """How one kind maps: its class, its activity (fixed, or read from the event by
    ``activity_of``) and the attributes it adds (``shape``)."""

    cls: OcsfClass
    activity_id: int
    activity_name: str
    shape: Shape
    activity_of: Callable[[Source], tuple[int, str]] | None = None


# ---- API Activity ------------------------------------------------------------------------

_DECISION_USED = frozenset(
    {"decision_id", "decision", "method", "url", "action", "resource", "destination"}
    | {"server", "tool", "policies", "path", "listener"}
)


def _api_activity(src: Source) -> tuple[int, str]:
    """Create / Read / Update / Delete from the HTTP method; an MCP tool call by its
    annotations (read-only: Read, destructive: Delete, else Other)."""
    if src.text("tool") is not None:
        if src.details.get("read_only") is True:
            activity = 2
        else:
            activity = 4 if src.details.get("destructive") is True else 99
    else:
        activity = _HTTP_ACTIVITY.get((src.text("method") or "").upper(), 99)
    return activity, _API_ACTIVITY_NAMES[activity]


def _ip(value: object) -> str | None:
    """A client's address as OCSF ``ip_t`` (an address, without a port), else None."""
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _url(text: str) -> JSON:
    scheme, _, rest = text.partition("://")
    host, slash, path = rest.partition("/")
    return _compact(
        {
            "url_string": text,
            "scheme": scheme or None,
            "hostname": host or None,
            "path": slash + path,
        }
    )


def _decision(src: Source) -> Shaped:
    """A request decided (``decision``) or refused before any decision
    (``gateway.refused``: the listener, the path and the client's address). A shadow
    allow was let through (disposition Allowed) and says so in ``authorizations``: the
    policies that would have denied it, each with the decision ``shadow``; its
    ``would_deny`` reasons and ``shadow`` modes stay in ``unmapped``."""
    outcome = src.text("decision")
    allowed = outcome in ("allow", "shadow")
    method, url, tool = src.text("method"), src.text("url"), src.text("tool")
    server, destination, resource = (
        src.text("server"),
        src.text("destination"),
        src.text("resource"),
    )
    path, client = src.text("path"), _ip(src.details.get("client"))
    listener = server or src.text("listener")
    decision_id = src.text("decision_id")
    listed = src.details.get("policies")
    policies = [p for p in listed if isinstance(p, str)] if isinstance(listed, list) else []
    decision = outcome if outcome in ("allow", "shadow") else "deny"
    authorizations = [{"decision": decision, "policy": {"uid": p, "name": p}} for p in policies]
    attrs: JSON = {
        "api": _compact(
            {
                "operation": src.text("action") or tool or method or "unknown",
                "request": {"uid": decision_id} if decision_id else None,
                "service": {"name": server} if server else None,
            }
        ),
        "src_endpoint": _compact({"svc_name": src.actor_id, "ip": client}),
        "dst_endpoint": _compact({"hostname": destination, "svc_name": listener}) or None,
        "http_request": _compact(
            {"http_method": method, "url": _url(url) if url else {"path": path} if path else None}
        )
        or None,
        "resources": [{"uid": resource, "name": resource}] if resource else None,
        "disposition_id": 1 if allowed else 2,
        "disposition": "Allowed" if allowed else "Blocked",
        "action_id": 1 if allowed else 2,
        "action": "Allowed" if allowed else "Denied",
        "authorizations": authorizations or [{"decision": decision}],
    }
    return _compact(attrs), _DECISION_USED


# ---- Authentication ----------------------------------------------------------------------


def _authentication(
    *,
    who: str = "subject",
    session: str | None = None,
    expires: str | None = None,
    protocol: str | None = None,
    service: str = "zerolane",
) -> Shape:
    """An Authentication event: ``user`` is the event's subject (the workload that
    proved itself, or was issued a credential) or its actor; ``session`` names the
    credential issued (its id member) and ``expires`` its expiry member (seconds)."""

    def shape(src: Source) -> Shaped:
        uid = src.subject if who == "subject" else src.actor_id
        kind = "workload" if who == "subject" else src.actor_type
        credential = src.text(session) if session else None
        method = src.text("method")
        attrs = {
            "user": _user(uid, kind),
            "service": {"name": service},
            "session": _compact(
                {"uid": credential, "expiration_time": _ms(src.details.get(expires or ""))}
            )
            or None,
            "auth_protocol": protocol or method,
            "auth_protocol_id": 99 if protocol or method else None,
        }
        used = {k for k in (session, expires) if k} | ({"method"} if method else set())
        return _compact(attrs), frozenset(used)

    return shape


_TOKEN_REFUSED_USED = frozenset({"listener", "method", "path", "token_id"})


def _token_refused(src: Source) -> Shaped:
    """A token endpoint's refusal (``token.refused``): a credential asked for and not
    issued. ``user``: the workload a verified token named, else ``unauthenticated``
    (its OAuth ``client_id`` is in ``unmapped``: a public client proves nothing);
    ``src_endpoint``: the client's address; ``http_request``: the endpoint; ``session``:
    the id of the token that verified before its proof or certificate was refused."""
    client, path, method = _ip(src.details.get("client")), src.text("path"), src.text("method")
    token_id = src.text("token_id")
    attrs = {
        "user": _user(src.actor_id, src.actor_type),
        "service": {"name": src.text("listener") or "token"},
        "src_endpoint": {"ip": client} if client else None,
        "http_request": _compact({"http_method": method, "url": {"path": path} if path else None})
        or None,
        "session": {"credential_uid": token_id} if token_id else None,
    }
    return _compact(attrs), _TOKEN_REFUSED_USED


# ---- Authorize Session -------------------------------------------------------------------


def _authorize(
    *, who: str = "actor", privileges: Callable[[Source], list[str]], task: str = "subject"
) -> Shape:
    """An Authorize Session event: privileges assigned to ``user`` for a session (the
    task: its id is the event's subject, or the detail named ``task``)."""

    def shape(src: Source) -> Shaped:
        uid = src.text(who) if who != "actor" else src.actor_id
        session_uid = src.subject if task == "subject" else src.text(task)
        attrs = {
            "user": _user(uid or "unknown", "workload" if who != "actor" else src.actor_type),
            "privileges": privileges(src),
            "session": _compact(
                {
                    "uid": session_uid,
                    "credential_uid": src.text("token_id"),
                    "expiration_time": _ms(src.details.get("expires_at")),
                }
            )
            or None,
        }
        used = {"token_id", "expires_at"} | ({who} if who != "actor" else set())
        return _compact(attrs), frozenset(used | ({task} if task != "subject" else set()))

    return shape


def _scope_actions(src: Source) -> list[str]:
    return _actions(src.details.get("scope"))


def _requested_actions(src: Source) -> list[str]:
    requested = src.details.get("requested")
    asked = requested.get("authorization_details") if isinstance(requested, dict) else None
    return _actions(asked)


# ---- Account Change, Entity Management ---------------------------------------------------


def _account(src: Source) -> Shaped:
    return {"user": _user(src.subject)}, frozenset()


def _entity(kind: str, *, uid: str | None = None, name: str | None = None) -> Shape:
    """An Entity Management event about the ``kind`` named by the event's subject (or
    the detail named ``uid``; ``name`` and ``version`` from details when given)."""

    def shape(src: Source) -> Shaped:
        version = src.details.get("version")
        shown = str(version) if isinstance(version, int | str) and version != "" else None
        entity = {
            "uid": (src.text(uid) if uid else None) or src.subject or "unknown",
            "name": src.text(name) if name else None,
            "type": kind,
            "version": shown,
        }
        used = {k for k in (uid, name) if k} | ({"version"} if shown is not None else set())
        return {"entity": _compact(entity)}, frozenset(used)

    return shape


# ---- Detection Finding -------------------------------------------------------------------

_FINDING_USED = frozenset({"detector", "severity", "task_id", "workload"})


def _finding(src: Source, info: JSON, status: tuple[int, str]) -> JSON:
    """A Detection Finding's attributes: ``info`` and the detector as its analytic, the
    task and workload it is about as its resources."""
    detector = src.text("detector") or "unknown"
    task, workload = src.text("task_id"), src.text("workload")
    resources = [{"uid": task, "type": "task"}] if task else []
    resources += [{"uid": workload, "type": "workload"}] if workload else []
    analytic = {"uid": detector, "name": detector, "type_id": 1, "type": "Rule"}
    return _compact(
        {
            "finding_info": _compact({**info, "types": [detector], "analytic": analytic}),
            "resources": resources or None,
            "status_id": status[0],
            "status": status[1],
        }
    )


def _detection(src: Source) -> Shaped:
    """A detection: a new finding, naming the events it rests on."""
    evidence = src.details.get("evidence")
    related = [
        _compact({"uid": e.get("event_id")})
        for e in (evidence if isinstance(evidence, list) else [])
        if isinstance(e, dict) and isinstance(e.get("event_id"), str)
    ]
    info = {
        "uid": src.event_id,
        "title": src.text("summary") or f"{src.text('detector') or 'unknown'} detection",
        "created_time": src.time_ms,
        "related_events": related or None,
    }
    attrs = {**_finding(src, info, (1, "New")), "is_alert": True}
    return attrs, _FINDING_USED | {"summary", "evidence"}


def _response(src: Source) -> Shaped:
    """A response rule acting on a detection: an update of that finding (its
    ``finding_info.uid`` is the detection's event id, as in the detection's own export);
    what was done (``actions``) and the risk are in ``unmapped``."""
    detection = src.details.get("detection")
    found = detection.get("event_id") if isinstance(detection, dict) else None
    rule = src.text("rule") or "unknown"
    info = {
        "uid": found if isinstance(found, str) and found else src.event_id,
        "title": f"response rule {rule}",
        "modified_time": src.time_ms,
    }
    return _finding(src, info, (2, "In Progress")), _FINDING_USED


def _detection_severity(src: Source) -> int:
    return _DETECTION_SEVERITY.get((src.text("severity") or "").lower(), 99)


# ---- the table ---------------------------------------------------------------------------

_AUTHN = AUTHENTICATION
_TASK_ENTITY = _entity("task")
RULES: Mapping[str, Rule] = {
    "decision": Rule(API_ACTIVITY, 99, "Other", _decision, activity_of=_api_activity),
    # a gateway's refusal before any decision: an API Activity it blocked
    "gateway.refused": Rule(API_ACTIVITY, 99, "Other", _decision, activity_of=_api_activity),
    # Authentication: 1 Logon, 3 Authentication Ticket, 5 Service Ticket Renew, 99 Other
    "attestation": Rule(_AUTHN, 1, "Logon", _authentication()),
    "join_token.used": Rule(
        _AUTHN,
        99,
        "Join Token Used",
        _authentication(protocol="join_token", session="token_id", expires="expires_at"),
    ),
    "svid.issued": Rule(
        _AUTHN, 3, "Authentication Ticket", _authentication(session="svid_id", expires="exp")
    ),
    "x509_svid.issued": Rule(
        _AUTHN, 3, "Authentication Ticket", _authentication(session="serial", expires="exp")
    ),
    "task.token_renewed": Rule(
        _AUTHN,
        5,
        "Service Ticket Renew",
        _authentication(who="actor", session="token_id", expires="expires_at"),
    ),
    "oauth.sign_in": Rule(_AUTHN, 1, "Logon", _authentication(who="actor", service="oauth")),
    "oauth.refresh_reused": Rule(
        _AUTHN, 5, "Service Ticket Renew", _authentication(who="actor", session="task_id")
    ),
    "mcp.refused": Rule(_AUTHN, 1, "Logon", _authentication(who="actor", service="mcp-gateway")),
    # a token endpoint's refusal: a ticket (task token) asked for and refused
    "token.refused": Rule(_AUTHN, 3, "Authentication Ticket", _token_refused),
    # Authorize Session: 1 Assign Privileges
    "task.opened": Rule(
        AUTHORIZE_SESSION, 1, "Assign Privileges", _authorize(privileges=_scope_actions)
    ),
    "task.open": Rule(
        AUTHORIZE_SESSION, 1, "Assign Privileges", _authorize(privileges=_requested_actions)
    ),
    "task.delegate": Rule(
        AUTHORIZE_SESSION,
        1,
        "Assign Privileges",
        _authorize(who="delegate", privileges=_scope_actions),
    ),
    "grant.issue": Rule(
        AUTHORIZE_SESSION,
        1,
        "Assign Privileges",
        _authorize(privileges=lambda s: [s.text("broker") or "grant"], task="task_id"),
    ),
    "oauth.consented": Rule(
        AUTHORIZE_SESSION,
        1,
        "Assign Privileges",
        _authorize(privileges=lambda s: [s.text("playbook") or "unknown"]),
    ),
    # Account Change: 1 Create, 2 Enable, 5 Disable
    "workload.registered": Rule(ACCOUNT_CHANGE, 1, "Create", _account),
    "workload.enabled": Rule(ACCOUNT_CHANGE, 2, "Enable", _account),
    "workload.disabled": Rule(ACCOUNT_CHANGE, 5, "Disable", _account),
    # Entity Management: 1 Create, 3 Update, 4 Delete, 11 Deactivate, 12 Suspend, 13 Resume
    "task.completed": Rule(ENTITY_MANAGEMENT, 11, "Deactivate", _TASK_ENTITY),
    "task.expired": Rule(ENTITY_MANAGEMENT, 11, "Deactivate", _TASK_ENTITY),
    "task.revoked": Rule(ENTITY_MANAGEMENT, 11, "Deactivate", _TASK_ENTITY),
    "task.suspended": Rule(ENTITY_MANAGEMENT, 12, "Suspend", _TASK_ENTITY),
    "task.resumed": Rule(ENTITY_MANAGEMENT, 13, "Resume", _TASK_ENTITY),
    "grant.revoke": Rule(ENTITY_MANAGEMENT, 4, "Delete", _entity("grant")),
    "grant.revoke_failed": Rule(ENTITY_MANAGEMENT, 4, "Delete", _entity("grant")),
    "join_token.created": Rule(
        ENTITY_MANAGEMENT, 1, "Create", _entity("join_token", uid="token_id")
    ),
    "enforcement_point.added": Rule(ENTITY_MANAGEMENT, 1, "Create", _entity("enforcement_point")),
    "enforcement_point.removed": Rule(ENTITY_MANAGEMENT, 4, "Delete", _entity("enforcement_point")),
    "keys.rotated": Rule(ENTITY_MANAGEMENT, 3, "Update", _entity("signing_key", uid="kid")),
    "x509_ca.created": Rule(ENTITY_MANAGEMENT, 1, "Create", _entity("x509_ca", uid="serial")),
    "home.initialized": Rule(ENTITY_MANAGEMENT, 1, "Create", _entity("home")),
    "federation.bundle_added": Rule(ENTITY_MANAGEMENT, 3, "Update", _entity("trust_bundle")),
    "policy.reloaded": Rule(ENTITY_MANAGEMENT, 3, "Update", _entity("policy_set")),
    "playbook.applied": Rule(ENTITY_MANAGEMENT, 3, "Update", _entity("playbook", name="name")),
    "oauth.client_registered": Rule(
        ENTITY_MANAGEMENT, 1, "Create", _entity("oauth_client", name="client_name")
    ),
    # Detection Finding: 1 Create, 2 Update
    "detection": Rule(DETECTION_FINDING, 1, "Create", _detection),
    "response": Rule(DETECTION_FINDING, 2, "Update", _response),
    # human approvals of one request, and alerts posted for detections
    "approval.requested": Rule(
        ENTITY_MANAGEMENT, 1, "Create", _entity("approval", uid="approval_id")
    ),
    **{
        f"approval.{step}": Rule(
            ENTITY_MANAGEMENT, 3, "Update", _entity("approval", uid="approval_id")
        )
        for step in ("granted", "denied", "used")
    },
    "approval.pruned": Rule(ENTITY_MANAGEMENT, 4, "Delete", _entity("approvals")),
    # a task held for human approval by a response rule, and released by an admin
    "task.held": Rule(ENTITY_MANAGEMENT, 3, "Update", _TASK_ENTITY),
    "task.released": Rule(ENTITY_MANAGEMENT, 3, "Update", _TASK_ENTITY),
    "alert.delivered": Rule(ENTITY_MANAGEMENT, 3, "Update", _entity("alert", uid="alert_id")),
    "alert.failed": Rule(ENTITY_MANAGEMENT, 3, "Update", _entity("alert", uid="alert_id")),
    # a scheduled probe run: the control test of a target updated with its result (the
    # counts in unmapped); each scenario that failed is also a detection (a finding)
    "probe.run": Rule(ENTITY_MANAGEMENT, 3, "Update", _entity("control_test", uid="target")),
}
#: a kind not in the table: a Base Event, activity Other, named after the kind
FALLBACK = Rule(BASE_EVENT, 99, "Other", lambda src: ({}, frozenset()), lambda src: (99, src.kind))


def rule_of(kind: str) -> Rule:
    return RULES.get(kind, FALLBACK)


def _severity(src: Source, cls: OcsfClass) -> int:
    if cls is DETECTION_FINDING:  # a detection and a response carry their severity
        return _detection_severity(src)
    return 1 if src.outcome == "success" else 2


def to_ocsf(record: AuditRecord) -> JSON:
    """The OCSF event of one stored audit event."""
    src = Source.of(record)
    rule = rule_of(src.kind)
    attrs, used = rule.shape(src)
    activity_id, activity_name = rule.activity_id, rule.activity_name
    if rule.activity_of is not None:
        activity_id, activity_name = rule.activity_of(src)
    severity_id = _severity(src, rule.cls)
    success = src.outcome == "success"
    event: JSON = {
        "class_uid": rule.cls.uid,
        "class_name": rule.cls.name,
        "category_uid": rule.cls.category_uid,
        "category_name": rule.cls.category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": rule.cls.uid * 100 + activity_id,
        "type_name": f"{rule.cls.name}: {activity_name}",
        "time": src.time_ms,
        "severity_id": severity_id,
        "severity": _SEVERITIES.get(severity_id, "Other"),
        "status_id": 1 if success else 2,
        "status": "Success" if success else "Failure",
        "status_detail": src.reason,
        "message": f"{src.kind} {src.outcome}: {src.reason}",
        "metadata": _metadata(src, "disposition_id" in attrs),
        **attrs,
        "unmapped": _unmapped(src, used),
    }
    if rule.cls.has_actor:
        event["actor"] = _actor(src)
    else:
        event["unmapped"]["actor_id"] = src.actor_id
    return event


def _metadata(src: Source, security_control: bool) -> JSON:
    return _compact(
        {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": src.event_id,
            "sequence": src.seq,
            "event_code": src.kind,
            "original_time": src.time,
            "log_name": "audit",
            "log_provider": "zerolane",
            "profiles": ["security_control"] if security_control else None,
        }
    )


def _actor(src: Source) -> JSON:
    actor: JSON = {"user": _user(src.actor_id, src.actor_type)}
    # the task the event is about is the actor's session: the subject, or the task a
    # refused request's token named (its proof or certificate refused: subject unknown)
    task = src.subject if src.subject.startswith("tsk_") else src.text("task_id")
    if task is not None:
        actor["session"] = {"uid": task}
    return actor


def _unmapped(src: Source, used: Iterable[str]) -> JSON:
    taken = set(used)
    rest = {k: v for k, v in src.details.items() if k not in taken}
    return {
        **rest,
        "subject": src.subject,
        "actor_type": src.actor_type,
        "outcome": src.outcome,
        "schema_version": src.body.get("schema_version"),
        "prev_hash": src.body.get("prev_hash"),
        "hash": src.body.get("hash"),
    }
