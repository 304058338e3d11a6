"""The agent's protocol with the control plane, without I/O (as h11 is to httpx).

:class:`AgentCore` and :class:`TaskCore` hold what an agent and a task are (the key, the
SVID, the X.509-SVID, the enforcement point's credential; the grant and whether it is
completed) and turn each operation into a :class:`Call`, the HTTP request to make, and
each answer into its result. They never send anything: the synchronous client
(:mod:`zerolane.sdk.client`) sends a call with an ``httpx.Client``, the asyncio one
(:mod:`zerolane.sdk.aio`) with an ``httpx.AsyncClient``, and both read the answer here.
So the two clients cannot drift: a new operation, or a change of one, is written once.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypedDict, TypeVar

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.sdk.common import (
    DecisionResult,
    Svid,
    TaskGrant,
    X509Svid,
    attest_body,
    bearer_headers,
    check,
    client_tls_context,
    csr_pem,
    decide_body,
    decision_of,
    dpop_headers,
    exchange_request,
    exchanged_grant_of,
    grant_of,
    new_key,
    open_body,
    svid_of,
    x509_of,
)
from zerolane.sdk.mcp_auth import McpAuth
from zerolane.tokens.rfc8693 import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE

#: a certificate-bound task (RFC 8705) or one bound to the agent's DPoP key
Binding = Literal["dpop", "mtls"]


class RequestFields(TypedDict, total=False):
    """What an enforcement point mapped a request to (``Task.decide``), and the audience
    it decides for."""

    action: str | None
    resource: str | None
    destination: str | None
    sensitivity: str | None
    audience: str | None
    #: SHA-256 hex of the request's arguments (its body), which a human approval binds
    digest: str | None


class Narrowing(TypedDict, total=False):
    """How a task asked for is narrower than its playbook (or its parent task): an RFC
    9396 ``zerolane_task`` entry, a shorter life, fewer calls, the enforcement points
    its token is for."""

    authorization_details: Sequence[Mapping[str, Any]] | None
    ttl: int | None
    max_calls: int | None
    audience: Sequence[str] | None


class TaskOptions(Narrowing, total=False):
    """``open_task``'s options: the narrowing, the person acted for, the binding."""

    on_behalf_of: str | None
    binding: Binding


class Delegation(Narrowing, total=False):
    """``delegate``'s options: the narrowing and the child's own intent."""

    intent: str | None


def _known(options: Mapping[str, object], allowed: type, operation: str) -> None:
    """An unknown keyword is a TypeError, as for a function that lists its parameters."""
    keys: frozenset[str] = allowed.__required_keys__ | allowed.__optional_keys__  # type: ignore[attr-defined]
    unknown = sorted(set(options) - keys)
    if unknown:
        raise TypeError(f"{operation}() got an unexpected keyword argument {unknown[0]!r}")


@dataclass(frozen=True, slots=True)
class Call:
    """One request to the control plane, as data: ``POST url`` with these headers and a
    JSON ``json`` or a form ``content`` (every call of the protocol is a POST);
    ``mtls``: over the agent's mutual-TLS client (the one presenting its X.509-SVID)
    instead of its plain one."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None
    content: bytes | None = None
    mtls: bool = False


class AgentCore:
    """A workload's state and the calls it makes, shared by :class:`~zerolane.sdk.Agent`
    and :class:`~zerolane.sdk.AsyncAgent`."""

    def __init__(
        self,
        base_url: str,
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        enforcement_point: str | None = None,
    ) -> None:
        self.enforcement_point = enforcement_point
        self.base_url = base_url.rstrip("/")
        self.key = key or new_key()
        self.svid: Svid | None = None
        #: the X.509-SVID (``attest(..., x509=True)``), which the mutual-TLS client presents
        self.x509: X509Svid | None = None

    def url(self, path: str) -> str:
        return self.base_url + path

    def decider_headers(self) -> dict[str, str]:
        """How this agent's enforcement point asks ``POST /v1/decide`` (its credential)."""
        return bearer_headers(self.enforcement_point) if self.enforcement_point else {}

    @property
    def spiffe_id(self) -> str:
        if self.svid is None:
            raise RuntimeError("attest first")
        return self.svid.spiffe_id

    def tls_context(self, verify: bool | str | ssl.SSLContext) -> ssl.SSLContext:
        """The TLS context of a mutual-TLS client presenting this agent's X.509-SVID
        (:func:`~zerolane.sdk.common.client_tls_context`)."""
        if self.x509 is None:
            raise RuntimeError("attest with x509=True first: no X.509-SVID to present")
        return client_tls_context(self.key, self.x509, verify)

    def attest_call(
        self,
        join_token: str,
        audience: Sequence[str] | None,
        ttl: int | None,
        spiffe_id: str | None,
        x509: bool,
    ) -> Call:
        """``POST /v1/attest``: the join token and this key (and a CSR for it with ``x509``)."""
        body = attest_body(join_token, self.key, audience, ttl, spiffe_id)
        if x509:
            body["csr"] = csr_pem(self.key)
        return Call(self.url("/v1/attest"), json=body)

    def attested(self, response: httpx.Response) -> None:
        """Keep the SVID (and the X.509-SVID) of an answer to :meth:`attest_call`."""
        answer = check(response)
        self.svid = svid_of(answer)
        self.x509 = x509_of(answer)

    def open_call(self, playbook: str, intent: str, options: TaskOptions) -> Call:
        """``POST /v1/tasks``: with the SVID and a DPoP proof, or over mutual TLS."""
        _known(options, TaskOptions, "open_task")
        url = self.url("/v1/tasks")
        body = open_body(
            playbook,
            intent,
            options.get("authorization_details"),
            options.get("ttl"),
            options.get("max_calls"),
            options.get("on_behalf_of"),
            options.get("audience"),
        )
        if options.get("binding", "dpop") == "mtls":
            return Call(url, json=body, mtls=True)
        if self.svid is None:
            raise RuntimeError("attest first: a task is opened with the agent's SVID")
        return Call(url, dpop_headers(self.key, self.svid.token, "POST", url), json=body)

    def for_user_call(self, id_token: str, playbook: str, intent: str, options: Narrowing) -> Call:
        """``POST /v1/token``: exchange a person's ID token for a task acting for them."""
        _known(options, Narrowing, "open_task_for_user")
        if self.svid is None:
            raise RuntimeError("attest first: a task is opened with the agent's SVID")
        url = self.url("/v1/token")
        form, headers = exchange_request(
            url,
            self.key,
            subject_token=id_token,
            subject_token_type=ID_TOKEN_TYPE,
            actor_token=self.svid.token,
            proven_token=self.svid.token,
            intent=intent,
            playbook=playbook,
            **options,
        )
        return Call(url, headers, content=form)


