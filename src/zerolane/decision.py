"""The decision contract: what an enforcement point asks (:class:`DecideInput`) and what
it is answered (:class:`Decision`).

Every enforcement point speaks it, whoever decides: the decision core in this process
(:class:`zerolane.tasks.decisions.Decider`) or the control plane over ``POST
/v1/decide`` (:class:`zerolane.gateway.inproc.RemoteDecider`, which the agent SDK's
in-process guard uses). So this module is small and imports nothing but the kinds of
refusal (:mod:`zerolane.errors`): an agent that only guards its tools through a remote
decider never loads the decision core, the policy engine or a store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zerolane.errors import Refusal

if TYPE_CHECKING:  # only the MCP gateway builds one; the policy layer defines it
    from zerolane.policy.context import McpFacts


def body_digest(body: bytes) -> str:
    """What :attr:`DecideInput.digest` is for an HTTP body: SHA-256 hex of its bytes."""
    return hashlib.sha256(body).hexdigest()


def request_digest(method: str, target: str, body: str) -> str:
    """What :attr:`DecideInput.digest` is for an HTTP request a gateway decides: SHA-256
    hex of the canonical JSON of its method, its target as received (path and query:
    both reach the upstream, so an approval of one request is not one of another query)
    and :func:`body_digest` of its body. Headers are not bound."""
    members = {"method": method.upper(), "target": target, "body": body}
    return arguments_digest(members)


def arguments_digest(arguments: object) -> str:
    """What :attr:`DecideInput.digest` is for a call's arguments (an MCP tool call's, a
    guarded function's): SHA-256 hex of their canonical JSON (keys sorted, no spaces,
    UTF-8), so the same arguments in another key order are the same request. Raises
    ``TypeError`` (or ``ValueError``: a cycle) for arguments JSON cannot hold."""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class DecideInput:
    """The request to decide: the method and URL the proof was made for, and optionally
    the action, resource, destination and sensitivity an enforcement point mapped, the
    MCP tool call it carries (``context.request.mcp``), and ``details`` the enforcement
    point wants in the decision's audit event (e.g. a tool call's bounded arguments;
    they never override the decision's own fields, and the audit log masks secrets)."""

    method: str
    url: str
    action: str | None = None
    resource: str | None = None
    destination: str | None = None
    sensitivity: str | None = None
    audience: str | None = None
    mcp: McpFacts | None = None
    details: Mapping[str, object] | None = None
    #: the verified client certificate (DER) of the request's connection, which a
    #: certificate-bound token (RFC 8705 ``cnf.x5t#S256``) is checked against
    client_cert: bytes | None = None
    #: the task the request must be made under (an enforcement point's binding, e.g.
    #: the task an MCP session belongs to): a token of another task is denied
    #: ``task.binding`` before anything is spent
    task_id: str | None = None
    #: SHA-256 hex of the request's arguments (an HTTP body's bytes, an MCP tool call's
    #: arguments as canonical JSON: :mod:`zerolane.tasks.approvals`), which an approval
    #: is bound to; None: this enforcement point binds none, and a request a policy
    #: asks approval for is denied ``approval.unbound``
    digest: str | None = None
    #: what an approver is shown of the request (:mod:`zerolane.tasks.approval_preview`:
    #: its method, path, masked query and body excerpt; a tool call's masked arguments),
    #: built only when an approval is asked for; None: the method and path of ``url``
    preview: Callable[[], Mapping[str, object]] | None = None
    #: this enforcement point runs the request in shadow mode and names what put it
    #: there (e.g. ``route:finance GET /reports/{id}``): what the policies deny is let
    #: through as a :class:`Shadow` allow; None: enforced
    shadow: str | None = None


#: what a decision's :attr:`Decision.outcome` may be
ALLOW, DENY, SHADOW = "allow", "deny", "shadow"


@dataclass(frozen=True, slots=True)
class Shadow:
    """What enforcement would have answered of a request let through in shadow mode: a
    deny the policies decided (no permit, a forbid, an approval they ask for) that a
    policy set, playbook or route in ``shadow`` mode relaxed. Checks made in code
    (credentials, the task's state, window and budget, its binding), fail-closed
    refusals and a detection's hold are never relaxed."""

    #: the reasons the request would have been denied with
    reasons: tuple[str, ...]
    #: what was in shadow mode: ``policies`` (the policy set), ``playbook:<name>``,
    #: ``route:<name>`` (the enforcement point's, :attr:`DecideInput.shadow`)
    modes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    allowed: bool
    reasons: tuple[str, ...]
    policies: tuple[str, ...]
    task_id: str | None
    #: what kind of refusal a deny is (None for an allow); each enforcement point's
    #: edge renders it (:mod:`zerolane.gateway.edge`): a credential problem
    #: (``UNAUTHENTICATED``), a refusal (``FORBIDDEN``), fail closed (``UNAVAILABLE``),
    #: a request that cannot be decided as sent (``INVALID``: an unsafe path)
    refusal: Refusal | None
    #: the verified task token's ``exp`` (what a credential minted for the call may last)
    expires_at: float | None = None
    #: the verified workload (SPIFFE ID) that holds the token, when it was verified
    subject: str | None = None
    #: the approval a deny ``approval.required`` (``.denied``, ``.used``) is about:
    #: ``GET /v1/approvals/{id}`` tells its holder when it is approved
    approval_id: str | None = None
    #: set on an allow that enforcement would have denied (shadow mode): the policies
    #: that would have denied it are :attr:`policies`; never set on a deny
    shadow: Shadow | None = None

    @property
    def outcome(self) -> str:
        """``allow``, ``deny`` or ``shadow`` (allowed, but enforcement would deny)."""
        if not self.allowed:
            return DENY
        return ALLOW if self.shadow is None else SHADOW

    def failed_closed(self, reason: str) -> Decision:
        """This decision turned into a fail-closed deny (an audit event could not be
        recorded)."""
        return dataclasses.replace(
            self, allowed=False, reasons=(reason,), refusal=Refusal.UNAVAILABLE, shadow=None
        )
