"""The token endpoints' refusals, audited as ``token.refused`` at a bounded rate.

``POST /v1/tasks`` (open a task), ``POST /v1/token`` (RFC 8693 token exchange) and
``POST /oauth/token`` (authorization code and refresh token grants) hand out
credentials; each request they refuse is a signal (credential stuffing, a stolen token
tried without its key, a replayed proof, code or refresh token) for the detectors and
for people. Each refusal the core did not record itself is recorded here as one
``token.refused`` event (outcome denied) with its reason id, the listener, method,
path, client address and status, the OAuth ``client_id`` and ``grant_type`` (or the
exchange's ``subject_token_type``) when sent, and, when a task token verified before
its proof or certificate was refused, what was seen of it (task, workload, token id,
the key or certificate expected and presented: ids and thumbprints only). Never a
token, proof, code, verifier, refresh token, assertion or password: those are declared
secret for the kind (:mod:`zerolane.audit.schema`) and masked should one ever get in.

The refusals the core records itself, with a full event, are not recorded twice
(:attr:`zerolane.errors.ZerolaneError.audited`): a task open or an exchange refused to
a caller it authenticated (``task.open``, ``task.delegate`` denied), a refused client
metadata document (``oauth.client_registered`` denied) and a reused refresh token
(``oauth.refresh_reused``).

The rate is the gateways' (:mod:`zerolane.gateway.refusals`, ``[audit] refusals_*``):
a token bucket per (listener ``token``, reason, client address) writes a burst
(``refusals_burst``, 20) then ``refusals_per_second`` (1); all keys together at most
``refusals_total_per_second`` (50); what is not written is counted and carried by the
next event of its key (``suppressed``), so a flood of bad requests adds at most that
many events to the log, and the count of the rest is still there.
"""

from __future__ import annotations

from collections.abc import Mapping

from zerolane.audit.events import Actor, Event
from zerolane.errors import Unauthenticated, ZerolaneError
from zerolane.gateway.access_log import Scope
from zerolane.gateway.refusals import audit_refusal
from zerolane.server.deployment import Deployment
from zerolane.types import Outcome

KIND = "token.refused"
#: the task open endpoint: a body the app refuses before the route runs (malformed
#: JSON, an unknown or invalid field) is audited too (``zerolane.server.app``)
OPEN_PATH = "/v1/tasks"
#: the listener the token endpoints' refusals are counted under (a bucket per reason
#: and client address)
LISTENER = "token"
#: the longest client_id, grant type or token type recorded
MAX_TEXT = 300
#: the members of an error's ``verified`` facts that are recorded (ids, thumbprints)
_SEEN = frozenset(
    {
        "task_id",
        "workload",
        "token_id",
        "expected_jkt",
        "proof_jti",
        "proof_jkt",
        "expected_x5t",
        "presented_x5t",
    }
)


def _bounded(value: str | None) -> str | None:
    if value is None:
        return None
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "..."


def seen_of(err: ZerolaneError) -> Mapping[str, str]:
    """What was verified before ``err`` refused the request (a task token whose proof
    or certificate was then refused), else nothing."""
    if isinstance(err, Unauthenticated) and err.verified:
        return {k: v for k, v in err.verified.items() if k in _SEEN}
    return {}


def token_refused(
    deployment: Deployment,
    scope: Scope,
    *,
    reason: str,
    status: int,
    client_id: str | None = None,
    grant_type: str | None = None,
    subject_token_type: str | None = None,
    seen: Mapping[str, str] | None = None,
) -> None:
    """Count the refusal of ``scope`` (the request) and have it audited as
    ``token.refused`` when the refusal rates allow; never raises into the request path
    (the request is refused whatever happens here)."""
    audit = deployment.audit
    facts = dict(seen or {})
    workload = facts.get("workload")
    task_id = facts.get("task_id")
    extra: dict[str, object] = {
        name: value
        for name, value in (
            ("client_id", _bounded(client_id)),
            ("grant_type", _bounded(grant_type)),
            ("subject_token_type", _bounded(subject_token_type)),
        )
        if value is not None
    }

    def event_of(details: dict[str, object]) -> Event:
        return audit.event(
            KIND,
            Actor("workload", workload or "unauthenticated"),
            task_id or "unknown",
            Outcome.DENIED,
            reason,
            {**details, **extra, **facts},
        )

    audit_refusal(
        deployment.refusals,
        scope,
        listener=LISTENER,
        reason=reason,
        status=status,
        task_id=task_id,
        event_of=event_of,
    )