def opened(response: httpx.Response) -> TaskGrant:
    """The grant of an answer to :meth:`AgentCore.open_call`."""
    return grant_of(check(response))


def exchanged(response: httpx.Response) -> TaskGrant:
    """The grant of a token exchange's answer (a task for a person, a delegated child)."""
    return exchanged_grant_of(check(response))


def decided(response: httpx.Response) -> DecisionResult:
    """The decision of an answer to :meth:`TaskCore.decide_call`."""
    return decision_of(check(response))


A = TypeVar("A", bound=AgentCore)


class TaskCore(Generic[A]):
    """An open task's state and the calls it makes, shared by :class:`~zerolane.sdk.Task`
    and :class:`~zerolane.sdk.AsyncTask`."""

    def __init__(self, agent: A, grant: TaskGrant) -> None:
        self._agent = agent
        self.grant = grant
        self.completed = False

    @property
    def task_id(self) -> str:
        return self.grant.task_id

    @property
    def token(self) -> str:
        return self.grant.token

    def headers(self, method: str, url: str) -> dict[str, str]:
        """Headers for one request to an enforcement point (token plus a fresh proof;
        ``Authorization: Bearer`` alone for a certificate-bound token)."""
        if self.grant.certificate_bound:
            return bearer_headers(self.token)
        return dpop_headers(self._agent.key, self.token, method, url)

    def mcp_auth(self) -> McpAuth:
        """An ``httpx2.Auth`` signing each request of an MCP client with this task's token
        and a fresh DPoP proof: ``httpx2.AsyncClient(auth=task.mcp_auth())``, passed to
        ``streamable_http_client(url, http_client=...)``."""
        return McpAuth(self.headers)

    def decide_call(self, method: str, url: str, fields: RequestFields) -> Call:
        """``POST /v1/decide`` for a request of this task, as the agent's enforcement point."""
        _known(fields, RequestFields, "decide")
        mapping = {
            "action": fields.get("action"),
            "resource": fields.get("resource"),
            "destination": fields.get("destination"),
            "sensitivity": fields.get("sensitivity"),
            "digest": fields.get("digest"),
        }
        body = decide_body(
            self._agent.key,
            self.token,
            method,
            url,
            mapping,
            fields.get("audience"),
            proof=not self.grant.certificate_bound,
        )
        return self._call(self._agent.url("/v1/decide"), self._agent.decider_headers(), json=body)

    def delegate_call(self, delegate_svid: str, options: Delegation) -> Call:
        """``POST /v1/token``: exchange this task's token for a child bound to the
        delegate's key, proving this task's key (or its certificate)."""
        _known(options, Delegation, "delegate")
        url = self._agent.url("/v1/token")
        form, headers = exchange_request(
            url,
            self._agent.key,
            subject_token=self.token,
            subject_token_type=ACCESS_TOKEN_TYPE,
            actor_token=delegate_svid,
            proven_token=None if self.grant.certificate_bound else self.token,
            **options,
        )
        return self._call(url, headers, content=form)

    def complete_call(self) -> Call | None:
        """``POST /v1/tasks/{id}/complete``; None once completed (nothing to send)."""
        if self.completed:
            return None
        url = self._agent.url(f"/v1/tasks/{self.task_id}/complete")
        return self._call(url, self.headers("POST", url))

    def completed_by(self, response: httpx.Response) -> None:
        """Read the answer to :meth:`complete_call`: the task is over (or an error)."""
        check(response)
        self.completed = True

    def note_complete_failure(self, error: BaseException, complete_error: Exception) -> None:
        """Completing on the way out of a failed block failed too: the block's error
        stays the one raised, with a note saying so."""
        error.add_note(f"zerolane: completing task {self.task_id} also failed: {complete_error}")

    def _call(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        json: Mapping[str, Any] | None = None,
        content: bytes | None = None,
    ) -> Call:
        """A call of this task: over mutual TLS when its token is bound to the certificate."""
        return Call(url, headers, json=json, content=content, mtls=self.grant.certificate_bound)
