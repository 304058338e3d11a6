"""What each kind of audit event records in ``details``, and which of it is secret.

Masking goes by this table, as OPA masks its decision log by path: a member is secret
because the event's kind declares it so, never because of its name. So
``authorization_details``, ``subject_token_type`` or ``jkt`` are kept as they are
(they say what was asked for and by which key), while ``details.requested.actor_token``
would be masked however it were named. Each kind declares its ``details`` members as
dotted paths from the event (``details.jkt``), in three sets:

``clear``
    Identifiers, scopes, times, counts, reasons: kept as they are. A JWT, JWS, PEM
    private key or zerolane credential (``zljt_``, ``zla_``, ``zlep_``, ``zlk_``) found
    in one is still masked (the pattern backstop, for every string).
``free``
    Free-form content that comes from outside and has no schema here (an MCP tool
    call's arguments, an enforcement point's extra members): inside it a member named
    like a secret (``password``, ``api_key`` ...) is masked, besides the backstop.
``secret``
    The secrets the operation behind the event handles (the token it mints, the
    credential it issues, the evidence it checks): masked wherever they appear under
    their path, whatever they hold. None of them is recorded on purpose; declaring them
    makes sure none ever is.

A member a kind does not declare is treated as ``free`` (secret-looking names masked);
an event of a kind that is not in the table at all is masked as ``free`` from its
``details`` down. Both are fail-safe, never silent leaks: ``tests/audit/test_schema.py``
scans ``src`` so that every kind the code records, and every member a recorded event
carries, is declared here. Lists are transparent: a path names every element of a list
on its way. The ``subject`` of any event gets the backstop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from zerolane.types import TaskState, WorkloadStatus

#: the one member of an event masked by declared paths; every path starts with it
DETAILS = "details"


@dataclass(frozen=True, slots=True)
class EventFields:
    """The declared ``details`` of one kind of event (dotted paths from the event)."""

    clear: frozenset[str] = frozenset()
    free: frozenset[str] = frozenset()
    secret: frozenset[str] = frozenset()

    def paths(self) -> frozenset[str]:
        return self.clear | self.free | self.secret


def _fields(
    clear: Iterable[str] = (), *, free: Iterable[str] = (), secret: Iterable[str] = ()
) -> EventFields:
    """Declared members; names without a dot are members of ``details``."""

    def paths(names: Iterable[str]) -> frozenset[str]:
        return frozenset(n if "." in n else f"{DETAILS}.{n}" for n in names)

    return EventFields(paths(clear), paths(free), paths(secret))


#: ``requested``: what an exchange asked for (``tasks.exchange._asked``: its
#: ``subject_token_type``, ``authorization_details``, ``audience``, ``ttl`` ...), all of
#: it clear but for the tokens themselves, should they ever be added
_EXCHANGE_TOKENS = ("details.requested.subject_token", "details.requested.actor_token")
_LEASE = ("task_id", "broker", "handle", "expires_at")
_TASK_ENDED = _fields(["calls_used", "owner", "ended_with", "parent_id"])
#: what was seen of a holder whose token verified and whose proof or certificate was
#: refused (``Unauthenticated.verified``, tasks.auth): the task, the workload, the
#: token's id, the binding expected and what was presented
_SEEN = (
    "task_id",
    "workload",
    "token_id",
    "expected_jkt",
    "proof_jti",
    "proof_jkt",
    "expected_x5t",
    "presented_x5t",
)
#: the decider's own members of a decision event, and those an enforcement point adds
_DECISION = (
    "decision_id",
    "decision",
    "reasons",
    "policies",
    "method",
    "url",
    "action",
    "resource",
    "destination",
    "destination_internal",
    "sensitivity",
    "enforcement_point",  # forward-auth's refusals before any decision
    "jkt",  # the holder's proof's key (its token_id and proof_jti: in _SEEN)
    *_SEEN,
    "approval_id",  # the approval a deny approval.required (.denied, .used) is about
    "would_deny",  # a shadow allow: the reasons enforcement would have denied it with
    "shadow",  # and what was in shadow mode (policies, playbook:<name>, route:<name>)
    "playbook",  # and its task's playbook
    "tool",  # the MCP gateway's tool call
    "server",
    "upstream_tool",
    "read_only",
    "destructive",
)

#: what a refusal audited at a bounded rate records (zerolane.gateway.refusals): where
#: it was made and of whom, and how many like it were not written
_REFUSED = (
    "listener",
    "method",
    "path",
    "client",
    "status",
    "suppressed",
    "suppressed_elsewhere",
)

EVENT_FIELDS: Mapping[str, EventFields] = MappingProxyType(
    {
        # the request path
        "decision": _fields(
            _DECISION,
            free=["arguments"],  # an MCP tool call's arguments, bounded by the gateway
            secret=["token", "dpop", "authorization"],  # the request's credentials
        ),
        "mcp.refused": _fields(
            ["method", "route", "url", *_SEEN], secret=["token", "dpop", "authorization"]
        ),
        # refusals before any decision, rate-limited (zerolane.gateway.refusals)
        "gateway.refused": _fields([*_REFUSED, "task_id", "workload"]),
        "enforcement_point.added": _fields(["name", "urls"], secret=["credential"]),
        "enforcement_point.removed": _fields(["name"]),
        # identity
        "attestation": _fields(
            [
                "method",
                "selectors",
                "issuer",  # the JWT attestor's
                "sub",
                "trust_domain",  # the X.509-SVID attestor's
                "bundle_sequence",
                "x509_serial",
                "x509_sha256",
                "x509_not_after",
            ],
            secret=["evidence", "join_token", "token", "proof"],  # what it was proven with
        ),
        "svid.issued": _fields(
            ["svid_id", "kid", "aud", "exp", "jkt", "method"], secret=["token", "svid"]
        ),
        "x509_svid.issued": _fields(["serial", "x5t#S256", "exp", "method"]),
        "x509_ca.created": _fields(["reason", "serial"], secret=["private_key"]),
        "keys.rotated": _fields(
            ["previous_kid", "kid", "old_key_published_for"], secret=["private_key"]
        ),
        "home.initialized": _fields(
            ["kid", "admin_credential_id", "x509_ca_serial"],
            secret=["admin_token", "private_key"],
        ),
        "workload.registered": _fields(["selectors", "owner"]),
        **{f"workload.{status.value}": _fields() for status in WorkloadStatus},
        "join_token.created": _fields(["token_id", "expires_at"], secret=["join_token"]),
        "join_token.used": _fields(["token_id", "expires_at"], secret=["join_token"]),
        "federation.bundle_added": _fields(["sequence", "x509_authorities", "key_ids"]),
        # configuration
        "policy.reloaded": _fields(["version", "error", "active_version"]),
        "playbook.applied": _fields(["name", "version", "ceiling", "actions", "message"]),
        # tasks
        "task.open": _fields(
            [
                "intent",
                "playbook",
                "user",  # the verified person: subject and issuer
                "requested",
            ],
            secret=_EXCHANGE_TOKENS,
        ),
        "task.opened": _fields(
            [
                "playbook",
                "playbook_version",
                "intent",
                "scope",
                "expires_at",
                "max_calls",
                "jkt",
                "token_id",
                "on_behalf_of",
                "user",
            ],
            secret=["token"],  # the task token it mints
        ),
        # a standard MCP client's refresh (tasks.renewal) and the OAuth server's own
        "task.token_renewed": _fields(["token_id", "expires_at", "jkt"], secret=["token"]),
        # refused ones are rate-limited like gateway.refused (server.oauth_server)
        "oauth.client_registered": _fields(["client_name", "redirect_uris", *_REFUSED]),
        "oauth.sign_in": _fields(_REFUSED),
        "oauth.consented": _fields(["client_id", "playbook", "intent"]),
        "oauth.refresh_reused": _fields(["client_id", "task_id"], secret=["refresh_token"]),
        # a token endpoint's refusal the core did not record (server.token_refusals),
        # rate-limited like gateway.refused: what was sent and seen, never a credential
        "token.refused": _fields(
            [*_REFUSED, *_SEEN, "client_id", "grant_type", "subject_token_type"],
            secret=[
                "subject_token",
                "actor_token",
                "code",
                "code_verifier",
                "refresh_token",
                "client_secret",
                "assertion",
                "password",
                "dpop",
                "authorization",
            ],
        ),
        "task.delegate": _fields(
            [
                "parent_id",
                "delegate",
                "depth",
                "act",
                "intent",
                "scope",
                "audience",
                "expires_at",
                "max_calls",
                "parent_calls_left",
                "jkt",
                "token_id",
                "requested",
            ],
            secret=["token", *_EXCHANGE_TOKENS],  # the child's token, the exchange's
        ),
        **{f"task.{state.value}": _TASK_ENDED for state in TaskState if state.ended},
        "task.suspended": _fields(
            ["calls_used", "owner", "expires_at", "suspended_with", "parent_id"]
        ),
        "task.resumed": _fields(["calls_used", "owner", "expires_at", "resumed_with", "parent_id"]),
        # human approvals (zerolane.tasks.approvals): the request each one is bound to
        **{
            f"approval.{step}": _fields(
                [
                    "approval_id",
                    "action",
                    "resource",
                    "destination",
                    "digest",
                    "policy_version",
                    "policies",
                    "status",
                    "expires_at",
                    "approver",
                ]
            )
            for step in ("requested", "granted", "denied", "used")
        },
        "approval.pruned": _fields(["count", "expired_before", "retention"]),
        # a response rule's require_approval (zerolane.tasks.holds), and its release
        **{
            f"task.{step}": _fields(["rule", "detector", "detection", "held_at"])
            for step in ("held", "released")
        },
        # downstream credentials
        "grant.issue": _fields(
            [*_LEASE, "error"],
            secret=["secret", "password", "key"],  # what it hands out
        ),
        "grant.revoke": _fields(_LEASE),
        "grant.revoke_failed": _fields([*_LEASE, "error", "attempts", "next_attempt_at"]),
        # continuous verification (zerolane.detection): what a detector found, and why
        "detection": _fields(
            [
                "detector",
                "severity",
                "summary",
                "task_id",
                "workload",
                "evidence",  # [{seq, event_id}]: the events it rests on
                "evidence_total",
                "count",
                "threshold",
                "window_seconds",
                "reasons",  # replay
                "denied",  # scope_probing: [{action, resource}]
                "pattern",  # delegation_fanout: children | depth; privilege_reuse's
                "chain",  # delegation_fanout's tasks; toxic_chains' name
                "reached",  # lateral_movement: {kind, value}
                "playbook",
                "known",
                "min_history",
                "learning_seconds",
                "credential",  # privilege_reuse: token:<id>, task:, lease:, handle:
                "tasks",
                "sources",
                "baseline",
                "factor",
                "schedule",  # off_window: the schedule broken, and when
                "local_time",
                "cooldown_seconds",
                "last_seen",  # dormant
                "silent_days",
                "days",
                "scenario",  # probe: the scenario that failed, and the target
                "target",
            ]
        ),
        # scheduled control testing (zerolane.cli.probe_schedule): one event per run
        "probe.run": _fields(
            ["target", "file", "counts", "failed", "inconclusive", "duration_ms", "error"]
        ),
        # automatic response (zerolane.detection.response): a rule fired, an alert posted
        "response": _fields(
            ["rule", "detection", "detector", "severity", "task_id", "workload", "risk", "actions"]
        ),
        "alert.delivered": _fields(["alert_id", "rule", "detection_seq", "attempts", "last_error"]),
        "alert.failed": _fields(["alert_id", "rule", "detection_seq", "attempts", "last_error"]),
    }
)
